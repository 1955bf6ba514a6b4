"""One module per op; each exposes lower(ctx) -> Lowered."""

from __future__ import annotations

import importlib

from edge_maas.errors import UnsupportedOpError

# op name -> module in this package
_MODULES = {
    "CONV_2D": "conv",
    "DEPTHWISE_CONV_2D": "depthwise_conv",
    "FULLY_CONNECTED": "fully_connected",
}


def supported() -> list[str]:
    return sorted(_MODULES)


def lowering(op: str):
    """The lower() function for an op name; UnsupportedOpError (naming the op) if there is none."""
    mod = _MODULES.get(op)
    if mod is None:
        raise UnsupportedOpError(
            f"the native executor has no kernel for {op}; supported ops: {', '.join(supported())}. "
            "Run this model (or this shard) on the 'litert' backend"
        )
    return importlib.import_module(f"edge_maas.native.ops.{mod}").lower
