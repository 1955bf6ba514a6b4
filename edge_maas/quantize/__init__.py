"""Bring your own model: a float ``.tflite`` to a full-integer int8 one (static post-training quantization with
calibration data, through litert-quantizer), and a report of what the int8 model lost against the float one."""
