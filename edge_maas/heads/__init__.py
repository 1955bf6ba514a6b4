"""Task heads trained on a shared backbone's features (transfer learning), quantized to full-integer int8."""
