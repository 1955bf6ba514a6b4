"""Planner logic on synthetic estimates (deterministic; speed is measured in bench/)."""

from __future__ import annotations

from edge_maas.planner import Estimates, Planner


class _P:
    def __init__(self, n):
        self.stages = [None] * n


def _planner(rtt, bw, remote_speedup=10.0, max_bytes=None):
    local = [0.002, 0.004, 0.060]  # a cheap stem with a big output, a heavy tail
    est = Estimates(local, rtt_s=rtt, bandwidth_Bps=bw)
    tail = [sum(local[k:]) for k in range(3)]
    est.remote_suffix_s = {k: tail[k] / remote_speedup for k in range(3)}
    return Planner(_P(3), boundary_bytes=[270_000, 60_000, 4_000], output_bytes=10, estimates=est, max_bytes=max_bytes)


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
