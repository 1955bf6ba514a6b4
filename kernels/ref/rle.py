"""Run-length codec reference (slow, obviously right): the format of kernels/codec.pyx.

Tokens, each an unsigned LEB128 varint h (at most 9 bytes) then a payload:
h even -> literal of (h >> 1) + 1 bytes that follow; h odd -> one byte repeated (h >> 1) + 3 times.
Canonical encoding: every maximal run of >= 3 equal bytes is one run token, the bytes between
such runs one literal token.
"""

from __future__ import annotations

import numpy as np

MIN_RUN = 3
MAX_VARINT = 9


def _varint(v: int) -> bytes:
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def runs(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Start offsets and lengths of the maximal runs of equal bytes."""
    a = np.frombuffer(data, np.uint8)
    if a.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    starts = np.flatnonzero(np.concatenate(([True], a[1:] != a[:-1])))
    lengths = np.diff(np.append(starts, a.size))
    return starts, lengths


def encode(data: bytes) -> bytes:
    data = bytes(data)
    out = bytearray()
    lit = 0  # start of the pending literal
    for start, length in zip(*runs(data)):
        start, length = int(start), int(length)
        if length >= MIN_RUN:
            if start > lit:
                out += _varint((start - lit - 1) << 1) + data[lit:start]
            out += _varint(((length - MIN_RUN) << 1) | 1) + data[start : start + 1]
            lit = start + length
    if len(data) > lit:
        out += _varint((len(data) - lit - 1) << 1) + data[lit:]
    return bytes(out)


def decode(data: bytes, expected_size: int) -> bytes:
    """ValueError on a truncated or overlong stream, or one that does not decode to expected_size bytes."""
    if expected_size < 0:
        raise ValueError(f"expected_size {expected_size} is negative")
    data = bytes(data)
    out = bytearray()
    i = 0
    while i < len(data):
        h, shift = 0, 0
        while True:
            if i >= len(data):
                raise ValueError("rle stream truncated: token header runs past the end")
            if shift == 7 * MAX_VARINT:
                raise ValueError(f"rle stream malformed: token header longer than {MAX_VARINT} bytes")
            b = data[i]
            i += 1
            h |= (b & 0x7F) << shift
            shift += 7
            if b < 0x80:
                break
        if h & 1:
            n = (h >> 1) + MIN_RUN
            if i >= len(data):
                raise ValueError("rle stream truncated: run token has no value byte")
            if n > expected_size - len(out):
                raise ValueError("rle stream malformed: token overflows expected_size")
            out += data[i : i + 1] * n
            i += 1
        else:
            n = (h >> 1) + 1
            if n > expected_size - len(out):
                raise ValueError("rle stream malformed: token overflows expected_size")
            if n > len(data) - i:
                raise ValueError("rle stream truncated: literal runs past the end")
            out += data[i : i + n]
            i += n
    if len(out) != expected_size:
        raise ValueError(f"rle stream decodes to {len(out)} bytes, expected {expected_size}")
    return bytes(out)
