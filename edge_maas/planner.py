"""Choose where to cut a request between device and worker (Neurosurgeon-style) from
measured costs: local per-stage latency (profiled here), the worker's time per suffix
(observed per exchange, else as the workers report it per stage), RTT and bandwidth
(EWMA over recent exchanges, and a least-squares fit once exchanges of different sizes
are seen), boundary bytes per split."""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from edge_maas.pipeline import Pipeline

log = logging.getLogger(__name__)


@dataclass
class Estimates:
    local_stage_s: list[float]  # per stage, on this device
    remote_suffix_s: dict[int, float] = field(default_factory=dict)  # split -> worker time observed (EWMA)
    remote_stage_s: dict[int, float] = field(default_factory=dict)  # stage -> worker time per request, as reported
    wire_ratio: dict[int, float] = field(default_factory=dict)  # split -> request bytes on the wire / raw (codec)
    rtt_s: float = 0.05
    bandwidth_Bps: float = 1e6
    alpha: float = 0.3  # EWMA weight of a new observation
    exchanges: int = 0
    _samples: deque = field(default_factory=lambda: deque(maxlen=32), repr=False)  # (bytes, network seconds)

    def observe(self, split: int, bytes_out: int, bytes_back: int, elapsed_s: float, run_s: float) -> None:
        """One remote exchange: total time = rtt + bytes / bandwidth + time in the worker."""
        a = self.alpha if self.exchanges else 1.0  # the first observation replaces the prior
        self.exchanges += 1
        self.remote_suffix_s[split] = (1 - a) * self.remote_suffix_s.get(split, run_s) + a * run_s
        nbytes, net = bytes_out + bytes_back, max(elapsed_s - run_s, 1e-6)
        self._samples.append((nbytes, net))
        if self._fit():
            return
        # one size seen so far: rtt and bandwidth cannot be told apart; split the network time
        # with the current bandwidth estimate, and learn bandwidth only from large transfers
        rtt = max(net - nbytes / self.bandwidth_Bps, 1e-4)
        self.rtt_s = (1 - a) * self.rtt_s + a * rtt
        if nbytes > 4096:
            bw = nbytes / max(net - self.rtt_s, 1e-6)
            self.bandwidth_Bps = (1 - a) * self.bandwidth_Bps + a * bw

    def _fit(self) -> bool:
        """net = rtt + bytes / bandwidth by least squares over recent exchanges, when their sizes
        differ enough (2x) to separate the two; False when they do not or the fit is unphysical."""
        if len(self._samples) < 4:
            return False
        b = np.array([s[0] for s in self._samples], dtype=np.float64)
        t = np.array([s[1] for s in self._samples], dtype=np.float64)
        if b.max() < 2 * max(b.min(), 1.0):
            return False
        slope, intercept = np.polyfit(b, t, 1)
        if slope <= 0 or intercept < 0:
            return False
        self.rtt_s, self.bandwidth_Bps = float(intercept), float(1.0 / slope)
        return True

    def worker_s(self, split: int, n_stages: int) -> float | None:
        """Time in the worker for stages split.. : observed for this split, else the sum of what
        workers report per stage, else None (unknown)."""
        if split in self.remote_suffix_s:
            return self.remote_suffix_s[split]
        stages = range(split, n_stages)
        if all(k in self.remote_stage_s for k in stages):
            return sum(self.remote_stage_s[k] for k in stages)
        return None


@dataclass(frozen=True)
class Decision:
    split: int  # stages < split run here; == n means all local
    predicted_s: float
    costs: tuple[float, ...]  # predicted latency of every split, for logs and reports
    reason: str = ""
    probe: bool = False  # chosen to measure the link, not because it is predicted fastest


