"""Real links and slow devices for offload tests and benches (Linux, as root).

ShapedLink: two network namespaces this process creates, joined by a veth pair whose ends
are rate-limited with `tc ... tbf` (this kernel has no netem), plus a fixed delay added by a
small TCP proxy (`proxy` below, half the RTT each way) inside the first namespace.  MQTT
clients in this namespace reach a broker on loopback through it:

    client -> 127.0.0.1:P (relay here) -> unix socket -> [ns A: delay proxy] -> veth, tbf both ways
           -> [ns B: relay 10.213.X.2] -> unix socket -> relay here -> broker on 127.0.0.1

Only loopback and the /30 inside the two namespaces are ever addressed.  Everything is torn
down by close() (names carry this process's id, so parallel runs do not collide).

CpuQuota: a CPU cgroup limiting processes to a fraction of one core (cgroup v2 `cpu.max`
first, else v1 `cpu.cfs_quota_us`), to make a device as slow as an edge board with the same
code path.

`unavailable()` and `CpuQuota.unavailable()` say why either cannot run here (None: they can)."""

from __future__ import annotations

import argparse
import itertools
import os
import queue
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Self

from edge_maas.errors import EdgeMaasError

_ids = itertools.count()
CGROUP = Path("/sys/fs/cgroup")


class NetlabError(EdgeMaasError):
    """A namespace, link, qdisc or cgroup could not be set up."""


# -- the proxy ---------------------------------------------------------------------------------
def _parse(addr: str) -> tuple[int, object]:
    """'tcp:HOST:PORT' or 'unix:PATH' -> (family, address)."""
    kind, _, rest = addr.partition(":")
    if kind == "unix":
        return socket.AF_UNIX, rest
    if kind == "tcp":
        host, _, port = rest.rpartition(":")
        return socket.AF_INET, (host, int(port))
    raise NetlabError(f"address {addr!r}: expected tcp:HOST:PORT or unix:PATH")


def _pump(src: socket.socket, dst: socket.socket, delay_s: float) -> None:
    """Copy src to dst, each chunk delivered delay_s after it was read (a fixed one-way delay); on EOF the
    write side of dst is shut."""
    q: queue.Queue = queue.Queue()

    def writer():
        while (item := q.get()) is not None:
            due, data = item
            if (wait := due - time.monotonic()) > 0:
                time.sleep(wait)
            try:
                dst.sendall(data)
            except OSError:
                break
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    w = threading.Thread(target=writer, daemon=True)
    w.start()
    try:
        while data := src.recv(1 << 16):
            q.put((time.monotonic() + delay_s, data))
    except OSError:
        pass
    q.put(None)
    w.join()


class Proxy:
    """Forward every connection accepted on `listen` to `to` (tcp:HOST:PORT or unix:PATH), adding delay_s
    in each direction.  Port 0 binds any free port (see `address`)."""

    def __init__(self, listen: str, to: str, delay_s: float = 0.0):
        self.to, self.delay_s = _parse(to), delay_s
        family, addr = _parse(listen)
        if family == socket.AF_UNIX and os.path.exists(addr):
            os.unlink(addr)
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        if family == socket.AF_INET:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(addr)
        self.sock.listen(64)
        self.address = self.sock.getsockname()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def start(self) -> Proxy:
        self._thread.start()
        return self

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return  # closed
            threading.Thread(target=self._connect, args=(client,), daemon=True).start()

    def _connect(self, client: socket.socket) -> None:
        family, addr = self.to
        up = socket.socket(family, socket.SOCK_STREAM)
        try:
            up.connect(addr)
        except OSError:
            client.close()
            return
        for s in (client, up):
            if s.family == socket.AF_INET:  # MQTT packets are small and latency-bound: no Nagle
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        t = threading.Thread(target=_pump, args=(up, client, self.delay_s), daemon=True)
        t.start()
        _pump(client, up, self.delay_s)
        t.join()
        client.close()
        up.close()

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


# -- the shaped link ---------------------------------------------------------------------------
def _run(*cmd: str) -> None:
    r = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if r.returncode:
        raise NetlabError(f"{' '.join(cmd)}: {r.stderr.strip() or r.returncode}")


