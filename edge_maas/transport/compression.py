"""Optional compression of boundary-tensor bodies sent to offload workers.

The receiver always knows the decoded size (from the tensors' announced shapes), so no
codec carries a length of its own and decompress() refuses anything that would decode to
more (or less) than ``expected_size``: a small message cannot make the worker allocate or
inflate more than the request says.

    none  the body as is
    zlib  deflate, level 1 (see ZLIB_LEVEL)
    rle   the run-length codec of kernels/codec.pyx (runs of any byte value, e.g. the
          zero point 0x80 that post-ReLU int8 activations mostly hold)
"""

from __future__ import annotations

import zlib

from edge_maas.errors import TransportError
from edge_maas.kernels import codec as rle_kernel  # the parameter `codec` below is the codec's name

CODECS = ("none", "zlib", "rle")

# Level 1: on the zoo's internal boundaries (bench/test_bench_compression.py -> out/compression.json)
# level 6 shrinks bodies by only 1.5-6 more percentage points of the raw size (e.g. 0.577 -> 0.544 of
# MobileNetV2's split 1) for 1.6-2.9x the encode+decode time, a loss at 10 Mbit/s and above.
ZLIB_LEVEL = 1


def _check_codec(codec: str) -> None:
    if codec not in CODECS:
        raise TransportError(f"unknown codec {codec!r}: expected one of {', '.join(CODECS)}")


def compress(body: bytes, codec: str) -> bytes:
    """``body`` encoded with ``codec`` (one of CODECS)."""
    _check_codec(codec)
    if codec == "none":
        return bytes(body)
    if codec == "zlib":
        return zlib.compress(body, ZLIB_LEVEL)
    return rle_kernel.rle_encode(body)


def decompress(data: bytes, codec: str, expected_size: int) -> bytes:
    """Exactly ``expected_size`` bytes decoded from ``data``; TransportError on an unknown codec,
    malformed or truncated data, trailing bytes, or any other decoded size.  Never inflates
    more than expected_size + 1 bytes."""
    _check_codec(codec)
    if expected_size < 0:
        raise TransportError(f"expected size {expected_size} is negative")
    if codec == "none":
        if len(data) != expected_size:
            raise TransportError(f"uncompressed body has {len(data)} bytes, expected {expected_size}")
        return bytes(data)
    if codec == "zlib":
        return _inflate(data, expected_size)
    try:
        return rle_kernel.rle_decode(data, expected_size)
    except ValueError as exc:
        raise TransportError(f"rle body: {exc}") from None


def _inflate(data: bytes, expected_size: int) -> bytes:
    d = zlib.decompressobj()
    try:
        out = d.decompress(data, expected_size + 1)  # max_length: a bomb stops one byte past the limit
    except zlib.error as exc:
        raise TransportError(f"zlib body is malformed: {exc}") from None
    if len(out) > expected_size:
        raise TransportError(f"zlib body inflates to more than the expected {expected_size} bytes")
    if not d.eof:
        raise TransportError(f"zlib body is truncated: stream ends after {len(out)} of {expected_size} bytes")
    if d.unused_data:
        raise TransportError(f"zlib body has {len(d.unused_data)} bytes after the end of the stream")
    if len(out) != expected_size:
        raise TransportError(f"zlib body inflates to {len(out)} bytes, expected {expected_size}")
    return out
