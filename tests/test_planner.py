"""Planner logic on synthetic estimates (deterministic; speed is measured in bench/)."""

from __future__ import annotations

from edge_maas.planner import Estimates, Planner


class _P:
    def __init__(self, n):
        self.stages = [None] * n


def _planner(rtt, bw, remote_speedup=10.0, max_bytes=None, probe_every_s=None, clock=None):
    local = [0.002, 0.004, 0.060]  # a cheap stem with a big output, a heavy tail
    est = Estimates(local, rtt_s=rtt, bandwidth_Bps=bw)
    tail = [sum(local[k:]) for k in range(3)]
    est.remote_suffix_s = {k: tail[k] / remote_speedup for k in range(3)}
    return Planner(_P(3), boundary_bytes=[270_000, 60_000, 4_000], output_bytes=10, estimates=est, max_bytes=max_bytes,
                   probe_every_s=probe_every_s, **({"clock": clock} if clock else {}))  # fmt: skip


def test_slow_network_stays_local_fast_network_offloads_everything():
    assert _planner(rtt=0.050, bw=125_000).choose().split == 3  # 1 Mbit/s, 50 ms
    assert _planner(rtt=0.0001, bw=1e9).choose().split == 0  # a data-centre link


def test_middle_network_cuts_where_the_boundary_is_small():
    d = _planner(rtt=0.005, bw=1_250_000).choose()  # 10 Mbit/s
    assert d.split == 2 and d.predicted_s == min(d.costs)


def test_byte_cap_policy_and_estimates_follow_observations():
    assert _planner(rtt=0.0001, bw=1e9, max_bytes=5_000).choose().split == 2
    p = _planner(rtt=0.001, bw=12_500_000)
    assert p.choose().split == 2
    for _ in range(20):  # the network turns out slow: 100 ms RTT
        p.est.observe(2, 4_000, 10, elapsed_s=0.100 + 4_010 / 12_500_000 + 0.006, run_s=0.006)
    assert p.est.rtt_s > 0.09
    assert p.choose().split == 3


def test_least_squares_separates_rtt_from_bandwidth_once_sizes_differ():
    est = Estimates([0.01, 0.01], rtt_s=0.050, bandwidth_Bps=1e6)  # a wrong prior
    rtt, bw = 0.020, 1_250_000  # the truth: 20 ms, 10 Mbit/s
    for nbytes in (4_000, 60_000, 4_000, 60_000, 270_000):
        est.observe(1, nbytes, 0, elapsed_s=rtt + nbytes / bw + 0.003, run_s=0.003)
    assert abs(est.rtt_s - rtt) < 1e-6 and abs(est.bandwidth_Bps - bw) / bw < 1e-6
    same = Estimates([0.01], rtt_s=0.050, bandwidth_Bps=1e6)
    for _ in range(10):  # one size only: cannot separate, keeps the EWMA split
        same.observe(0, 4_000, 0, elapsed_s=rtt + 4_000 / bw, run_s=0.0)
    assert abs(same.rtt_s + 4_000 / same.bandwidth_Bps - (rtt + 4_000 / bw)) < 2e-3


def test_worker_reported_stage_times_stand_in_until_a_split_is_observed():
    p = _planner(rtt=0.001, bw=12_500_000)
    p.est.remote_suffix_s.clear()
    assert p.choose().split == 3  # nothing known about workers: assume device speed, stay local
    p.est.remote_stage_s = {0: 0.0002, 1: 0.0004, 2: 0.006}  # as the workers report
    d = p.choose()
    assert d.split == 2 and abs(d.costs[2] - (0.006 + 0.001 + 4_010 / 12_500_000 + 0.006)) < 1e-9
    p.observed(2, 4_000, 10, elapsed_s=0.5, worker_s=0.4)  # observed beats reported
    # observed beats reported; the exchange also showed a 100 ms RTT: local is best now
    assert abs(p.est.worker_s(2, 3) - 0.4) < 1e-9 and p.est.rtt_s > 0.09 and p.choose().split == 3


def test_probe_when_nothing_was_heard_for_a_while_and_not_after_a_failed_probe():
    now = [0.0]
    p = _planner(rtt=0.050, bw=125_000, probe_every_s=30.0, clock=lambda: now[0])
    d = p.choose()
    assert d.probe and d.split == 2 and "probe" in d.reason  # the fewest bytes
    assert p.choose().split == 3 and not p.choose().probe  # the probe failed: no new one for 30 s
    now[0] = 31.0
    assert p.choose().probe
    p.observed(2, 4_000, 10, elapsed_s=0.2, worker_s=0.006)
    now[0] = 40.0
    d = p.choose()
    assert not d.probe and d.split == 3 and "all local" in d.reason and "rtt" in d.reason


def test_compression_ratio_observed_per_split_lowers_its_cost():
    p = _planner(rtt=0.005, bw=1_250_000)
    before = p.costs()[1]
    p.observed(1, 20_000, 10, elapsed_s=0.005 + 20_010 / 1_250_000 + 0.006, worker_s=0.006, wire_ratio=1 / 3)
    assert p.est.wire_ratio == {1: 1 / 3}
    assert p.costs()[1] < before - 0.02  # 40 KB fewer on a 10 Mbit/s link


def test_a_failed_exchange_keeps_requests_local_until_a_probe_gets_through():
    now = [0.0]
    p = _planner(rtt=0.0001, bw=1e9, probe_every_s=30.0, clock=lambda: now[0])
    p.observed(0, 270_000, 10, elapsed_s=0.01, worker_s=0.006)
    assert p.choose().split == 0  # a fast link: all remote
    p.failed(0)  # the worker went away: the request fell back after its deadline
    assert 0 not in p.est.remote_suffix_s
    assert p.choose().split == 3 and not p.choose().probe  # no deadline paid again and again
    now[0] = 31.0
    probe = p.choose()
    assert probe.probe
    p.observed(probe.split, 4_000, 10, elapsed_s=0.002, worker_s=0.001)  # it got through
    assert not p.remote_down and p.choose().split != 3


def test_probes_alternate_boundary_sizes():
    now = [0.0]
    p = _planner(rtt=0.050, bw=125_000, probe_every_s=1.0, clock=lambda: now[0])
    splits = []
    for t in range(4):
        now[0] = t * 2.0
        d = p.choose()
        assert d.probe
        splits.append(d.split)
    assert splits == [2, 0, 2, 0]  # 4 KB and 270 KB boundaries