def unavailable() -> str | None:
    """Why a ShapedLink cannot be set up here (None: it can)."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    for tool in ("ip", "tc"):
        if shutil.which(tool) is None:
            return f"{tool} (iproute2) is not installed"
    probe = f"emp{os.getpid() % 100000}{next(_ids)}"
    try:
        _run("ip", "netns", "add", probe)
    except NetlabError as exc:
        return f"cannot create a network namespace: {exc}"
    try:
        _run("ip", "-n", probe, "link", "set", "lo", "up")
        _run("tc", "-n", probe, "qdisc", "add", "dev", "lo", "root", "tbf", "rate", "1mbit", "burst", "16kb",
             "latency", "400ms")  # fmt: skip
    except NetlabError as exc:
        return f"no tbf qdisc: {exc}"
    finally:
        subprocess.run(["ip", "netns", "del", probe], capture_output=True, check=False)
    return None


class ShapedLink:
    """A link of `rate_mbit` both ways and `rtt_ms` of added round trip between MQTT clients here and the
    broker at 127.0.0.1:broker_port; clients connect to `url`.  Use as a context manager; NetlabError when
    the kernel or the tools refuse (see unavailable())."""

    def __init__(self, broker_port: int, rate_mbit: float, rtt_ms: float, work: Path):
        n = next(_ids)
        tag = f"{os.getpid() % 100000}{n}"
        self.ns = (f"ema{tag}", f"emb{tag}")
        self.dev = (f"eva{tag}", f"evb{tag}")
        octet = (os.getpid() + n) % 250 + 1
        self.ip = (f"10.213.{octet}.1", f"10.213.{octet}.2")
        self.rate_mbit, self.rtt_ms, self.broker_port = rate_mbit, rtt_ms, broker_port
        self.work = Path(work)
        self._procs: list[subprocess.Popen] = []
        self._proxies: list[Proxy] = []
        self.url = ""

    def __enter__(self) -> Self:
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _start(self) -> None:
        (a, b), (va, vb) = self.ns, self.dev
        self.work.mkdir(parents=True, exist_ok=True)
        _run("ip", "netns", "add", a)
        _run("ip", "netns", "add", b)
        _run("ip", "link", "add", va, "type", "veth", "peer", "name", vb)
        # burst: 5 ms at the rate (tbf needs at least rate / HZ), at least two full frames; more would let the
        # first kilobytes of every exchange through at no cost
        burst = max(2 * 1600, int(self.rate_mbit * 1e6 / 8 * 0.005))
        for ns, dev, ip in ((a, va, self.ip[0]), (b, vb, self.ip[1])):
            _run("ip", "link", "set", dev, "netns", ns)
            _run("ip", "-n", ns, "addr", "add", f"{ip}/30", "dev", dev)
            _run("ip", "-n", ns, "link", "set", dev, "up")
            _run("ip", "-n", ns, "link", "set", "lo", "up")
            _run("tc", "-n", ns, "qdisc", "add", "dev", dev, "root", "tbf", "rate", f"{self.rate_mbit}mbit",
                 "burst", str(burst), "latency", "400ms")  # fmt: skip
        a_sock, b_sock = self.work / "a.sock", self.work / "b.sock"
        self._proxies.append(Proxy(f"unix:{b_sock}", f"tcp:127.0.0.1:{self.broker_port}").start())
        self._spawn(b, f"tcp:{self.ip[1]}:1883", f"unix:{b_sock}", 0.0)
        self._spawn(a, f"unix:{a_sock}", f"tcp:{self.ip[1]}:1883", self.rtt_ms / 2e3)
        entry = Proxy("tcp:127.0.0.1:0", f"unix:{a_sock}").start()
        self._proxies.append(entry)
        self.url = f"mqtt://127.0.0.1:{entry.address[1]}"

    def _spawn(self, ns: str, listen: str, to: str, delay_s: float) -> None:
        p = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-m", "edge_maas.netlab", "proxy", "--listen",
                              listen, "--to", to, "--delay-ms", str(delay_s * 1e3)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
        self._procs.append(p)
        if p.stdout.readline().strip() != "ready":
            raise NetlabError(f"the proxy in {ns} did not start: {p.stderr.read().strip()}")

    def close(self) -> None:
        for px in self._proxies:
            px.close()
        for p in self._procs:
            p.terminate()
        for p in self._procs:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for ns in self.ns:  # deleting a namespace deletes its end of the veth, and so the pair
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)


# -- a slow device -----------------------------------------------------------------------------
class CpuQuota:
    """A CPU cgroup that lets its processes use `fraction` of one core per 100 ms period (cgroup v2
    cpu.max where the cpu controller is on the unified hierarchy, else v1 cpu.cfs_quota_us).  add(pid)
    moves a process in; close() moves them back out and removes the group."""

    PERIOD_US = 100_000

    def __init__(self, fraction: float, name: str | None = None):
        if not 0 < fraction <= 64:
            raise NetlabError(f"CPU fraction must be in (0, 64], got {fraction}")
        self.fraction = fraction
        self.name = name or f"edge_maas_quota_{os.getpid()}_{next(_ids)}"
        self.path: Path | None = None
        self.v2 = False

    @staticmethod
    def unavailable() -> str | None:
        if os.geteuid() != 0:
            return "cgroups need root"
        if CpuQuota._v2_root() is None and not (CGROUP / "cpu" / "cpu.cfs_quota_us").exists():
            return "neither cgroup v2 cpu.max nor v1 cpu.cfs_quota_us is available"
        return None

    @staticmethod
    def _v2_root() -> Path | None:
        controllers = CGROUP / "cgroup.controllers"
        if controllers.exists() and "cpu" in controllers.read_text().split():
            return CGROUP
        return None

    def __enter__(self) -> Self:
        quota = int(self.fraction * self.PERIOD_US)
        root = self._v2_root()
        try:
            if root is not None:
                sub = root / "cgroup.subtree_control"
                if "cpu" not in sub.read_text().split():
                    sub.write_text("+cpu")
                self.path, self.v2 = root / self.name, True
                self.path.mkdir()
                (self.path / "cpu.max").write_text(f"{quota} {self.PERIOD_US}")
            else:
                self.path = CGROUP / "cpu" / self.name
                self.path.mkdir()
                (self.path / "cpu.cfs_period_us").write_text(str(self.PERIOD_US))
                (self.path / "cpu.cfs_quota_us").write_text(str(quota))
        except OSError as exc:
            self.close()
            raise NetlabError(f"cannot set up a CPU quota cgroup: {exc}") from None
        return self

    def add(self, pid: int) -> None:
        """Move process `pid` (all its threads) into the group."""
        (self.path / "cgroup.procs").write_text(str(pid))

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self.path is None or not self.path.exists():
            return
        try:
            for pid in (self.path / "cgroup.procs").read_text().split():
                try:
                    (self.path.parent / "cgroup.procs").write_text(pid)
                except OSError:
                    pass  # it exited meanwhile
            self.path.rmdir()
        except OSError:
            pass


def throttled_s() -> float | None:
    """Seconds this process's CPU cgroup has spent throttled by its quota so far (v2 throttled_usec, v1
    throttled_time); None where that is not readable.  A device under a quota stalls for the rest of a
    quota period wherever it happens to be: RemoteSplit takes such stalls out of the link's time.
    The cgroup is looked up again every few seconds (a process may be moved into one after it starts)."""
    now = time.monotonic()
    if now - _stat_cache[0] > 2.0:
        _stat_cache[:] = [now, _find_stat()]
    found = _stat_cache[1]
    if found is None:
        return None
    path, field, unit = found
    try:
        return _stat_field(path, field) / unit
    except (OSError, ValueError):
        return None


_stat_cache: list = [-1e9, None]  # [when looked up, (cpu.stat path, field, units per second) or None]


def _find_stat() -> tuple[Path, str, float] | None:
    """This process's cgroup cpu.stat, its throttled field and units per second; None when the cgroup has no CPU
    quota (nothing to throttle: no file to read on every request)."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if "cpu" in controllers.split(","):  # v1
            for mount in (CGROUP / "cpu", CGROUP / controllers):
                stat = mount / path.lstrip("/") / "cpu.stat"
                if stat.exists():
                    return (stat, "throttled_time", 1e9) if _has_quota(stat.parent / "cpu.cfs_quota_us") else None
    for line in lines:
        if line.startswith("0::"):  # v2
            stat = CGROUP / line[3:].lstrip("/") / "cpu.stat"
            if stat.exists():
                return (stat, "throttled_usec", 1e6) if _has_quota(stat.parent / "cpu.max") else None
    return None


def _has_quota(path: Path) -> bool:
    """v1 cpu.cfs_quota_us is -1, v2 cpu.max starts with "max", when the group is not limited; unreadable: assume
    it may be (the throttled counter then simply stays put)."""
    try:
        text = path.read_text().strip()
    except OSError:
        return True
    return not (text == "-1" or text.startswith("max"))


def _stat_field(path: Path, name: str) -> int:
    for line in path.read_text().splitlines():
        key, _, value = line.partition(" ")
        if key == name:
            return int(value)
    raise ValueError(f"{path} has no {name}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m edge_maas.netlab")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("proxy", help="forward connections, adding a one-way delay each direction")
    p.add_argument("--listen", required=True, help="tcp:HOST:PORT or unix:PATH")
    p.add_argument("--to", required=True, help="tcp:HOST:PORT or unix:PATH")
    p.add_argument("--delay-ms", type=float, default=0.0, help="added in each direction")
    args = ap.parse_args(argv)
    px = Proxy(args.listen, args.to, args.delay_ms / 1e3)
    print("ready", flush=True)
    px._serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
