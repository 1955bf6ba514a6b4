"""The accelerator backend's pieces: int8 GEMM-type ops accumulated with torch (CUDA when
present), requantized by the native kernels."""
