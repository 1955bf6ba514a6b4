"""The float model `edge-maas quantize` starts from: verified as a TFLite file before the interpreter sees it, with
float32 inputs and outputs, and one signature (the quantizer calibrates through it)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edge_maas.errors import ModelFormatError
from edge_maas.tflite.graph import Graph, load_graph


@dataclass(frozen=True)
class SignatureTensor:
    """One input or output of a model's signature: its signature name (``pixels``), its tensor's name
    (``serving_default_pixels:0``) and index, and its shape (leading batch 1)."""

    name: str
    tensor: str
    index: int
    shape: tuple[int, ...]


@dataclass(frozen=True)
class Signature:
    """A model's one signature: its key (``serving_default``), inputs and outputs in signature-name order.  The
    float and the quantized model share signature names, not necessarily tensor names or order: pair by name."""

    key: str
    inputs: tuple[SignatureTensor, ...]
    outputs: tuple[SignatureTensor, ...]


def read_signature(data: bytes, where: str) -> Signature:
    """The single signature of a model whose bytes ``load_graph`` has already checked.  Errors: ModelFormatError
    (none or several signatures, a model the interpreter refuses)."""
    from edge_maas.backends.litert import interpreter_module

    ip, _ = interpreter_module()
    try:
        interp = ip.Interpreter(model_content=data,
                                experimental_op_resolver_type=ip.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)  # fmt: skip
        sigs = interp.get_signature_list()
        if len(sigs) != 1:
            raise ModelFormatError(f"{where} has {len(sigs)} signatures ({', '.join(sigs) or 'none'}); edge-maas "
                                   "quantize needs exactly one (TensorFlow's converter writes serving_default, and so "
                                   "does tools/torch_to_tflite.py)")  # fmt: skip
        key = next(iter(sigs))
        runner = interp.get_signature_runner(key)
        details = runner.get_input_details(), runner.get_output_details()
    except (RuntimeError, ValueError) as exc:
        raise ModelFormatError(f"the interpreter refuses {where}: {str(exc).splitlines()[0]}") from None
    tensors = {d["index"]: d["name"] for d in interp.get_tensor_details()}

    def side(items) -> tuple[SignatureTensor, ...]:
        return tuple(SignatureTensor(n, tensors.get(d["index"], n), int(d["index"]), tuple(int(x) for x in d["shape"]))
                     for n, d in sorted(items.items()))  # fmt: skip

    return Signature(key, side(details[0]), side(details[1]))


@dataclass(frozen=True)
class FloatModel:
    """A checked float model: its bytes, graph and signature."""

    data: bytes
    graph: Graph
    signature: Signature

    @property
    def inputs(self) -> tuple[SignatureTensor, ...]:
        return self.signature.inputs

    @property
    def outputs(self) -> tuple[SignatureTensor, ...]:
        return self.signature.outputs

    @classmethod
    def load(cls, path: str | Path) -> FloatModel:
        """Read and check a float .tflite.  Errors: ModelFormatError (unreadable or corrupt file, an int8 model
        (already quantized), inputs or outputs that are not float32, inputs without a leading batch of 1, not
        exactly one signature, a model the interpreter refuses)."""
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise ModelFormatError(f"cannot read model file {path}: {exc.strerror}") from None
        graph = load_graph(data)  # never hand unverified bytes to the interpreter
        io = [graph.tensors[i] for i in (*graph.inputs, *graph.outputs)]
        if all(t.dtype in ("int8", "uint8", "int16") for t in io):
            raise ModelFormatError(f"{path} is already quantized ({', '.join(f'{t.name} {t.dtype}' for t in io)}); "
                                   "split, compose or run it as it is")  # fmt: skip
        bad = [f"{t.name} ({t.dtype})" for t in io if t.dtype != "float32"]
        if bad:
            raise ModelFormatError(f"{path}: edge-maas quantize takes models whose inputs and outputs are float32; "
                                   f"these are not: {', '.join(bad)}")  # fmt: skip
        sig = read_signature(data, str(path))
        bad_batch = [f"{t.name} {list(t.shape)}" for t in sig.inputs if not t.shape or t.shape[0] != 1]
        if bad_batch:
            raise ModelFormatError(f"{path}: inputs must have a leading batch dimension of 1 (static shapes); "
                                   f"got {', '.join(bad_batch)}")  # fmt: skip
        return cls(data, graph, sig)
