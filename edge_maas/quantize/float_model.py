"""The float model `edge-maas quantize` starts from: verified as a TFLite file before the interpreter sees it, with
float32 inputs and outputs, and one signature (the quantizer calibrates through it)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edge_maas.errors import ModelFormatError
from edge_maas.tflite.graph import Graph, load_graph


@dataclass(frozen=True)
class FloatTensor:
    """One input or output of the float model: its signature name (``pixels``), its tensor name
    (``serving_default_pixels:0``) and shape (leading batch 1)."""

    name: str
    tensor: str
    shape: tuple[int, ...]


@dataclass(frozen=True)
class FloatModel:
    data: bytes
    graph: Graph
    signature: str  # the signature key the quantizer calibrates through, e.g. serving_default
    inputs: tuple[FloatTensor, ...]
    outputs: tuple[FloatTensor, ...]

    @classmethod
    def load(cls, path: str | Path) -> FloatModel:
        """Read and check a float .tflite.  Errors: ModelFormatError (unreadable or corrupt file, an int8 model
        (already quantized), inputs or outputs that are not float32, no single signature, a model the interpreter
        refuses)."""
        data = Path(path).read_bytes() if not isinstance(path, (bytes, bytearray)) else bytes(path)
        graph = load_graph(data)  # never hand unverified bytes to the interpreter
        io = [graph.tensors[i] for i in (*graph.inputs, *graph.outputs)]
        if all(t.dtype in ("int8", "uint8", "int16") for t in io):
            raise ModelFormatError(f"{path} is already quantized ({', '.join(f'{t.name} {t.dtype}' for t in io)}); "
                                   "split, compose or run it as it is")  # fmt: skip
        bad = [f"{t.name} ({t.dtype})" for t in io if t.dtype != "float32"]
        if bad:
            raise ModelFormatError(f"{path}: edge-maas quantize takes models whose inputs and outputs are float32; "
                                   f"these are not: {', '.join(bad)}")  # fmt: skip
        from edge_maas.backends.litert import interpreter_module

        try:
            ip, _ = interpreter_module()
            interp = ip.Interpreter(model_content=data,
                                    experimental_op_resolver_type=ip.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
            sigs = interp.get_signature_list()
        except (RuntimeError, ValueError) as exc:
            raise ModelFormatError(f"the interpreter refuses {path}: {str(exc).splitlines()[0]}") from None
        if len(sigs) != 1:
            raise ModelFormatError(f"{path} has {len(sigs)} signatures ({', '.join(sigs) or 'none'}); edge-maas "
                                   "quantize needs exactly one (TensorFlow's converter writes serving_default)")  # fmt: skip
        key = next(iter(sigs))
        runner = interp.get_signature_runner(key)
        ins = tuple(FloatTensor(n, d["name"], tuple(int(x) for x in d["shape"]))
                    for n, d in sorted(runner.get_input_details().items(), key=lambda kv: kv[1]["index"]))  # fmt: skip
        outs = tuple(FloatTensor(n, d["name"], tuple(int(x) for x in d["shape"]))
                     for n, d in sorted(runner.get_output_details().items(), key=lambda kv: kv[1]["index"]))  # fmt: skip
        bad_batch = [f"{t.name} {list(t.shape)}" for t in ins if not t.shape or t.shape[0] != 1]
        if bad_batch:
            raise ModelFormatError(f"{path}: inputs must have a leading batch dimension of 1 (static shapes); "
                                   f"got {', '.join(bad_batch)}")  # fmt: skip
        return cls(data, graph, key, ins, outs)
