"""Bounds for untrusted .tflite bytes, checked before anything large is decoded or allocated.

Two layers, both raising ModelFormatError:

* ``check_flatbuffer`` walks the raw flatbuffer with the lazy reader *before* the object API decodes it.  The
  object API copies every string and builds one object per table it reaches, and a flatbuffer may point many
  offsets at the same table or string: a 1 MB file could make it build billions of objects.  In a flatbuffer
  without such sharing every table takes at least 4 bytes and every string its own bytes, so the walk allows
  about that many table visits and string bytes, plus slack, and refuses more.
* the limits below bound what a model may ask the runtimes to allocate (checked by ``graph.validate_graph``).
"""

from __future__ import annotations

from edge_maas.errors import ModelFormatError
from edge_maas.tflite.schema import schema

#: Highest tensor rank accepted (the interpreter's kernels handle at most 6; 8 leaves room).
MAX_RANK = 8
#: Most elements in one tensor: 2**26 (64 Mi), 256 MiB as int32.  Edge models are far below this.
MAX_TENSOR_ELEMENTS = 1 << 26
#: Most bytes of all tensors of a model together (an upper bound on the interpreter's arena).
MAX_TOTAL_TENSOR_BYTES = 1 << 30

_OPTION_NAMES = {v: k for k, v in vars(schema.BuiltinOptions).items() if isinstance(v, int) and not k.startswith("_")}
_OPTION2_NAMES = {v: k for k, v in vars(schema.BuiltinOptions2).items() if isinstance(v, int) and not k.startswith("_")}
# Options tables that hold strings (the object API copies them): name -> their string accessors.
_OPTION_STRINGS = {
    "VarHandleOptions": ("Container", "SharedName"),
    "StableHLOCompositeOptions": ("Name",),
    "StablehloCustomCallOptions": ("CallTargetName", "BackendConfig"),
}


class _Budget:
    """Counts table visits and string bytes; refuses a walk that exceeds what the file size allows."""

    def __init__(self, size: int):
        self.size = size
        self.tables = size // 4 + 1024
        self.chars = 2 * size + 4096

    def vector(self, n: int, what: str, elem: int = 4) -> range:
        if n * elem > self.size:
            raise ModelFormatError(f"corrupt TFLite model: {what} claims {n} entries in a {self.size}-byte file")
        return range(n)

    def table_vector(self, n: int, what: str) -> range:
        r = self.vector(n, what)
        self.visit(n, what)
        return r

    def visit(self, n: int, what: str) -> None:
        self.tables -= n
        if self.tables < 0:
            raise ModelFormatError(f"corrupt TFLite model: {what}: more tables reached than the file can hold "
                                   "(offsets point at shared data)")  # fmt: skip

    def string(self, s: bytes | None, what: str) -> None:
        self.chars -= len(s or b"")
        if self.chars < 0:
            raise ModelFormatError(f"corrupt TFLite model: {what}: more string bytes reached than the file holds")


def check_flatbuffer(data: bytes | bytearray) -> None:
    """Refuse flatbuffers whose decoding would take more objects or bytes than their size allows, or that hold
    other than exactly one subgraph.  Reader exceptions (truncation, offsets past the end) become ModelFormatError."""
    try:
        _walk(schema.Model.GetRootAs(data, 0), _Budget(len(data)))
    except ModelFormatError:
        raise
    except Exception as exc:  # the generated reader raises anything from struct.error to IndexError
        raise ModelFormatError(f"corrupt or truncated TFLite model ({type(exc).__name__}: {exc})") from None


def _walk(m, b: _Budget) -> None:
    n_sub = m.SubgraphsLength()
    if n_sub != 1:
        raise ModelFormatError(f"model has {n_sub} subgraphs; only single-subgraph models "
                               "(no CALL_ONCE/WHILE/IF control flow) can be split")  # fmt: skip
    for i in b.table_vector(m.OperatorCodesLength(), "operator codes"):
        oc = m.OperatorCodes(i)
        b.string(oc.CustomCode() if oc else None, "operator codes")
    b.string(m.Description(), "description")
    for i in b.table_vector(m.BuffersLength(), "buffers"):
        m.Buffers(i)
    b.vector(m.MetadataBufferLength(), "metadata buffer")
    for i in b.table_vector(m.MetadataLength(), "metadata"):
        md = m.Metadata(i)
        b.string(md.Name() if md else None, "metadata")
    for i in b.table_vector(m.SignatureDefsLength(), "signatures"):
        sd = m.SignatureDefs(i)
        if sd is None:
            continue
        b.string(sd.SignatureKey(), "signatures")
        for get, n in ((sd.Inputs, sd.InputsLength()), (sd.Outputs, sd.OutputsLength())):
            for j in b.table_vector(n, "signature tensors"):
                tm = get(j)
                b.string(tm.Name() if tm else None, "signature tensors")
    for i in b.table_vector(m.ExternalBufferGroupsLength(), "external buffer groups"):
        g = m.ExternalBufferGroups(i)
        b.string(g.Name() if g else None, "external buffer groups")
    b.table_vector(m.ExternalBuffersLength(), "external buffers")
    sg = m.Subgraphs(0)
    if sg is None:
        return
    b.string(sg.Name(), "subgraph name")
    b.vector(sg.InputsLength(), "subgraph inputs")
    b.vector(sg.OutputsLength(), "subgraph outputs")
    for i in b.table_vector(sg.TensorsLength(), "tensors"):
        t = sg.Tensors(i)
        if t is not None:
            _walk_tensor(t, b)
    for i in b.table_vector(sg.OperatorsLength(), "operators"):
        op = sg.Operators(i)
        if op is not None:
            _walk_operator(op, b)


def _walk_tensor(t, b: _Budget) -> None:
    b.string(t.Name(), "tensor names")
    b.vector(t.ShapeLength(), "tensor shape")
    q = t.Quantization()
    if q is not None:
        b.visit(1, "quantization")
        if q.Details() is not None:
            b.visit(1, "quantization details")
    sp = t.Sparsity()
    if sp is not None:
        b.visit(1, "sparsity")
        for j in b.table_vector(sp.DimMetadataLength(), "sparsity dimensions"):
            dm = sp.DimMetadata(j)
            if dm is not None:
                b.visit(int(dm.ArraySegments() is not None) + int(dm.ArrayIndices() is not None), "sparsity arrays")
    b.table_vector(t.VariantTensorsLength(), "variant tensors")


def _walk_operator(op, b: _Budget) -> None:
    for type_code, table, names in ((op.BuiltinOptionsType(), op.BuiltinOptions(), _OPTION_NAMES),
                                    (op.BuiltinOptions2Type(), op.BuiltinOptions2(), _OPTION2_NAMES)):  # fmt: skip
        if table is None:
            continue
        b.visit(1, "operator options")
        name = names.get(type_code)
        if name in _OPTION_STRINGS:
            opts = getattr(schema, name)()
            opts.Init(table.Bytes, table.Pos)
            for accessor in _OPTION_STRINGS[name]:
                b.string(getattr(opts, accessor)(), "operator options")
