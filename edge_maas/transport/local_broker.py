"""A private Mosquitto process (own port, own generated config): used by the tests and benchmarks,
and handy for trying the daemon locally."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Mosquitto:
    """mosquitto -c <generated conf>; restart() keeps the port (for broker-restart tests)."""

    def __init__(self, workdir: Path, port: int | None = None, conf: Path | None = None, tls: bool = False,
                 extra: tuple[str, ...] = ()):  # fmt: skip
        """extra: more lines for the generated config, e.g. ("max_packet_size 16384",)."""
        self.port = port or free_port()
        self.tls = tls
        self.conf = conf or workdir / "mosquitto.conf"
        self.log = workdir / "mosquitto.log"
        if conf is None:
            self.conf.write_text(
                f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                f"log_dest stdout\nmax_inflight_messages 100\nmax_queued_messages 10000\nset_tcp_nodelay true\n"
                + "".join(f"{line}\n" for line in extra)
            )
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://127.0.0.1:{self.port}"

    def start(self) -> Mosquitto:
        # the log goes through our own file handle: mosquitto started as root drops to its own user,
        # which could not open a file in a private test folder
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)], stdout=log, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited: {self.proc.stderr.read().decode(errors='replace')}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"mosquitto did not listen on {self.port}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)

    def restart(self, down_for: float = 0.5) -> None:
        self.stop()
        time.sleep(down_for)
        self.start()
