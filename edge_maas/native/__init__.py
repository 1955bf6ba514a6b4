"""The native int8 executor: lowers a TFLite graph to compiled kernels over one arena.

Flow: graph (edge_maas.tflite) -> per-op lowering (native.ops, one op per
module) -> arena plan (native.arena) -> Program (edge_maas.kernels.executor).
"""
