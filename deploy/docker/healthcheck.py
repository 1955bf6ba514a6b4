"""Docker HEALTHCHECK of an edge_maas container: asks the daemon this container runs whether it is serving.

Which daemon, and where its broker is, come from PID 1's command line (the image's ENTRYPOINT is `edge-maas`),
parsed by edge-maas's own argument parser, so a `docker run ... IMAGE worker --name w2 --broker URL` is checked
against what it really runs:

- ``registry serve``: a chunk request for a blob that cannot exist must come back refused ("unknown blob"):
  the registry is connected, subscribed and answering (a timeout means it is not).
- ``device``: the device's retained report (em/v1/device/ID/reported) says "online": the broker has its live
  session (a dead one gets its last will, "offline"), and it has restored its state and reported.
- ``worker``: two status reports with "online" within 2 x status_every_s + 2 s: the retained one and a fresh one,
  so the worker's status loop is running, not just its connection.

Exit 0: healthy; 1: not (one line on stdout says why, which `docker inspect` shows).  Uses the profile's MQTT
settings (TLS files, username, password file) with its own client id."""

from __future__ import annotations

import os
import secrets
import sys
import threading
from pathlib import Path

TIMEOUT_S = 8.0


def pid1_args() -> list[str]:
    """edge-maas's arguments of PID 1 (after the script path)."""
    argv = Path("/proc/1/cmdline").read_bytes().rstrip(b"\0").decode().split("\0")
    for i, a in enumerate(argv):
        if os.path.basename(a) == "edge-maas":
            return argv[i + 1 :]
    raise SystemExit(f"unhealthy: PID 1 is not edge-maas: {' '.join(argv)}")


def client(mqtt_settings, what: str):
    from edge_maas.transport.client import MqttClient

    m = mqtt_settings
    password = m.password_file.read_text().strip() if m.password_file else None
    return MqttClient(m.broker, f"health-{what}-{secrets.token_hex(4)}", username=m.username, password=password,
                      ca_file=str(m.ca_file) if m.ca_file else None, cert_file=str(m.cert_file) if m.cert_file else None,
                      key_file=str(m.key_file) if m.key_file else None).start(timeout=TIMEOUT_S)  # fmt: skip


def check_registry(args) -> str:
    from edge_maas.config import MqttSettings
    from edge_maas.errors import TransportError
    from edge_maas.transport.chunks import BlobFetcher

    c = client(MqttSettings(broker=args.broker) if args.broker else MqttSettings(), "registry")
    try:
        BlobFetcher(c, chunk_timeout=TIMEOUT_S / 2, max_retries=1).fetch("0" * 64, 1)
    except TransportError as exc:
        if "unknown blob" in str(exc):
            return "registry answers chunk requests"
        raise SystemExit(f"unhealthy: registry did not answer a chunk request: {exc}") from None
    finally:
        c.stop()
    raise SystemExit("unhealthy: registry served a blob that cannot exist")


def _wait_for(c, topic: str, n: int, timeout: float) -> list[bytes]:
    got: list[bytes] = []
    done = threading.Event()

    def on(_topic, payload):
        got.append(payload)
        if len(got) >= n:
            done.set()

    c.subscribe(topic, on)
    done.wait(timeout)
    return got


def check_device(args) -> str:
    from edge_maas.config import load_profile
    from edge_maas.transport import topics
    from edge_maas.transport.messages import ReportedState

    p = load_profile(args.config)
    c = client(p.mqtt, "device")
    try:
        got = _wait_for(c, topics.reported(p.device_id), 1, TIMEOUT_S / 2)
    finally:
        c.stop()
    if not got:
        raise SystemExit(f"unhealthy: device {p.device_id} has not reported")
    s = ReportedState.model_validate_json(got[-1])
    if s.status != "online":
        raise SystemExit(f"unhealthy: device {p.device_id} reports {s.status}")
    running = f"{s.model}@{s.version}" if s.model else "nothing yet"
    return f"device {p.device_id} online, running {running}"


def check_worker(args) -> str:
    from edge_maas.cli_maas import _toml_table
    from edge_maas.config import load_worker_profile
    from edge_maas.transport import topics
    from edge_maas.transport.messages import WorkerStatus

    overrides = {"name": args.name, "registry_key": args.registry_key, "cache_dir": args.cache_dir,
                 "status_every_s": args.status_every_s}  # fmt: skip
    if args.broker:
        overrides["mqtt"] = {**(_toml_table(args.config, "mqtt") if args.config else {}), "broker": args.broker}
    p = load_worker_profile(args.config, overrides)
    c = client(p.mqtt, "worker")
    try:
        # within docker's 15 s check timeout, whatever the profile's period (a slower one is a configuration error)
        got = _wait_for(c, topics.worker_status(p.name), 2, min(2 * p.status_every_s + 2, 10.0))
    finally:
        c.stop()
    states = [WorkerStatus.model_validate_json(g).status for g in got]
    if len(states) < 2 or states[-1] != "online":
        raise SystemExit(f"unhealthy: worker {p.name}: no fresh online status (got {states})")
    return f"worker {p.name} online"


def main() -> None:
    from edge_maas.cli import _parser

    argv = pid1_args()
    try:
        args = _parser().parse_args(argv)
    except SystemExit:
        raise SystemExit(f"unhealthy: cannot parse PID 1's arguments: {argv}") from None
    if args.command == "registry" and argv[1:2] == ["serve"]:
        print(check_registry(args))
    elif args.command == "device":
        print(check_device(args))
    elif args.command == "worker":
        print(check_worker(args))
    else:
        raise SystemExit(f"unhealthy: PID 1 runs `edge-maas {' '.join(argv)}`, not a daemon")


if __name__ == "__main__":
    try:
        main()
    except SystemExit as exc:
        if exc.code not in (None, 0):
            print(exc.code if isinstance(exc.code, str) else f"unhealthy: exit {exc.code}")
            sys.exit(1)
        raise
    except Exception as exc:  # noqa: BLE001 - any failure is "unhealthy", said in one line
        print(f"unhealthy: {type(exc).__name__}: {exc}")
        sys.exit(1)
