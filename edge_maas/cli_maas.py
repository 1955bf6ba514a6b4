"""`edge-maas keys|registry|device`: the MaaS commands (registry and device daemon)."""

from __future__ import annotations

import argparse
import signal
import threading
from pathlib import Path


def add_commands(sub) -> None:
    k = sub.add_parser("keys", help="registry signing keys")
    ks = k.add_subparsers(dest="keys_cmd", required=True)
    kn = ks.add_parser("new", help="create an Ed25519 key pair (KEY and KEY.pub)")
    kn.add_argument("--out", type=Path, required=True, help="private key path; the public key goes beside it as .pub")
    kn.set_defaults(func=cmd_keys_new)

    r = sub.add_parser("registry", help="publish, deploy, roll back and serve model versions")
    rs = r.add_subparsers(dest="registry_cmd", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--root", type=Path, required=True, help="registry folder (blobs + registry.sqlite)")
    common.add_argument("--key", type=Path, required=True, help="the registry's private key")
    net = argparse.ArgumentParser(add_help=False)
    net.add_argument("--broker", default="mqtt://127.0.0.1:1883")
    pub = rs.add_parser("publish", parents=[common], help="store and sign a split model (edge-maas split output)")
    pub.add_argument("split_dir", type=Path)
    pub.set_defaults(func=cmd_publish)
    ls = rs.add_parser("list", parents=[common], help="published versions")
    ls.set_defaults(func=cmd_list)
    dep = rs.add_parser("deploy", parents=[common, net], help="set devices' desired version (retained)")
    dep.add_argument("target", metavar="MODEL@VERSION")
    dep.add_argument("--device", action="append", required=True)
    dep.set_defaults(func=cmd_deploy)
    rb = rs.add_parser("rollback", parents=[common, net], help="return a device to its previous version")
    rb.add_argument("--device", required=True)
    rb.set_defaults(func=cmd_rollback)
    st = rs.add_parser("status", parents=[net], help="every device's reported state (retained)")
    st.add_argument("--wait", type=float, default=1.0, help="seconds to collect retained reports")
    st.set_defaults(func=cmd_status)
    sv = rs.add_parser("serve", parents=[common, net], help="serve shard chunks until interrupted")
    sv.set_defaults(func=cmd_serve)

    w = sub.add_parser("worker", help="run an offload worker until interrupted")
    w.add_argument("--config", type=Path, help="worker profile (TOML, e.g. firmware_configs/workers/cloud_cpu.toml); "
                   "the flags below override it")  # fmt: skip
    w.add_argument("--name", help="worker name (also its MQTT client id)")
    w.add_argument("--broker", help="broker URL (default mqtt://127.0.0.1:1883)")
    w.add_argument("--registry-key", type=Path, help="the registry's public key")
    w.add_argument("--cache", type=Path, dest="cache_dir", help="blob cache folder")
    w.add_argument("--group", help="shared-subscription group (default workers)")
    w.add_argument("--backend", choices=("litert", "native", "accel"),
                   help="accel: GEMM-type ops accumulated by torch on the GPU when present (bit-exact)")
    w.add_argument("--threads", type=int)
    w.add_argument("--xnnpack", action="store_true", default=None,
                   help="use XNNPACK (faster; may differ from the built-in kernels by 1 LSB, so not bit-exact)")
    w.add_argument("--max-batch", type=int, help="dynamic batching: most requests per batch (default 8)")
    w.add_argument("--max-delay-ms", type=float,
                   help="dynamic batching: how long the oldest request waits for others (default 0: batch what is queued)")
    w.add_argument("--status-every", type=float, dest="status_every_s", help="seconds between retained status reports")
    w.set_defaults(func=cmd_worker)

    b = sub.add_parser("bench", help="measurements that write JSON (and plots)")
    bs = b.add_subparsers(dest="bench_cmd", required=True)
    bo = bs.add_parser("offload", help="latency vs link speed: all-local, all-remote, every split (oracle), planner")
    bo.add_argument("--out", type=Path, default=Path("out"), help="folder for offload.json and offload.png")
    bo.add_argument("--model", default="mobilenetv2_035_96", help="a zoo model")
    bo.add_argument("--shards", type=int, default=4)
    bo.add_argument("--requests", type=int, default=8, help="requests per measurement (the median is kept)")
    bo.add_argument("--codec", choices=("none", "zlib", "rle"), default="none", help="boundary tensor compression")
    bo.add_argument("--settings", help="comma-separated subset of: 1Mbit_50ms,3Mbit_30ms,10Mbit_20ms,30Mbit_5ms,100Mbit_2ms")
    bo.set_defaults(func=cmd_bench_offload)

    d = sub.add_parser("device", help="run the device daemon from a profile until interrupted")
    d.add_argument("--config", type=Path, required=True, help="firmware_configs/<profile>.toml")
    d.set_defaults(func=cmd_device)


def cmd_keys_new(args) -> int:
    from edge_maas.registry.signing import new_key

    pub = new_key(args.out)
    print(f"private key {args.out} (mode 600), public key {pub}")
    return 0


def _registry(args):
    from edge_maas.registry.service import Registry

    return Registry(args.root, args.key)


def _client(url: str, name: str):
    from edge_maas.transport.client import MqttClient

    return MqttClient(url, name).start()


def cmd_publish(args) -> int:
    rec = _registry(args).publish(args.split_dir)
    print(f"published {rec.model}@{rec.version} (manifest {rec.manifest_sha256[:12]}, {rec.manifest_size} bytes)")
    return 0


def cmd_list(args) -> int:
    for rec in _registry(args).catalog.versions():
        print(f"{rec.model}@{rec.version}  manifest {rec.manifest_sha256[:12]}")
    return 0


def cmd_deploy(args) -> int:
    from edge_maas.errors import EdgeMaasError

    model, sep, version = args.target.partition("@")
    if not sep or not model or not version:
        raise EdgeMaasError(f"deploy target {args.target!r} must be MODEL@VERSION")
    client = _client(args.broker, "registry-cli")
    try:
        _registry(args).deploy(client, model, version, args.device)
    finally:
        client.stop()
    print(f"desired state of {', '.join(args.device)} set to {model}@{version}")
    return 0


def cmd_rollback(args) -> int:
    client = _client(args.broker, "registry-cli")
    try:
        model, version = _registry(args).rollback(client, args.device)
    finally:
        client.stop()
    print(f"{args.device} rolled back to {model}@{version}")
    return 0


def cmd_status(args) -> int:
    import time

    from edge_maas.transport import topics
    from edge_maas.transport.messages import ReportedState

    states: dict[str, ReportedState] = {}
    client = _client(args.broker, "registry-status")
    client.subscribe(f"{topics.PREFIX}/device/+/reported", lambda t, p: states.update(
        {(s := ReportedState.model_validate_json(p)).device_id: s}))  # fmt: skip
    time.sleep(args.wait)
    client.stop()
    if not states:
        print("no device has reported yet")
    for d, s in sorted(states.items()):
        running = f"{s.model}@{s.version}" if s.model else "(nothing)"
        health = {True: "healthy", False: "UNHEALTHY", None: "-"}[s.healthy]
        prev = f" previous {s.previous_version}" if s.previous_version else ""
        err = f" last error: {s.last_error}" if s.last_error else ""
        print(f"{d:20s} {s.status:8s} {running:28s} {health}{prev}{err}")
    return 0


def _until_interrupted() -> None:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass


def cmd_serve(args) -> int:
    reg = _registry(args)
    client = _client(args.broker, "registry")
    reg.serve(client)
    print(f"registry serving {args.root} on {args.broker}; Ctrl-C to stop", flush=True)
    _until_interrupted()
    client.stop()
    return 0


def cmd_worker(args) -> int:
    from edge_maas.config import load_worker_profile
    from edge_maas.registry.blobs import BlobStore
    from edge_maas.registry.signing import load_public
    from edge_maas.transport import topics
    from edge_maas.transport.messages import WorkerStatus
    from edge_maas.worker.worker import Batching, Worker

    keys = ("name", "registry_key", "cache_dir", "group", "backend", "threads", "xnnpack", "max_batch", "max_delay_ms",
            "status_every_s")  # fmt: skip
    overrides = {k: getattr(args, k) for k in keys}
    overrides["mqtt"] = {"broker": args.broker} if args.broker else None
    if args.config and args.broker:
        overrides["mqtt"] = {**_toml_table(args.config, "mqtt"), "broker": args.broker}
    p = load_worker_profile(args.config, overrides)
    batching = Batching(p.max_batch, p.max_delay_ms)
    offline = WorkerStatus(worker=p.name, status="offline").model_dump_json().encode()
    client = _profile_client(p.mqtt, p.name, will=(topics.worker_status(p.name), offline))
    worker = Worker(p.name, client, BlobStore(p.cache_dir), load_public(p.registry_key), group=p.group,
                    backend=p.backend, options=p.backend_options(), batching=batching,
                    status_every_s=p.status_every_s)  # fmt: skip
    print(f"worker {p.name} serving {topics.offload_shared(p.group) if p.group else topics.offload('+')} on "
          f"{p.mqtt.broker} ({p.backend}, batches of up to {batching.max_batch}, {batching.max_delay_ms} ms delay)",
          flush=True)  # fmt: skip
    _until_interrupted()
    worker.close()
    client.stop()
    return 0


def _toml_table(path: Path, table: str) -> dict:
    import tomllib

    return tomllib.loads(path.read_text()).get(table, {})


def _profile_client(m, client_id: str, will: tuple[str, bytes]):
    """A started client from [mqtt] settings (TLS files, username, password file)."""
    from edge_maas.transport.client import MqttClient

    password = m.password_file.read_text().strip() if m.password_file else None
    return MqttClient(m.broker, client_id, username=m.username, password=password,
                      ca_file=str(m.ca_file) if m.ca_file else None, cert_file=str(m.cert_file) if m.cert_file else None,
                      key_file=str(m.key_file) if m.key_file else None, will=will).start()  # fmt: skip


def cmd_bench_offload(args) -> int:
    from edge_maas import offload_bench as ob
    from edge_maas.errors import EdgeMaasError

    names = args.settings.split(",") if args.settings else list(ob.SETTINGS)
    unknown = [n for n in names if n not in ob.SETTINGS]
    if unknown:
        raise EdgeMaasError(f"unknown link setting {', '.join(unknown)}; choose from {', '.join(ob.SETTINGS)}")
    setup = ob.Setup(model=args.model, shards=args.shards, requests=args.requests, codec=args.codec)
    js, png = ob.run(args.out, setup, {n: ob.SETTINGS[n] for n in names})
    print(f"wrote {js} and {png}")
    return 0


def cmd_device(args) -> int:
    from edge_maas.config import ConfigError, load_profile
    from edge_maas.device.agent import DeviceAgent
    from edge_maas.registry.blobs import BlobStore
    from edge_maas.registry.signing import load_public
    from edge_maas.transport import topics
    from edge_maas.transport.messages import ReportedState

    profile = load_profile(args.config)
    if profile.registry_key is None:
        raise ConfigError(f"profile {profile.device_id}: registry_key (the registry's public key) is required")
    offline = ReportedState(device_id=profile.device_id, status="offline").model_dump_json().encode()
    client = _profile_client(profile.mqtt, profile.device_id, will=(topics.reported(profile.device_id), offline))
    agent = DeviceAgent(profile.device_id, client, BlobStore(profile.cache_dir), load_public(profile.registry_key),
                        backend=profile.runtime.backend, backend_options=profile.backend_options(),
                        cache_budget=profile.memory_budget_mb << 20, offload=profile.offload)  # fmt: skip
    print(f"device {profile.device_id} following {topics.desired(profile.device_id)} on {profile.mqtt.broker}",
          flush=True)  # fmt: skip
    _until_interrupted()
    agent.close()
    client.stop()
    return 0
