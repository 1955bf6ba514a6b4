"""Boundary-tensor compression (edge_maas/transport/compression.py): round trips for every
codec, the compiled RLE kernel against its reference byte for byte, and hostile input
(truncated, malformed, oversized, bombs) refused with TransportError."""

from __future__ import annotations

import tracemalloc
import zlib

import numpy as np
import pytest
from edge_maas.kernels import codec as kc
from edge_maas.kernels.ref import rle as ref
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_maas.errors import TransportError
from edge_maas.transport.compression import CODECS, compress, decompress


@st.composite
def relu_like(draw) -> bytes:
    """Post-ReLU-like int8 bytes: mostly the zero point, with short bursts of other values."""
    n = draw(st.integers(0, 5000))
    zp = draw(st.integers(-128, 127))
    density = draw(st.floats(0.0, 1.0))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    a = np.full(n, zp, np.int8)
    hot = rng.random(n) < density
    a[hot] = rng.integers(-128, 128, int(hot.sum()), dtype=np.int8)
    return a.tobytes()


@st.composite
def runs_of(draw) -> bytes:
    """Runs of random lengths (1..300, so 1, 2, 3 and varint lengths > 66 all occur) of few values."""
    parts = draw(st.lists(st.tuples(st.integers(0, 255), st.integers(1, 300)), max_size=40))
    return b"".join(bytes([v]) * k for v, k in parts)


payloads = st.one_of(
    st.just(b""),
    st.binary(max_size=2000),  # random (incompressible) bytes
    st.builds(lambda v, n: bytes([v]) * n, st.integers(0, 255), st.integers(1, 20000)),  # all the same
    relu_like(),
    runs_of(),
)


@settings(max_examples=300, deadline=None)
@given(body=payloads)
def test_round_trip_every_codec(body):
    for name in CODECS:
        packed = compress(body, name)
        assert isinstance(packed, bytes)
        assert decompress(packed, name, len(body)) == body, name


@settings(max_examples=300, deadline=None)
@given(body=payloads)
def test_kernel_matches_reference(body):
    enc = kc.rle_encode(body)
    assert enc == ref.encode(body)
    assert kc.rle_decode(enc, len(body)) == body
    assert ref.decode(enc, len(body)) == body
    assert len(enc) <= kc.max_encoded_size(len(body))


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=64), size=st.integers(0, 200))
def test_kernel_and_reference_agree_on_arbitrary_streams(data, size):
    """Any byte string, well formed or not: both decode it to the same bytes or both refuse it."""
    try:
        want = ref.decode(data, size)
    except ValueError:
        with pytest.raises(ValueError):
            kc.rle_decode(data, size)
    else:
        assert kc.rle_decode(data, size) == want


def test_kernel_matches_reference_exhaustively_on_short_binary_strings():
    """Every string of 10..13 bytes over a two-letter alphabet: runs of 1, 2, 3+ at every offset
    of the kernel's 8-byte scan window and its byte-wise tail."""
    for n in range(10, 14):
        bits = (np.arange(2**n)[:, None] >> np.arange(n)) & 1
        for row in (bits * 0x7F + 1).astype(np.uint8):  # bytes 0x01 and 0x80
            body = row.tobytes()
            enc = kc.rle_encode(body)
            assert enc == ref.encode(body), body.hex()
            assert kc.rle_decode(enc, n) == body


def test_known_encodings():
    """The format, spelled out (see kernels/codec.pyx)."""
    assert kc.rle_encode(b"") == b""
    assert kc.rle_encode(b"a") == b"\x00a"  # literal of 1
    assert kc.rle_encode(b"aa") == b"\x02aa"  # runs of 2 stay literal
    assert kc.rle_encode(b"aaa") == b"\x01a"  # run of 3
    assert kc.rle_encode(b"\x80" * 66) == b"\x7f\x80"  # longest run with a one-byte header
    assert kc.rle_encode(b"\x80" * 67) == b"\x81\x01\x80"  # two-byte varint header
    assert kc.rle_encode(b"xy" + b"\x80" * 5 + b"z") == b"\x02xy" + b"\x05\x80" + b"\x00z"
    assert len(kc.rle_encode(b"\x80" * 1_000_000)) == 4  # 3-byte varint + value


def test_rle_compresses_any_repeated_value_not_just_zero():
    for v in (0x00, 0x80, 0x7F, 0xFF, 0x13):
        body = bytes([v]) * 10000
        assert len(compress(body, "rle")) <= 4, v


