"""Progress bars for transfers the `edge-maas` command makes (tqdm, on stderr): shown on a terminal, hidden when
stderr is a pipe or a file (logs stay clean); EDGE_MAAS_PROGRESS=1 shows them anyway, 0 never."""

from __future__ import annotations

import os
import sys
from typing import Self


class ByteProgress:
    """A callback ``(done_bytes, total_bytes)`` drawing one bar, created at the first call (when the total is known).
    Use as a context manager: the bar is closed (its last state left on screen) on exit."""

    def __init__(self, desc: str):
        self.desc = desc
        self._bar = None

    def __call__(self, done: int, total: int) -> None:
        if self._bar is None:
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc=self.desc, unit="B", unit_scale=True, unit_divisor=1024,
                             file=sys.stderr, disable=not shown(), leave=True)  # fmt: skip
        self._bar.update(done - self._bar.n)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.close()


def shown() -> bool:
    env = os.environ.get("EDGE_MAAS_PROGRESS")
    return sys.stderr.isatty() if env not in ("0", "1") else env == "1"
