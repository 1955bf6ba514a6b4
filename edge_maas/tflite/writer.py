"""Write a standalone .tflite holding a subset of a graph's operators.

The submodel gets only the operator codes, tensors and constant buffers its own
operators use, so no weight is copied into a shard that does not read it.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import flatbuffers

from edge_maas.tflite.graph import Graph
from edge_maas.tflite.schema import schema

_FILE_IDENTIFIER = b"TFL3"


def build_submodel(
    graph: Graph,
    op_indices: Sequence[int],
    inputs: Sequence[int],
    outputs: Sequence[int],
    description: str = "",
) -> bytes:
    """Serialize ops ``op_indices`` (in that order) as a model with the given
    graph-level input and output tensor indices."""
    src = graph.model
    src_sg = src.subgraphs[0]
    ops = [src_sg.operators[i] for i in op_indices]

    used = set(inputs) | set(outputs)
    for op in ops:
        used.update(t for t in _op_tensors(op) if t >= 0)
    tensor_map = {old: new for new, old in enumerate(sorted(used))}

    code_map: dict[int, int] = {}
    for op in ops:
        code_map.setdefault(op.opcodeIndex, len(code_map))

    buffers = [schema.BufferT()]  # buffer 0 is the conventional empty sentinel
    buffer_map: dict[int, int] = {}
    tensors = []
    for old in sorted(used):
        info = graph.tensors[old]
        t = copy.copy(src_sg.tensors[old])
        t.name = info.name.encode()
        if info.is_constant:
            if info.buffer not in buffer_map:
                buffer_map[info.buffer] = len(buffers)
                buffers.append(schema.BufferT(data=src.buffers[info.buffer].data))
            t.buffer = buffer_map[info.buffer]
        else:
            t.buffer = 0
        tensors.append(t)

    new_ops = []
    for op in ops:
        n = copy.copy(op)
        n.opcodeIndex = code_map[op.opcodeIndex]
        n.inputs = _remap(op.inputs, tensor_map)
        n.outputs = _remap(op.outputs, tensor_map)
        n.intermediates = _remap(op.intermediates, tensor_map) if op.intermediates is not None else None
        n.debugMetadataIndex = -1
        new_ops.append(n)

    codes = [None] * len(code_map)
    for old, new in code_map.items():
        codes[new] = src.operatorCodes[old]
    return pack_model(
        tensors,
        new_ops,
        [tensor_map[t] for t in inputs],
        [tensor_map[t] for t in outputs],
        codes,
        buffers,
        description,
    )


def pack_model(tensors, operators, inputs, outputs, operator_codes, buffers, description: str,
               signature_defs=None) -> bytes:  # fmt: skip
    """Serialize one subgraph (schema *T objects, optional SignatureDefT list) as a complete .tflite file."""
    sg = schema.SubGraphT(tensors=tensors, inputs=inputs, outputs=outputs, operators=operators, name=b"main")
    model = schema.ModelT(
        version=3, operatorCodes=operator_codes, subgraphs=[sg], description=description.encode(), buffers=buffers,
        signatureDefs=signature_defs,
    )
    size = 1024 + sum(len(b.data) for b in buffers if b.data is not None)
    builder = flatbuffers.Builder(size)
    builder.Finish(model.Pack(builder), file_identifier=_FILE_IDENTIFIER)
    return bytes(builder.Output())


def _op_tensors(op) -> list[int]:
    out: list[int] = []
    for seq in (op.inputs, op.outputs, op.intermediates):
        if seq is not None:
            out.extend(int(x) for x in seq)
    return out


def _remap(seq, tensor_map: dict[int, int]) -> list[int]:
    return [tensor_map[int(t)] if t >= 0 else -1 for t in seq]


def inline_buffers(data: bytes) -> bytes:
    """The same model with every constant's bytes inside the flatbuffer.

    Large models may keep buffer data after the flatbuffer, located by each Buffer's ``offset``/``size`` (TFLite's
    schema allows it; litert-quantizer writes models with over 256 KiB of constants that way).  edge_maas reads
    inline buffers only, so this moves the data in: each ``offset``/``size`` range, bounds-checked against the file,
    becomes the buffer's ``data``.  Models without such buffers come back unchanged.  Errors: ModelFormatError
    (not a readable TFLite file, a range outside the file)."""
    from edge_maas.errors import ModelFormatError
    from edge_maas.tflite.verify import check_flatbuffer

    buf = bytearray(data)
    if len(buf) < 8 or buf[4:8] != _FILE_IDENTIFIER:
        raise ModelFormatError("not a TFLite model: the flatbuffer file identifier 'TFL3' is missing")
    check_flatbuffer(buf)
    model = schema.ModelT.InitFromPackedBuf(buf, 0)
    moved = 0
    for i, b in enumerate(model.buffers or []):
        if b is None or not (b.offset > 1 and b.size > 0):  # offset 1 / size 1 are writers' "no data" markers
            continue
        if b.offset + b.size > len(buf):
            raise ModelFormatError(f"buffer {i} points past the end of the file ({b.offset}+{b.size} > {len(buf)})")
        b.data = bytes(buf[b.offset : b.offset + b.size])
        b.offset, b.size = 0, 0
        moved += 1
    if not moved:
        return bytes(data)
    builder = flatbuffers.Builder(len(buf) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=_FILE_IDENTIFIER)
    return bytes(builder.Output())