def test_worst_case_growth_is_bounded():
    rng = np.random.default_rng(1)
    body = rng.integers(0, 256, 100_000, dtype=np.uint8)
    body[1::2] = body[::2]  # pairs: never runs of 3, worst-ish case
    body = body.tobytes()
    assert len(kc.rle_encode(body)) <= kc.max_encoded_size(len(body))
    alternating = (b"\x80\x80\x80" + b"x") * 10000  # run of 3 then a 1-byte literal
    assert len(kc.rle_encode(alternating)) == len(alternating)
    assert kc.rle_decode(kc.rle_encode(alternating), len(alternating)) == alternating


def test_kernel_accepts_numpy_buffers():
    a = np.full(1000, -128, np.int8)
    a[::7] = 5
    assert kc.rle_encode(a.view(np.uint8)) == ref.encode(a.tobytes())


# --- hostile input ---------------------------------------------------------------------

BODY = np.where(np.random.default_rng(0).random(4096) < 0.2, 7, -128).astype(np.int8).tobytes()


@pytest.mark.parametrize("name", CODECS)
def test_wrong_expected_size_refused(name):
    packed = compress(BODY, name)
    for size in (0, len(BODY) - 1, len(BODY) + 1, 10 * len(BODY)):
        with pytest.raises(TransportError):
            decompress(packed, name, size)


@pytest.mark.parametrize("name", ["zlib", "rle"])
def test_every_truncation_refused(name):
    packed = compress(BODY, name)
    for cut in range(len(packed)):
        with pytest.raises(TransportError):
            decompress(packed[:cut], name, len(BODY))


@pytest.mark.parametrize("name", CODECS)
def test_trailing_bytes_refused(name):
    packed = compress(BODY, name)
    for extra in (b"\x00", b"\x01\x80", b"garbage"):
        with pytest.raises(TransportError):
            decompress(packed + extra, name, len(BODY))


def test_unknown_codec_refused():
    with pytest.raises(TransportError, match="unknown codec"):
        compress(b"abc", "lz4")
    with pytest.raises(TransportError, match="unknown codec"):
        decompress(b"abc", "lz4", 3)
    with pytest.raises(TransportError):
        decompress(b"abc", "none", -1)


def test_zlib_garbage_refused():
    with pytest.raises(TransportError, match="malformed"):
        decompress(b"not a zlib stream at all", "zlib", 100)


def test_zlib_bomb_refused_without_inflating_it():
    c = zlib.compressobj(9)
    zeros = b"\x00" * (1 << 20)
    bomb = b"".join(c.compress(zeros) for _ in range(256)) + c.flush()  # 256 MiB in ~255 KB
    assert len(bomb) < 300_000
    tracemalloc.start()
    try:
        with pytest.raises(TransportError, match="more than"):
            decompress(bomb, "zlib", 1024)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20, f"decompress allocated {peak} bytes for a 1 KiB body"


def test_rle_bomb_refused():
    """Two bytes that claim a 2**62-byte run, and a run far past expected_size."""
    with pytest.raises(TransportError, match="expands to"):
        decompress(b"\xff" * 8 + b"\x7f" + b"\x80", "rle", 1024)
    with pytest.raises(TransportError, match="expands to"):
        decompress(kc.rle_encode(b"\x80" * 100_000), "rle", 1024)


@pytest.mark.parametrize(
    "stream, size, match",
    [
        (b"\x80", 1, "truncated"),  # varint continues past the end
        (b"\x01", 3, "no value byte"),  # run without its value
        (b"\x04ab", 3, "truncated"),  # literal of 3 with 2 bytes
        (b"\x01a", 2, "expands to"),  # run of 3 into 2
        (b"\x02abd", 2, "expands to"),  # literal of 2 fills it; 'd' (100) is one more literal header
        (b"\x01a\x00", 4, "truncated"),  # literal with no bytes
        (b"\xff" * 10, 5, "longer than"),  # varint over 9 bytes
        (b"", 1, "empty"),
        (b"\x01a", 4, "decodes to 3"),  # short
        (b"\x00a", 0, "expands to"),  # anything into 0
    ],
)
def test_rle_malformed(stream, size, match):
    with pytest.raises(ValueError, match=match):
        kc.rle_decode(stream, size)
    with pytest.raises(ValueError):
        ref.decode(stream, size)
    with pytest.raises(TransportError):
        decompress(stream, "rle", size)


def test_rle_negative_size_refused():
    with pytest.raises(ValueError):
        kc.rle_decode(b"", -1)
