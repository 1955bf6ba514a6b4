"""The TFLite flatbuffer schema bindings (flatc's Python output of TFLite's schema.fbs, with the object API).

An installed edge_maas carries them as ``edge_maas.tflite._schema_generated`` (setup.py takes them at build time),
so reading and writing models needs no interpreter package: boards on numpy<2 with tflite-runtime split and run
natively too.  The packages that ship the same module are fallbacks for a tree that was never built.  We never
hand-write flatbuffer offsets.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from edge_maas.errors import BackendUnavailableError

_CANDIDATES = (
    "edge_maas.tflite._schema_generated",
    "ai_edge_litert.schema_py_generated",
    "tensorflow.lite.python.schema_py_generated",
)


def _load() -> ModuleType:
    for name in _CANDIDATES:
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    raise BackendUnavailableError(
        "no TFLite schema bindings found: this edge_maas was not built (pip install -e . builds them in), "
        "and neither ai-edge-litert nor tensorflow is installed"
    )


schema = _load()

#: builtin operator code -> name, e.g. 3 -> "CONV_2D"
OP_NAMES: dict[int, str] = {
    v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_") and isinstance(v, int)
}
#: tensor type code -> name, e.g. 9 -> "INT8"
TYPE_NAMES: dict[int, str] = {
    v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_") and isinstance(v, int)
}
#: tensor type name -> numpy dtype string
NUMPY_DTYPES = {
    "FLOAT32": "float32",
    "FLOAT16": "float16",
    "INT32": "int32",
    "UINT8": "uint8",
    "INT64": "int64",
    "BOOL": "bool",
    "INT16": "int16",
    "INT8": "int8",
    "FLOAT64": "float64",
    "UINT32": "uint32",
    "UINT16": "uint16",
}
