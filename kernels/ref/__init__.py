"""Pure-numpy references of the native kernels, one module per op (slow, obviously right)."""
