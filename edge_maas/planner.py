"""Choose where to cut a request between device and worker (Neurosurgeon-style) from
measured costs that are kept apart: local per-stage latency (profiled here, rescaled by what
real requests take), the worker's queue + compute time per suffix (as its reply states it,
else as the workers report it per stage), and the wire: RTT and bandwidth fitted robustly
(Theil-Sen, outliers rejected) to the round trip minus the worker's own time, over exchanges
of different sizes.  Estimates carry their count and spread; a split whose estimate is
uncertain but might win is explored now and then (at most one request in `explore_every`),
so the planner cannot lock itself into all-local.  Probes and exploration skip workers whose
retained status says offline: with none online, no request pays a deadline."""

from __future__ import annotations

import itertools
import logging
import math
import statistics
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from edge_maas.pipeline import Pipeline

log = logging.getLogger(__name__)

MIN_OBS = 3  # exchanges of a split before its worker time counts as known (no more exploring it)
# Estimates are only re-measured by the side that runs: while offloading, the local scale; while local, the wire and
# worker.  So the runner-up side (all local, or the best remote split) runs again after LOCAL_RECHECK * explore_every
# requests without it...
LOCAL_RECHECK = 4
LOCAL_RECHECK_MARGIN = 1.5  # ...when its prediction is within this factor of the best: its estimate may be stale;
NEAR_TIE = 1.2  # within this factor, after explore_every requests already (a near tie is decided by the stale side)
# exchanges in a row far off the fit on the same side that say the link changed (see Estimates.observe): faster than
# the fit is the strong sign (a stall or retry only ever adds time), slower needs more (stalls can come in runs)
CHANGE_RUN_FASTER, CHANGE_RUN_SLOWER = 2, 6
MAX_BANDWIDTH_BPS = 1.25e10  # 100 Gbit/s: a fit whose slope is within noise of 0 says "faster than measurable"
MIN_RTT_S = 1e-5
POLICIES = ("latency", "bytes", "prefer_remote", "local_only", "remote_only")


def fit_link(nbytes: np.ndarray, wire_s: np.ndarray) -> tuple[float, float, float]:
    """wire = rtt + bytes / bandwidth, robustly: Theil-Sen (median of pairwise slopes between
    exchanges of clearly different sizes, median intercept), then once more without the points
    further than 3 robust spreads (MAD) from the line: a CPU-throttled or retried exchange moves
    neither estimate.  Returns (rtt seconds, bandwidth bytes/s, spread seconds)."""
    b, t = np.asarray(nbytes, dtype=np.float64), np.asarray(wire_s, dtype=np.float64)
    keep = np.ones(len(b), dtype=bool)
    for _ in range(2):
        bb, tt = b[keep], t[keep]
        i, j = np.triu_indices(len(bb), 1)
        db = bb[j] - bb[i]
        big = np.abs(db) >= max(0.25 * (bb.max() - bb.min()), 1.0)  # near-equal sizes give slopes of pure noise
        slope = float(np.median((tt[j] - tt[i])[big] / db[big])) if big.any() else 0.0
        slope = max(slope, 1.0 / MAX_BANDWIDTH_BPS)
        rtt = float(np.median(tt - slope * bb))
        res = t - (rtt + slope * b)
        spread = 1.4826 * float(np.median(np.abs(res[keep] - np.median(res[keep]))))
        inliers = np.abs(res) <= 3 * spread + 1e-5
        if inliers.sum() < 3 or (inliers == keep).all():
            break
        keep = inliers
    return max(rtt, MIN_RTT_S), 1.0 / slope, spread


