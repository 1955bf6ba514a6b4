"""Quantization recipes `edge-maas quantize` offers, as litert-quantizer recipe entries (its JSON recipe format:
scope regex over each op's output tensor name, the latest matching entry wins)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from edge_maas.errors import EdgeMaasError
from edge_maas.tflite.graph import Graph

# name -> (activation bits, what it gives)
RECIPES = {
    "a8w8": (8, ("int8 activations (asymmetric, per tensor), int8 weights (symmetric, per channel); int8 inputs "
                 "and outputs: splits, composes and runs natively")),
    "a16w8": (16, ("int16 activations (symmetric), int8 weights: closer to float, but int16 inputs and outputs, so "
                   "the interpreter runs it and edge-maas split refuses it; keep chosen layers at int16 with "
                   "--recipe a8w8 --a16w8 LAYER instead")),
}


class RecipeError(EdgeMaasError):
    """An unknown recipe name, or a layer pattern that is not a regex or matches no layer."""


@dataclass(frozen=True)
class Recipe:
    """A base recipe for every layer, and layers kept at int16 activations (regexes over op output tensor names)."""

    base: str = "a8w8"
    a16w8: tuple[str, ...] = ()

    def check(self, graph: Graph) -> Recipe:
        """This recipe, once its name is known and each --a16w8 pattern compiles and matches some layer of
        ``graph`` (the float model).  Errors: RecipeError."""
        if self.base not in RECIPES:
            raise RecipeError(f"unknown recipe {self.base!r}; choose one of: "
                              + "; ".join(f"{k} ({v[1].split(';')[0]})" for k, v in RECIPES.items()))  # fmt: skip
        layers = [graph.tensors[op.outputs[0]].name for op in graph.ops if op.outputs]
        for pattern in self.a16w8:
            try:
                rx = re.compile(pattern)
            except re.error as exc:
                raise RecipeError(f"--a16w8 {pattern!r} is not a regular expression: {exc}") from None
            if not any(rx.search(name) for name in layers):
                raise RecipeError(f"--a16w8 {pattern!r} matches no layer; layers are named by their output tensors "
                                  f"(e.g. {layers[0]!r}; `edge-maas inspect` lists them)")  # fmt: skip
        return self

    @property
    def name(self) -> str:
        return self.base + "".join(f" +a16w8[{p}]" for p in self.a16w8)

    def entries(self) -> list[dict]:
        """The litert-quantizer recipe: the base for '.*', then one int16-activation entry per pattern."""
        entries = [_entry(".*", RECIPES[self.base][0])]
        entries += [_entry(p, 16) for p in self.a16w8]
        return entries


def _entry(regex: str, activation_bits: int) -> dict:
    """One entry as litert-quantizer's default_a8w8/default_a16w8 recipes write it: min/max calibration, activations
    per tensor (asymmetric at 8 bits, symmetric at 16, as TFLite's int16x8 kernels require), weights symmetric per
    channel, integer compute."""
    return {
        "regex": regex,
        "operation": "*",
        "algorithm_key": "min_max_uniform_quantize",
        "op_config": {
            "activation_tensor_config": {"num_bits": activation_bits, "symmetric": activation_bits == 16,
                                         "granularity": "TENSORWISE", "dtype": "INT"},
            "weight_tensor_config": {"num_bits": 8, "symmetric": True, "granularity": "CHANNELWISE", "dtype": "INT"},
            "compute_precision": "INTEGER",
            "explicit_dequantize": False,
            "skip_checks": False,
            "min_weight_elements": 0,
        },
    }
