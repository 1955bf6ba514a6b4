"""Choose where to cut a request between device and worker (Neurosurgeon-style) from
measured costs: local per-stage latency (profiled here), the worker's per-suffix run time
(as it reports), RTT and bandwidth (EWMA over recent exchanges), boundary bytes."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np

from edge_maas.pipeline import Pipeline

log = logging.getLogger(__name__)


@dataclass
class Estimates:
    local_stage_s: list[float]  # per stage, on this device
    remote_suffix_s: dict[int, float] = field(default_factory=dict)  # split -> worker run time
    rtt_s: float = 0.05
    bandwidth_Bps: float = 1e6
    alpha: float = 0.3  # EWMA weight of a new observation

    def observe(self, split: int, bytes_out: int, bytes_back: int, elapsed_s: float, run_s: float) -> None:
        """One remote exchange: total time = rtt + bytes / bandwidth + worker run time."""
        a = self.alpha
        self.remote_suffix_s[split] = (1 - a) * self.remote_suffix_s.get(split, run_s) + a * run_s
        net = max(elapsed_s - run_s, 1e-6)
        # split the network time between latency and transfer with the current bandwidth estimate
        xfer = (bytes_out + bytes_back) / self.bandwidth_Bps
        rtt = max(net - xfer, 1e-4)
        self.rtt_s = (1 - a) * self.rtt_s + a * rtt
        if bytes_out + bytes_back > 4096:  # big enough to say something about bandwidth
            bw = (bytes_out + bytes_back) / max(net - self.rtt_s, 1e-6)
            self.bandwidth_Bps = (1 - a) * self.bandwidth_Bps + a * bw


@dataclass(frozen=True)
class Decision:
    split: int  # stages < split run here; == n means all local
    predicted_s: float
    costs: tuple[float, ...]  # predicted latency of every split, for logs and reports


class Planner:
    def __init__(self, pipeline: Pipeline, boundary_bytes: list[int], output_bytes: int, estimates: Estimates,
                 max_bytes: int | None = None):  # fmt: skip
        self.n = len(pipeline.stages)
        self.boundary_bytes = boundary_bytes  # bytes sent for split k (k = 0..n-1)
        self.output_bytes = output_bytes
        self.est = estimates
        self.max_bytes = max_bytes  # policy: never send more than this per request

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
        bounds = [sum(int(np.prod(s.shape)) * np.dtype(s.dtype).itemsize for s in pipeline.suffix(k).inputs)
                  for k in range(len(pipeline.stages))]  # fmt: skip
        out_bytes = sum(int(np.prod(s.shape)) * np.dtype(s.dtype).itemsize for s in pipeline.outputs)
        return cls(pipeline, bounds, out_bytes, Estimates(times), **kw)

    def costs(self) -> list[float]:
        e = self.est
        local = np.cumsum([0.0, *e.local_stage_s])
        out = []
        for k in range(self.n):
            if self.max_bytes is not None and self.boundary_bytes[k] > self.max_bytes:
                out.append(float("inf"))
                continue
            remote = e.remote_suffix_s.get(k, float(local[-1] - local[k]))  # unknown: assume device speed
            out.append(float(local[k] + e.rtt_s + (self.boundary_bytes[k] + self.output_bytes) / e.bandwidth_Bps + remote))
        out.append(float(local[-1]))
        return out

    def choose(self) -> Decision:
        c = self.costs()
        k = int(np.argmin(c))
        return Decision(k, c[k], tuple(c))
