"""Helpers for the per-op tests: build one-op int8 models, run them on the
interpreter's built-in kernels and on the native executor (every instruction
set this machine has), and demand identical bytes."""

from __future__ import annotations

import contextlib
import importlib.util

import numpy as np
from arm import AARCH64, Departure, check
from edge_maas.kernels import executor as ex

from edge_maas.backends.litert import LiteRTBackend
from edge_maas.backends.native import NativeBackend
from edge_maas.tflite.builder import Op, T, build_model

ISAS = ex.available_isas()  # every instruction-set path this CPU has (portable, avx2, avxvnni, avx512vnni)
# the accelerator backend (torch accumulators + native output stage) is checked beside the native paths
ACCEL = importlib.util.find_spec("torch") is not None

__all__ = ["ISAS", "Op", "T", "build_model", "isa", "native_matches_interpreter", "qscale", "resize_nearest_model",
           "run_on", "trials"]


@contextlib.contextmanager
def isa(name: str):
    before = ex.isa()
    ex.set_isa(name)
    try:
        yield
    finally:
        ex.set_isa(before)


def run_on(name: str, kernel) -> None:
    """Runs a compiled kernel (edge_maas.kernels.executor) once on instruction-set path `name`."""
    with isa(name):
        kernel.run()


def trials(n: int, seed: int, *names: str):
    """(trial, rng) for trial 0..n-1 of a direct per-ISA kernel test: one generator, seeded by seed plus the
    lengths of the case's names (ISA, op kind), so that each parametrized case draws its own cases."""
    rng = np.random.default_rng(seed + sum(len(s) for s in names))
    for trial in range(n):
        yield trial, rng


def qscale(v: float) -> float:
    """A scale as the flatbuffer will hold it (float32)."""
    return float(np.float32(v))


def native_matches_interpreter(model: bytes, feeds: list[dict[str, np.ndarray]], threads: int = 1,
                               arm: Departure | None = None) -> list[dict]:  # fmt: skip
    """Assert native (every ISA) and accel (when torch is installed) == interpreter (no delegates)
    on every feed; return the native outputs.

    On aarch64 the interpreter is not the reference (tests/arm.py): where it differs from native it must be the
    op's documented departure ``arm`` (a formula of the feed, or arm.ONE_LSB); native is held to the x86 bytes by
    the caller's numpy reference."""
    interp = LiteRTBackend(model, xnnpack=False)
    native = NativeBackend(model, threads=threads)
    runs = [(name, native) for name in ISAS]
    if ACCEL:
        from edge_maas.backends.accel import AccelBackend

        runs.append(("accel", AccelBackend(model, threads=threads)))
    outs = []
    for feed in feeds:
        want = interp.run(feed)
        if AARCH64:
            alt = arm(feed) if callable(arm) else {}
            base = native.run(feed)
            for k in want:
                check(k, base[k], want[k], arm, alt.get(k))
            want = base  # every other path must give native's bytes
        for name, backend in runs:
            with isa(name if name in ISAS else ex.isa()):
                got = backend.run(feed)
            for k in want:
                if not np.array_equal(got[k], want[k]):
                    diff = np.abs(got[k].astype(np.int64) - want[k].astype(np.int64))
                    raise AssertionError(
                        f"{name}: output {k!r} differs from the interpreter at {int((diff > 0).sum())} of "
                        f"{diff.size} positions (max |diff| {int(diff.max())})"
                    )
        outs.append(native.run(feed))
    return outs


def int8_input(rng: np.random.Generator, shape) -> np.ndarray:
    return rng.integers(-128, 128, size=shape, dtype=np.int8)


def resize_nearest_model(shape, out_hw, align: bool = False, half: bool = False, q=([0.05], [3])) -> bytes:
    """A one-op RESIZE_NEAREST_NEIGHBOR model: int8 NHWC `shape` to out_hw (constant size input), quantization q
    (scales, zero points) on both sides, alignCorners / halfPixelCenters as given."""
    b, _, _, c = shape
    return build_model(
        [T("x", shape, "int8", *q), T("s", (2,), "int32", data=np.array(out_hw, np.int32)),
         T("y", (b, *out_hw, c), "int8", *q)],
        [Op("RESIZE_NEAREST_NEIGHBOR", ["x", "s"], ["y"], "ResizeNearestNeighborOptions",
            {"alignCorners": align, "halfPixelCenters": half})], ["x"], ["y"],
    )  # fmt: skip
