"""Plans activation memory: one arena, tensors sharing bytes when their lifetimes do not overlap."""

from __future__ import annotations

from dataclasses import dataclass

ALIGN = 64


@dataclass(frozen=True)
class ArenaPlan:
    offsets: dict[int, int]  # tensor index -> byte offset
    size: int  # arena bytes (the peak)
    unshared: int  # bytes without reuse, for comparison


def plan_arena(sizes: dict[int, int], lifetimes: dict[int, tuple[int, int]], align: int = ALIGN) -> ArenaPlan:
    """Greedy by size (as TFLite's planner): largest first, each at the lowest offset
    that does not collide with an already placed tensor alive at the same time.
    Lifetimes are inclusive (first op that writes, last op that reads)."""
    placed: list[tuple[int, int, int, int]] = []  # offset, end, first, last
    offsets = {}
    for t in sorted(sizes, key=lambda i: (-sizes[i], i)):
        first, last = lifetimes[t]
        need = _round_up(max(sizes[t], 1), align)
        busy = sorted((o, e) for o, e, f, l in placed if f <= last and first <= l)
        offset = 0
        for o, e in busy:
            if offset + need <= o:
                break
            offset = max(offset, e)
        offsets[t] = offset
        placed.append((offset, offset + need, first, last))
    size = max((e for _, e, _, _ in placed), default=0)
    return ArenaPlan(offsets, size, sum(_round_up(max(s, 1), align) for s in sizes.values()))


def _round_up(n: int, k: int) -> int:
    return (n + k - 1) // k * k
