"""Offload under worker failure: the worker process is SIGKILLed mid-stream; every request
still completes (locally, after its deadline), none lost or answered twice, latency bounded
by deadline + local time; a restarted worker takes the load again."""

from __future__ import annotations

import itertools
import signal
import subprocess
import threading
import time

import numpy as np
from test_cli import EXE
from test_offload import _device, _inputs, cloud  # noqa: F401 - the fixture

DEADLINE = 0.5


def _start_worker(mosquitto, cloud, tmp_path):
    p = subprocess.Popen([EXE, "worker", "--name", "wk", "--broker", mosquitto.url, "--registry-key",
                          str(cloud.registry_pub), "--cache", str(tmp_path / "wk-cache"), "--threads", "1"],
                         stdout=subprocess.PIPE)  # fmt: skip
    assert p.stdout.readline(), "the worker did not start"
    return p


def test_kill_the_worker_mid_stream_then_restart_it(mosquitto, cloud, tmp_path):
    proc = _start_worker(mosquitto, cloud, tmp_path)
    n_dev, after_kill = 3, 4
    devs = [_device(mosquitto, cloud.pipeline(), cloud.rec, deadline=DEADLINE, name=f"d{i}") for i in range(n_dev)]
    xs = _inputs(cloud.local, 16, seed=7)
    want = [cloud.local.run(x) for x in xs]
    t0 = time.perf_counter()
    for x in xs[:3]:
        cloud.local.run(x)
    local_s = (time.perf_counter() - t0) / 3
    results: list[list] = [[] for _ in range(n_dev)]
    remote = threading.Semaphore(0)
    killed = threading.Event()

    def stream(i):
        """Requests back to back until `after_kill` more were answered after the kill."""
        since_kill = 0
        for j in itertools.count():
            x = xs[j % len(xs)]
            t = time.perf_counter()
            out, where = devs[i].run(x, 1)
            ok = all(np.array_equal(out[k], v) for k, v in want[j % len(xs)].items())
            results[i].append((j, where, time.perf_counter() - t, ok))
            if where.startswith("remote"):
                remote.release()
            since_kill += killed.is_set()
            if since_kill > after_kill:
                return

    threads = [threading.Thread(target=stream, args=(i,)) for i in range(n_dev)]
    for t in threads:
        t.start()
    for _ in range(15):  # the worker is in the middle of a stream of requests
        assert remote.acquire(timeout=30), "requests were not offloaded before the kill"
    proc.send_signal(signal.SIGKILL)
    killed.set()
    proc.wait()
    for t in threads:
        t.join()

    for i, rs in enumerate(results):
        assert [j for j, *_ in rs] == list(range(len(rs))), "a request was lost or answered twice"
        assert all(ok for *_, ok in rs), "a reply differs from all-local"
        wheres = [w for _, w, _, _ in rs]
        assert wheres[-1] == "fallback" and set(wheres) <= {"remote:wk", "fallback"}
        assert devs[i].stats.remote + devs[i].stats.fallback == len(rs)
    latencies = sorted(s for rs in results for _, _, s, _ in rs)
    p99 = latencies[int(0.99 * (len(latencies) - 1))]
    # bound: deadline + local run, with room for a loaded 2-core CI machine (3 device threads + broker)
    assert p99 <= DEADLINE + local_s + 0.5, (p99, local_s)

    proc = _start_worker(mosquitto, cloud, tmp_path)  # restart: offloading resumes
    try:
        devs[0].deadline_s = 5.0  # the first request waits for the worker's install
        where = [devs[0].run(xs[k % len(xs)], 1)[1] for k in range(40)]
        assert "remote:wk" in where, where
        k = where.index("remote:wk")
        assert set(where[k:]) == {"remote:wk"}, where  # once back, it stays back
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        for d in devs:
            d.client.stop()
