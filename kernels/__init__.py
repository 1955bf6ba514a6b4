"""Compiled int8 kernels (Cython + C), each with a pure-numpy reference beside it.

Built by setup.py as the package ``edge_maas.kernels``.  Importing a kernel
module that was not compiled raises ImportError naming the fix.
"""