@dataclass
class Estimates:
    local_stage_s: list[float]  # per stage, on this device, as profiled (times local_scale when predicting)
    remote_suffix_s: dict[int, float] = field(default_factory=dict)  # split -> worker time observed (median)
    remote_stage_s: dict[int, float] = field(default_factory=dict)  # stage -> worker time per request, as reported
    wire_ratio: dict[int, float] = field(default_factory=dict)  # split -> request bytes on the wire / raw (codec)
    rtt_s: float = 0.05  # prior until exchanges are seen
    bandwidth_Bps: float = 1e6
    alpha: float = 0.3  # EWMA weight of a new compression ratio
    exchanges: int = 0
    rtt_spread_s: float | None = None  # robust spread of the wire times around the fit; None: no exchange yet
    bandwidth_known: bool = False  # exchanges of different sizes separated bandwidth from rtt
    local_scale: float = 1.0  # real local runs / profiled (a throttled device is slower than its best of 5)
    _samples: deque = field(default_factory=lambda: deque(maxlen=48), repr=False)  # (bytes, wire seconds)
    _worker: dict[int, deque] = field(default_factory=dict, repr=False)  # split -> recent worker seconds
    _scales: deque = field(default_factory=lambda: deque(maxlen=7), repr=False)
    _off: deque = field(default_factory=lambda: deque(maxlen=CHANGE_RUN_SLOWER), repr=False)  # misses: -1, 0, 1
    _cpu: dict[int, deque] = field(default_factory=dict, repr=False)  # split -> this process's CPU s per request
    _counters: deque = field(default_factory=lambda: deque(maxlen=32), repr=False)  # (throttled s, CPU s) totals
    stall_per_cpu: float = 0.0  # seconds this device stalls under its CPU quota per CPU second it uses

    def observe(self, split: int, bytes_out: int, bytes_back: int, elapsed_s: float, run_s: float,
                busy_s: float | None = None) -> None:  # fmt: skip
        """One remote exchange: elapsed_s from sending the request to having the reply, run_s of it
        spent in the worker (so the wire took elapsed_s - run_s); busy_s: the worker time a next
        request should expect (queue + compute without one-off installs), run_s when not given."""
        self.exchanges += 1
        w = self._worker.setdefault(split, deque(maxlen=16))
        w.append(run_s if busy_s is None else busy_s)
        self.remote_suffix_s[split] = statistics.median(w)
        nbytes, wire = bytes_out + bytes_back, max(elapsed_s - run_s, 1e-6)
        self._samples.append((nbytes, wire))
        if self._link_changed(nbytes, wire):
            # outlier rejection keeps one stalled exchange from moving the fit, but it also keeps a window of 48
            # exchanges from following a link that really changed, and while the planner stays local it sees one
            # exchange in LOCAL_RECHECK * explore_every requests: start again from the exchanges that agree
            run = CHANGE_RUN_FASTER if self._off[-1] < 0 else CHANGE_RUN_SLOWER
            for _ in range(len(self._samples) - run):
                self._samples.popleft()
            self._off.clear()
            self._refit()
            return
        # the fit costs ~0.3 ms (O(n^2) pairs): every exchange while few are known, then every 8th (inside a request)
        if len(self._samples) < 8 or self.exchanges % 8 == 0:
            self._refit()

    def _link_changed(self, nbytes: int, wire_s: float) -> bool:
        """Whether this exchange and those just before it all missed the fit by more than 3 spreads (and 10 %, and
        0.2 ms: a steady link's spread can be ~0.05 ms) on the same side, CHANGE_RUN_FASTER / _SLOWER of them."""
        if self.rtt_spread_s is None:
            return False
        predicted = self.wire_s(nbytes)
        miss = wire_s - predicted
        far = abs(miss) > max(3 * self.rtt_spread_s, 0.1 * predicted, 2e-4)
        self._off.append(0 if not far else 1 if miss > 0 else -1)
        side = self._off[-1]
        run = CHANGE_RUN_FASTER if side < 0 else CHANGE_RUN_SLOWER
        recent = list(self._off)[-run:]
        return side != 0 and len(recent) == run and len(self._samples) > run and all(o == side for o in recent)

    def observe_local(self, first: int, stop: int, elapsed_s: float) -> None:
        """Stages first..stop-1 just ran here in elapsed_s (quota stalls left out where they are known, see
        observe_cpu): rescale the profile by the median ratio of the last 7 runs, so that it follows the device's
        current speed (it swung by 30 % within one bench run on a shared 2-core machine) without one slow run
        deciding.  Quota stalls are charged separately (observe_cpu) where the cgroup says; where it cannot, a
        device has no quota to stall on."""
        profiled = sum(self.local_stage_s[first:stop])
        if profiled > 0:
            self._scales.append(elapsed_s / profiled)
            self.local_scale = statistics.median(self._scales)

    def observe_cpu(self, split: int, cpu_s: float, throttled_total_s: float, cpu_total_s: float) -> None:
        """A request at this split used cpu_s of CPU in its own thread; the totals (cgroup throttled time, process
        CPU time) give the stall rate over the last requests.  A device under a CPU quota stalls wherever its budget
        runs out, often in the request after the one that spent it: stalls are charged by CPU used, not by where
        they landed."""
        self._cpu.setdefault(split, deque(maxlen=16)).append(cpu_s)
        self._counters.append((throttled_total_s, cpu_total_s))
        (th0, c0), (th1, c1) = self._counters[0], self._counters[-1]
        if c1 - c0 > 0:
            self.stall_per_cpu = max(th1 - th0, 0.0) / (c1 - c0)

    def cpu_s(self, split: int, n_stages: int) -> float:
        """The CPU a request at this split uses here: observed (median); else the profiled local stages
        plus the median overhead of the remote splits seen (0 if none)."""
        if split in self._cpu:
            return statistics.median(self._cpu[split])
        local = float(sum(self.local_stage_s[:split]))
        extra = [statistics.median(d) - sum(self.local_stage_s[:k]) for k, d in self._cpu.items() if k < n_stages]
        return local + (max(statistics.median(extra), 0.0) if extra and split < n_stages else 0.0)

    def stall_s(self, split: int, n_stages: int) -> float:
        """Quota stall a request at this split should expect: the stall rate times its CPU (0 with no quota)."""
        return self.stall_per_cpu * self.cpu_s(split, n_stages) if self.stall_per_cpu else 0.0

    def forget(self, split: int) -> None:
        self.remote_suffix_s.pop(split, None)
        self._worker.pop(split, None)

    def observations(self, split: int) -> int:
        return len(self._worker.get(split, ()))

    def _refit(self) -> None:
        b = np.array([s[0] for s in self._samples], dtype=np.float64)
        t = np.array([s[1] for s in self._samples], dtype=np.float64)
        if len(b) >= 3 and b.max() >= 2 * max(b.min(), 1.0):
            self.rtt_s, self.bandwidth_Bps, self.rtt_spread_s = fit_link(b, t)
            self.bandwidth_known = True
            return
        # one size so far: rtt and bandwidth cannot be told apart; keep the bandwidth prior and put the rest in
        # rtt, unless the exchanges were faster than the prior allows: then half and half (exact for this size).
        # Fewer than 3 exchanges: the fastest (the least disturbed: one stalled exchange must not stand for the link)
        pick = np.argmin(t) if len(t) < 3 else np.argsort(t)[len(t) // 2]
        t_med, b_med = float(t[pick]), float(b[pick])
        if t_med - b_med / self.bandwidth_Bps >= MIN_RTT_S:
            self.rtt_s = t_med - b_med / self.bandwidth_Bps
        else:
            self.rtt_s, self.bandwidth_Bps = max(t_med / 2, MIN_RTT_S), max(b_med, 1.0) / max(t_med / 2, MIN_RTT_S)
        self.rtt_spread_s = 1.4826 * float(np.median(np.abs(t - t_med)))
        self.bandwidth_known = False

    def wire_s(self, nbytes: float) -> float:
        """Seconds on the wire for an exchange of nbytes (request + reply), from the fitted rtt and bandwidth."""
        return self.rtt_s + nbytes / self.bandwidth_Bps

    def wire_low_s(self, nbytes: float) -> float:
        """An optimistic wire time: rtt less two spreads; no bandwidth cost until it has been separated; 0 while
        fewer than MIN_OBS exchanges were seen."""
        if self.rtt_spread_s is None or len(self._samples) < MIN_OBS:
            return 0.0
        rtt = max(self.rtt_s - 2 * self.rtt_spread_s, 0.0)
        return rtt + (nbytes / self.bandwidth_Bps if self.bandwidth_known else 0.0)

    def worker_s(self, split: int, n_stages: int) -> float | None:
        """Time in the worker for stages split.. : observed for this split, else the sum of what
        workers report per stage, else None (unknown)."""
        if split in self.remote_suffix_s:
            return self.remote_suffix_s[split]
        stages = range(split, n_stages)
        if all(k in self.remote_stage_s for k in stages):
            return sum(self.remote_stage_s[k] for k in stages)
        return None

    def worker_low_s(self, split: int, n_stages: int) -> float:
        """An optimistic worker time: the fastest observed, half of what workers report, else 0."""
        if split in self._worker:
            return min(self._worker[split])
        reported = self.worker_s(split, n_stages)
        return 0.5 * reported if reported is not None else 0.0


@dataclass(frozen=True)
class Rules:
    """What an operator allows (config.OffloadSettings resolved for one task): the policy, a byte cap per
    request, and stages pinned to the device (local) or to a worker (remote)."""

    policy: str = "latency"
    max_bytes: int | None = None
    local_stages: frozenset[int] = frozenset()
    remote_stages: frozenset[int] = frozenset()

    def allowed(self, k: int, n: int, boundary_bytes: int) -> bool:
        """Whether split k (stages < k here) is allowed; k == n is all local."""
        if self.policy == "local_only":
            return k == n
        if k == n:
            return self.policy != "remote_only" and not self.remote_stages
        if self.max_bytes is not None and boundary_bytes > self.max_bytes:
            return False
        return all(s < k for s in self.local_stages) and all(s >= k for s in self.remote_stages)


@dataclass(frozen=True)
class Decision:
    split: int  # stages < split run here; == n means all local
    predicted_s: float
    costs: tuple[float, ...]  # predicted latency of every split, for logs and reports
    reason: str = ""
    probe: bool = False  # chosen to measure the link, not because it is predicted fastest
    explore: bool = False  # chosen because its estimate is uncertain and it might be fastest
    unavailable: bool = False  # no allowed split can run now (e.g. remote_only and no worker online)


class Planner:
    def __init__(self, pipeline: Pipeline, boundary_bytes: list[int], output_bytes: int, estimates: Estimates,
                 max_bytes: int | None = None, probe_every_s: float | None = 30.0,
                 clock: Callable[[], float] = time.monotonic, rules: Rules | None = None,
                 workers_online: Callable[[], bool] | None = None, explore_every: int | None = 8):  # fmt: skip
        """workers_online: () -> whether some worker's retained status says online (None: assume so);
        explore_every: at most one exploratory request in this many (None: never explore)."""
        self.n = len(pipeline.stages)
        self.boundary_bytes = boundary_bytes  # bytes sent for split k (k = 0..n-1)
        self.output_bytes = output_bytes
        self.est = estimates
        self.rules = rules or Rules("bytes" if max_bytes is not None else "latency", max_bytes)
        self.probe_every_s = probe_every_s  # None: never probe
        self.clock = clock
        self.workers_online = workers_online
        self.explore_every = explore_every
        self.last_remote: float | None = None  # clock() of the last remote exchange
        self._last_probe: float | None = None
        self._since_explore = explore_every or 0  # the first exploration need not wait
        self._was_online = True
        self._requests = 0  # choose() calls so far
        self._last_ran: dict[int, int] = {}  # split -> the request that last ran it (re-measured its estimates)
        self.probes = self.explored = self.offline_skips = 0
        self.remote_down = False  # a remote exchange failed: stay local until a probe succeeds

    @property
    def max_bytes(self) -> int | None:
        return self.rules.max_bytes

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

    def _local(self) -> list[float]:
        """Predicted local seconds of stages 0..k-1 for k = 0..n (plain Python: this runs on every request, and
        numpy's per-call overhead on 5 numbers was most of the planner's ~0.13 ms per request)."""
        scale = self.est.local_scale
        return [t * scale for t in itertools.accumulate(self.est.local_stage_s, initial=0.0)]

    def _sent(self, k: int) -> float:
        return self.boundary_bytes[k] * self.est.wire_ratio.get(k, 1.0) + self.output_bytes  # unobserved: raw

    def costs(self, online: bool = True) -> list[float]:
        """Predicted latency of split k = 0..n (n: all local); inf where the rules forbid it, where
        a worker failed (until a probe gets through) or where no worker is online."""
        e, local = self.est, self._local()
        out = []
        for k in range(self.n):
            if not online or self.remote_down or not self.rules.allowed(k, self.n, self.boundary_bytes[k]):
                out.append(float("inf"))
                continue
            remote = e.worker_s(k, self.n)
            if remote is None:  # nothing known about the workers yet: assume device speed
                remote = float(local[-1] - local[k])
            out.append(float(local[k] + e.wire_s(self._sent(k)) + remote + e.stall_s(k, self.n)))
        allowed = self.rules.allowed(self.n, self.n, 0)
        out.append(float(local[-1] + e.stall_s(self.n, self.n)) if allowed else float("inf"))
        return out

    def best(self, online: bool = True) -> Decision:
        """The split predicted fastest (the most remote one that can run, for prefer_remote), with its
        reason; no side effects."""
        c = self.costs(online)
        k = min(range(len(c)), key=c.__getitem__)  # the first of equal minima, as argmin
        if self.rules.policy == "prefer_remote" and math.isfinite(min(c[: self.n], default=math.inf)):
            k = min(range(self.n), key=c.__getitem__)
        if not math.isfinite(c[k]):
            why = "no worker online" if not online else "a worker failed" if self.remote_down else "the rules"
            return Decision(self.n, c[k], tuple(c), f"no allowed split can run ({why}; policy {self.rules.policy})",
                            unavailable=True)  # fmt: skip
        where = "all local" if k == self.n else "all remote" if k == 0 else f"stages 0..{k - 1} here, {k}.. remote"
        reason = f"{where}: {c[k] * 1e3:.2f} ms predicted (all local {c[-1] * 1e3:.2f} ms); " + self._inputs_text()
        if not online:
            reason = "no worker online; " + reason
        return Decision(k, c[k], tuple(c), reason)

    def choose(self) -> Decision:
        """best(), or now and then a probe of the link while staying local (see _probe_due), or a
        split whose estimate is uncertain and might beat the best (see _explore)."""
        d = self._choose()
        self._requests += 1
        self._last_ran[d.split] = self._requests
        return d

    def _choose(self) -> Decision:
        online = self.workers_online is None or bool(self.workers_online())
        if online and not self._was_online:
            self._last_probe = None  # a worker came back: a probe is due now, not a probe period later
        self._was_online = online
        d = self.best(online)
        if self.rules.policy == "local_only":
            return d
        if not online:
            self.offline_skips += 1
            return d
        self._since_explore += 1
        if d.split == self.n and self._probe_due():
            allowed = [j for j in range(self.n) if self.rules.allowed(j, self.n, self.boundary_bytes[j])]
            if allowed:
                p = min(allowed, key=lambda j: self.boundary_bytes[j])  # small: a probe costs little
                self.probes += 1
                self._last_probe = self.clock()
                return Decision(p, d.costs[p], d.costs, f"probe: split {p} to measure the link; " + d.reason, probe=True)
        if (x := self._explore(d)) is not None:
            return x
        return d

    def _explore(self, d: Decision) -> Decision | None:
        """The uncertain split (fewer than MIN_OBS exchanges) whose optimistic cost is lowest, when that
        beats the best prediction and no exploration happened in the last explore_every requests (the last 2
        when it might halve the latency).  Each split is explored at most MIN_OBS times: the extra cost is bounded."""
        if self.explore_every is None or self._since_explore < min(2, self.explore_every) or self.remote_down:
            return None
        local, best_s = self._local(), d.predicted_s
        if (x := self._recheck(d)) is not None:
            return x
        cands = []
        for k in range(self.n):
            if k == d.split or self.est.observations(k) >= MIN_OBS or not math.isfinite(d.costs[k]):
                continue
            low = float(local[k] + self.est.wire_low_s(self._sent(k)) + self.est.worker_low_s(k, self.n))
            if low < best_s:
                cands.append((low, k))
        if not cands:
            return None
        low, k = min(cands)
        if self._since_explore < self.explore_every and low >= 0.5 * best_s:
            return None
        self._since_explore = 0
        self.explored += 1
        return Decision(k, d.costs[k], d.costs, f"explore: split {k} might take {low * 1e3:.2f} ms "
                        f"({self.est.observations(k)} exchanges seen); " + d.reason, explore=True)  # fmt: skip

    def _recheck(self, d: Decision) -> Decision | None:
        """A split predicted within LOCAL_RECHECK_MARGIN of the best that has not run for LOCAL_RECHECK *
        explore_every requests (explore_every within NEAR_TIE), the longest unseen first, at most one in 2 * explore_every.  Without it, an estimate
        inflated by one busy moment (the device's, or the link's while the planner was seeded) would keep the
        planner off that split for good: all local while offloading, a remote split while local, or one remote split while another
        runs (on a loaded machine a 147 KB all-remote exchange was fitted as 12 ms rtt and no bandwidth cost, so
        the 25 KB middle split, 2x faster, never ran again)."""
        n, c, best = self.n, d.costs, d.predicted_s
        if self.explore_every is None or self._since_explore < 2 * self.explore_every:
            # at most one in 2 * explore_every requests: with two splits near the best, one in explore_every each
            # was 12 % of all requests on slower splits, enough to move a median by 10 %
            return None
        stale = []
        for k in range(n + 1):
            since = self._requests - self._last_ran.get(k, 0)
            if k != d.split and c[k] < LOCAL_RECHECK_MARGIN * best and \
                    since >= self.explore_every * (1 if c[k] < NEAR_TIE * best else LOCAL_RECHECK):  # fmt: skip
                stale.append((since, k))
        if not stale:
            return None
        since, alt = max(stale)  # the longest unseen
        self._since_explore = 0
        self.explored += 1
        what = "all local" if alt == n else "all remote" if alt == 0 else f"split {alt}"
        return Decision(alt, c[alt], c, f"explore: {what} again, {since} requests since it last ran (its predicted "
                        "time may be stale); " + d.reason, explore=True)  # fmt: skip

    def observed(self, split: int, bytes_out: int, bytes_back: int, elapsed_s: float, worker_s: float,
                 wire_ratio: float = 1.0, busy_s: float | None = None) -> None:  # fmt: skip
        """Feed one remote exchange back (bytes as sent on the wire, after any codec): elapsed_s from
        request to reply, worker_s of it in the worker (see Estimates.observe for busy_s)."""
        self.est.observe(split, bytes_out, bytes_back, elapsed_s, worker_s, busy_s)
        r = self.est.wire_ratio
        r[split] = wire_ratio if split not in r else (1 - self.est.alpha) * r[split] + self.est.alpha * wire_ratio
        self.last_remote = self.clock()
        self.remote_down = False

    def observed_local(self, first: int, stop: int, elapsed_s: float) -> None:
        """Stages first..stop-1 ran here in elapsed_s seconds."""
        self.est.observe_local(first, stop, elapsed_s)

    def observed_cpu(self, split: int, cpu_s: float, throttled_total_s: float, cpu_total_s: float) -> None:
        """See Estimates.observe_cpu."""
        self.est.observe_cpu(split, cpu_s, throttled_total_s, cpu_total_s)

    def failed(self, split: int) -> None:
        """A remote exchange timed out or was refused: forget the worker's time for this split
        and stay local until a probe (every probe_every_s) gets through."""
        self.est.forget(split)
        self.remote_down = True
        self._last_probe = self.clock()
        log.warning("planner: offload of split %d failed; all local until a probe succeeds", split)

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
        spread = f" ±{e.rtt_spread_s * 1e3:.2f}" if e.rtt_spread_s is not None else " (prior)"
        bw = f"{e.bandwidth_Bps * 8 / 1e6:.2f} Mbit/s" + ("" if e.bandwidth_known else " (not separated yet)")
        return f"rtt {e.rtt_s * 1e3:.2f}{spread} ms, bandwidth {bw}, {e.exchanges} exchanges"
