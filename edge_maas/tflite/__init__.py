"""Read and write TFLite flatbuffers through a small graph view."""

from edge_maas.tflite.graph import Graph, OpInfo, QuantParams, TensorInfo, load_graph
from edge_maas.tflite.writer import build_submodel

__all__ = ["Graph", "OpInfo", "QuantParams", "TensorInfo", "build_submodel", "load_graph"]