class Planner:
    def __init__(self, pipeline: Pipeline, boundary_bytes: list[int], output_bytes: int, estimates: Estimates,
                 max_bytes: int | None = None, probe_every_s: float | None = 30.0,
                 clock: Callable[[], float] = time.monotonic):  # fmt: skip
        self.n = len(pipeline.stages)
        self.boundary_bytes = boundary_bytes  # bytes sent for split k (k = 0..n-1)
        self.output_bytes = output_bytes
        self.est = estimates
        self.max_bytes = max_bytes  # policy: never send more than this per request
        self.probe_every_s = probe_every_s  # None: never probe
        self.clock = clock
        self.last_remote: float | None = None  # clock() of the last remote exchange
        self._last_probe: float | None = None
        self._probes = 0
        self.remote_down = False  # a remote exchange failed: stay local until a probe succeeds

    @classmethod
    def for_pipeline(cls, pipeline: Pipeline, sample: dict[str, np.ndarray], repeats: int = 5, **kw) -> Planner:
        """Profile each stage here on `sample`; boundary sizes from the pipeline's tensors."""
        env = dict(sample)
        times = []
        for st in pipeline.stages:
            feed = {s.name: env[s.name] for s in st.backend.inputs}
            best = float("inf")
            for _ in range(repeats):
                t0 = time.perf_counter()
                out = st.backend.run(feed)
                best = min(best, time.perf_counter() - t0)
            env.update(out)
            times.append(best)
        nbytes = lambda specs: sum(int(np.prod(s.shape)) * np.dtype(s.dtype).itemsize for s in specs)
        bounds = [nbytes(pipeline.suffix(k).inputs) for k in range(len(pipeline.stages))]
        return cls(pipeline, bounds, nbytes(pipeline.outputs), Estimates(times), **kw)

    def costs(self) -> list[float]:
        """Predicted latency of split k = 0..n (n: all local); inf where the policy forbids it."""
        e = self.est
        local = np.cumsum([0.0, *e.local_stage_s])
        out = []
        for k in range(self.n):
            if not self._allowed(k) or self.remote_down:
                out.append(float("inf"))
                continue
            remote = e.worker_s(k, self.n)
            if remote is None:  # nothing known about the workers yet: assume device speed
                remote = float(local[-1] - local[k])
            sent = self.boundary_bytes[k] * e.wire_ratio.get(k, 1.0)  # unobserved: as if uncompressed
            out.append(float(local[k] + e.rtt_s + (sent + self.output_bytes) / e.bandwidth_Bps + remote))
        out.append(float(local[-1]))
        return out

    def best(self) -> Decision:
        """The split predicted fastest, with its reason; no side effects."""
        c = self.costs()
        k = int(np.argmin(c))
        where = "all local" if k == self.n else "all remote" if k == 0 else f"stages 0..{k - 1} here, {k}.. remote"
        reason = f"{where}: {c[k] * 1e3:.2f} ms predicted (all local {c[-1] * 1e3:.2f} ms); " + self._inputs_text()
        return Decision(k, c[k], tuple(c), reason)

    def choose(self) -> Decision:
        """best(), or now and then a probe of the link while staying local (see _probe_due)."""
        d = self.best()
        if d.split == self.n and self._probe_due():
            allowed = sorted((j for j in range(self.n) if self._allowed(j)), key=lambda j: self.boundary_bytes[j])
            if allowed:
                # alternate the smallest and the largest boundary: two sizes separate rtt from bandwidth
                p = allowed[0] if self._probes % 2 == 0 else allowed[-1]
                self._probes += 1
                self._last_probe = self.clock()
                return Decision(p, d.costs[p], d.costs, f"probe: split {p} to measure the link; " + d.reason, probe=True)
        return d

    def observed(self, split: int, bytes_out: int, bytes_back: int, elapsed_s: float, worker_s: float,
                 wire_ratio: float = 1.0) -> None:  # fmt: skip
        """Feed one remote exchange back (bytes as sent on the wire, after any codec)."""
        self.est.observe(split, bytes_out, bytes_back, elapsed_s, worker_s)
        r = self.est.wire_ratio
        r[split] = wire_ratio if split not in r else (1 - self.est.alpha) * r[split] + self.est.alpha * wire_ratio
        self.last_remote = self.clock()
        self.remote_down = False

    def failed(self, split: int) -> None:
        """A remote exchange timed out or was refused: forget the worker's time for this split
        and stay local until a probe (every probe_every_s) gets through."""
        self.est.remote_suffix_s.pop(split, None)
        self.remote_down = True
        self._last_probe = self.clock()
        log.warning("planner: offload of split %d failed; all local until a probe succeeds", split)

    def _allowed(self, k: int) -> bool:
        return self.max_bytes is None or self.boundary_bytes[k] <= self.max_bytes

    def _probe_due(self) -> bool:
        """Nothing heard from a worker for probe_every_s, and no probe sent in that time either
        (a failed probe must not turn every request into another one)."""
        if self.probe_every_s is None:
            return False
        now = self.clock()
        stale = lambda t: t is None or now - t >= self.probe_every_s
        return (self.remote_down or stale(self.last_remote)) and stale(self._last_probe)

    def _inputs_text(self) -> str:
        e = self.est
        return f"rtt {e.rtt_s * 1e3:.2f} ms, bandwidth {e.bandwidth_Bps * 8 / 1e6:.2f} Mbit/s, {e.exchanges} exchanges"
