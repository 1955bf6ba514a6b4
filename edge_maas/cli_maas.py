"""`edge-maas keys|registry|device`: the MaaS commands (registry and device daemon)."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import threading
from pathlib import Path


def add_commands(sub) -> None:
    k = sub.add_parser("keys", help="registry signing keys")
    ks = k.add_subparsers(dest="keys_cmd", required=True)
    kn = ks.add_parser("new", help="create an Ed25519 key pair (KEY and KEY.pub)")
    kn.add_argument("--out", type=Path, required=True, help="private key path; the public key goes beside it as .pub")
    kn.add_argument("--force", action="store_true", help="replace an existing key pair (what it signed stops verifying)")
    kn.set_defaults(func=cmd_keys_new)

    t = sub.add_parser("trust", help="the root of trust (TUF root role): which keys sign releases, and rotation",
                       description="A root names root keys (sign root versions, threshold) and release keys "
                       "(sign manifests and desired states, threshold).  Devices pin root v1 (profile registry_key) "
                       "and follow later versions, each signed by a threshold of the previous and its own root keys.")
    ts = t.add_subparsers(dest="trust_cmd", required=True)
    ti = ts.add_parser("init", help="write root v1, signed by its root keys")
    ti.add_argument("--root-key", type=Path, action="append", required=True,
                    help="a root private key (repeat; each signs, so all must be at hand for init)")
    ti.add_argument("--release-key", type=Path, action="append", required=True,
                    help="a release public key (.pub; repeat): the registry signs with one of these")
    ti.add_argument("--root-threshold", type=int, default=1)
    ti.add_argument("--release-threshold", type=int, default=1)
    ti.add_argument("--expires-days", type=float, default=365.0)
    ti.add_argument("--out", type=Path, required=True, help="root metadata file (e.g. root.json)")
    ti.set_defaults(func=cmd_trust_init)
    tr = ts.add_parser("rotate", help="write root version N+1: change root or release keys, revoke a key")
    tr.add_argument("current", type=Path, help="the current root metadata (version N)")
    tr.add_argument("--sign-with", type=Path, action="append", required=True,
                    help="root private keys that sign: a threshold of version N's and of N+1's root keys")
    tr.add_argument("--root-key", type=Path, action="append", help="root public keys of N+1 (default: N's)")
    tr.add_argument("--release-key", type=Path, action="append", help="release public keys of N+1 (default: N's)")
    tr.add_argument("--revoke", action="append", default=[], metavar="KEYID",
                    help="drop this key (keyid or a unique prefix) from every role")
    tr.add_argument("--root-threshold", type=int)
    tr.add_argument("--release-threshold", type=int)
    tr.add_argument("--expires-days", type=float, default=365.0)
    tr.add_argument("--out", type=Path, required=True)
    tr.set_defaults(func=cmd_trust_rotate)

    r = sub.add_parser("registry", help="publish, deploy, roll back and serve model versions")
    rs = r.add_subparsers(dest="registry_cmd", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--root", type=Path, required=True, help="registry folder (blobs + registry.sqlite)")
    common.add_argument("--key", type=Path, help="the registry's private release key (commands that sign need it)")
    common.add_argument("--blob-store", default=os.environ.get("EDGE_MAAS_BLOB_STORE"), metavar="s3://BUCKET[/PREFIX]",
                        help="keep blobs in an S3-compatible bucket (pip install 'edge-maas[s3]'; endpoint and "
                        "credentials from AWS_ENDPOINT_URL_S3, AWS_ACCESS_KEY_ID, ...) instead of ROOT/blobs; "
                        "recorded at first use (default $EDGE_MAAS_BLOB_STORE)")  # fmt: skip
    net = argparse.ArgumentParser(add_help=False)
    net.add_argument("--broker", default="mqtt://127.0.0.1:1883")
    logs = argparse.ArgumentParser(add_help=False)  # the daemons' log format (edge_maas/logging_setup.py)
    logs.add_argument("--log-format", choices=("text", "json"), default="text",
                      help="json: one JSON object per line (time, level, logger, message) for log shippers; "
                      "-v/-vv (before the command) set the level")  # fmt: skip
    pub = rs.add_parser("publish", parents=[common], help="store and sign a split model or a service "
                         "(edge-maas split/compose output); blobs already stored are not stored again")
    pub.add_argument("split_dir", type=Path)
    pub.set_defaults(func=cmd_publish)
    ls = rs.add_parser("list", parents=[common], help="published versions")
    ls.set_defaults(func=cmd_list)
    dep = rs.add_parser("deploy", parents=[common, net], help="set devices' desired version (retained), or roll it "
                        "out to a group stage by stage (docs/rollouts.md)")  # fmt: skip
    dep.add_argument("target", metavar="MODEL@VERSION")
    who = dep.add_mutually_exclusive_group(required=True)
    who.add_argument("--device", action="append", help="a device id (repeat); set at once, nothing waited for")
    who.add_argument("--group", help="a staged rollout to the devices whose profile joins this group")
    dep.add_argument("--stages", default="10%,50%,100%",
                     help="with --group: cumulative shares of the group per stage (sorted device ids; default "
                     "10%%,50%%,100%%)")  # fmt: skip
    dep.add_argument("--max-failures", default="0", help="with --group: failures allowed before the rollout halts "
                     "and rolls the group back: a count, or a percentage of the devices targeted so far (default 0)")
    dep.add_argument("--stage-timeout", type=float, default=300.0,
                     help="with --group: seconds a device has to report the version healthy (default 300)")
    dep.add_argument("--wait", type=float, default=1.0, help="seconds to collect the devices' retained reports (to "
                     "find the group, or to warn about a device never seen; 0 with --device: do not look)")
    dep.add_argument("--ttl", type=float, default=7 * 24 * 3600.0,
                     help="seconds the signed desired state stays valid (registry serve refreshes it; default 7 days)")
    dep.set_defaults(func=cmd_deploy)
    ro = rs.add_parser("rollout", help="staged rollouts (registry deploy --group)")
    ros = ro.add_subparsers(dest="rollout_cmd", required=True)
    rost = ros.add_parser("status", parents=[common], help="every rollout: stage, per-device result, halted or "
                          "complete and why")  # fmt: skip
    rost.add_argument("--json", action="store_true", help="the records as a JSON list")
    rost.set_defaults(func=cmd_rollout_status)
    rb = rs.add_parser("rollback", parents=[common, net], help="return a device to its previous version")
    rb.add_argument("--device", required=True)
    rb.add_argument("--ttl", type=float, default=7 * 24 * 3600.0, help="seconds the signed rollback stays valid")
    rb.set_defaults(func=cmd_rollback)
    ra = rs.add_parser("root", parents=[common, net], help="store a root version (checked to chain) and retain it "
                       "for devices (after `edge-maas trust init|rotate`)")  # fmt: skip
    ra.add_argument("root_file", type=Path)
    ra.add_argument("--no-publish", action="store_true", help="only store it; `registry serve` publishes it")
    ra.set_defaults(func=cmd_registry_root)
    rr = rs.add_parser("resign", parents=[common], help="re-sign every manifest with --key (after a rotation "
                       "revoked the old release key; then deploy again)")  # fmt: skip
    rr.set_defaults(func=cmd_registry_resign)
    st = rs.add_parser("status", parents=[net], help="every device's reported state (retained): version, health, "
                       "update in progress, last error, offload decision, counters")  # fmt: skip
    st.add_argument("--wait", type=float, default=1.0, help="seconds to collect retained reports")
    st.add_argument("--json", action="store_true", help="the reported states as a JSON list (ReportedState models)")
    st.set_defaults(func=cmd_status)
    sv = rs.add_parser("serve", parents=[common, net, logs], help="serve shard chunks until interrupted; keeps desired "
                       "states fresh and root versions retained")  # fmt: skip
    sv.add_argument("--refresh-every", type=float, default=600.0,
                    help="seconds between re-signing desired states past half their lifetime (default 600)")
    sv.add_argument("--ttl", type=float, default=7 * 24 * 3600.0, help="lifetime of re-signed desired states (s)")
    sv.add_argument("--metrics-port", type=int, help="serve Prometheus metrics (chunk requests, bytes sent, "
                    "refusals, releases, devices online; docs/metrics.md) on http://HOST:PORT/metrics; default off")
    sv.add_argument("--metrics-host", default="127.0.0.1",
                    help="address the metrics listen on (default 127.0.0.1; 0.0.0.0 for a scraper on another host)")
    sv.set_defaults(func=cmd_serve)

    w = sub.add_parser("worker", parents=[logs], help="run an offload worker until interrupted")
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
    w.add_argument("--metrics-port", type=int, help="serve Prometheus metrics (queue depth, requests, latency) on "
                   "http://HOST:PORT/metrics for an autoscaler (deploy/k8s); default off")  # fmt: skip
    w.add_argument("--metrics-host", help="address the metrics listen on (default 127.0.0.1, or the profile's "
                   "metrics_host; 0.0.0.0 for a scraper on another host)")  # fmt: skip
    w.set_defaults(func=cmd_worker)

    b = sub.add_parser("bench", help="measurements that write JSON (and plots)")
    bs = b.add_subparsers(dest="bench_cmd", required=True)
    bo = bs.add_parser("offload", help="latency vs link speed: all-local, all-remote, every split (oracle), planner")
    bo.add_argument("--out", type=Path, default=Path("out"), help="folder for offload.json and offload.png")
    bo.add_argument("--model", default="mobilenetv2_035_96", help="a zoo model, or stem_cnn_224 / heavy_cnn_128 "
                    "(built by the bench: workloads where splitting pays)")  # fmt: skip
    bo.add_argument("--shards", type=int, default=4)
    bo.add_argument("--requests", type=int, default=8, help="requests per split in the first pass (the median is kept)")
    bo.add_argument("--pairs", type=int, default=100, help="planner and oracle requests per setting, alternating "
                    "(their medians give planner_vs_oracle)")  # fmt: skip
    bo.add_argument("--warmup", type=int, default=32, help="planned requests per setting before the pairs (a fresh "
                    "planner explores the splits it has not seen; not timed, their splits are in the report)")  # fmt: skip
    bo.add_argument("--codec", choices=("none", "zlib", "rle"), default="none", help="boundary tensor compression")
    bo.add_argument("--settings", help="comma-separated subset of: 1Mbit_50ms,3Mbit_30ms,10Mbit_20ms,30Mbit_5ms,100Mbit_2ms")
    bo.add_argument("--runs", type=int, default=1, help="runs in a row (the report gives each and their spread)")
    bo.add_argument("--link", choices=("shaper", "netns"), default="shaper", help="shaper: the delay added in the "
                    "transport; netns: a real link (veth pair, tbf, delay proxy; needs root)")  # fmt: skip
    bo.set_defaults(func=cmd_bench_offload)

    inf = sub.add_parser("infer", help="ask a device (over MQTT) to run one or several tasks on an input",
                         description="Send one inference request to a device and print (or save) the reply. "
                         "Example: edge-maas infer cam-1 --input x.npy --task cls_a,cls_b --output y.npz",
                         formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    inf.add_argument("device_id")
    inf.add_argument("--input", type=Path, required=True, help=".npy (one input) or .npz keyed by input name")
    inf.add_argument("--input-name", default="input_0",
                     help="the name of a .npy input (default input_0, what `compose` calls a service's input)")
    inf.add_argument("--task", help="comma-separated tasks of the device's service, run in one request "
                     "(outputs keyed TASK/TENSOR); omit for a one-task service or a split model")  # fmt: skip
    inf.add_argument("--output", type=Path, help=".npz (outputs keyed by name) or .npy (one output)")
    inf.add_argument("--broker", default="mqtt://127.0.0.1:1883")
    inf.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the reply")
    inf.set_defaults(func=cmd_infer)

    d = sub.add_parser("device", parents=[logs], help="run the device daemon from a profile until interrupted")
    d.add_argument("--config", type=Path, required=True, help="firmware_configs/<profile>.toml")
    d.add_argument("--http", metavar="[HOST:]PORT",
                   help="serve the Open Inference Protocol (KServe v2 REST, docs/http_api.md) on this address "
                   "(host default 127.0.0.1; port 0: any free one); overrides the profile's [http] "
                   "(pip install 'edge-maas[http]')")  # fmt: skip
    d.add_argument("--metrics-port", type=int, help="serve Prometheus metrics (requests and latency per task and "
                   "stage, installs, offload, cache; docs/metrics.md) on http://127.0.0.1:PORT/metrics (port 0: any "
                   "free one); overrides the profile's metrics_port; default off")  # fmt: skip
    d.set_defaults(func=cmd_device)


def cmd_keys_new(args) -> int:
    from edge_maas.registry.signing import new_key

    pub = new_key(args.out, force=args.force)
    print(f"private key {args.out} (mode 600), public key {pub}")
    return 0


def cmd_trust_init(args) -> int:
    from edge_maas.trust import keys as kf
    from edge_maas.trust.root import new_root, sign_root

    private = [kf.load_private(p) for p in args.root_key]
    signers = [kf.signer(k) for k in private]
    root = new_root([k.public_key() for k in private], [kf.load_public(p) for p in args.release_key],
                    root_threshold=args.root_threshold, release_threshold=args.release_threshold,
                    expires_days=args.expires_days)  # fmt: skip
    _write_new(args.out, sign_root(root, signers))
    print(f"root v1 -> {args.out}: {len(args.root_key)} root key(s) (threshold {args.root_threshold}), "
          f"{len(args.release_key)} release key(s) (threshold {args.release_threshold}), expires {root.expires}")
    return 0


def cmd_trust_rotate(args) -> int:
    from edge_maas.trust import keys as kf
    from edge_maas.trust.root import TrustedRoot, rotate, sign_root

    current = TrustedRoot.from_trusted_bytes(kf.read_bytes(args.current, "root metadata"))
    root = rotate(current.root, root_keys=[kf.load_public(p) for p in args.root_key] if args.root_key else None,
                  release_keys=[kf.load_public(p) for p in args.release_key] if args.release_key else None,
                  revoke=args.revoke, root_threshold=args.root_threshold, release_threshold=args.release_threshold,
                  expires_days=args.expires_days)  # fmt: skip
    data = sign_root(root, [kf.load_signer(p) for p in args.sign_with])
    current.update(data)  # refuse to write a version that devices would refuse
    _write_new(args.out, data)
    print(f"root v{root.version} -> {args.out}: release keys {[k[:12] for k in root.roles['targets'].keyids]}")
    return 0


def _write_new(path: Path, data: bytes) -> None:
    from edge_maas.errors import EdgeMaasError

    try:
        path.write_bytes(data)
    except OSError as exc:
        raise EdgeMaasError(f"cannot write {path}: {exc.strerror}") from None


def cmd_registry_resign(args) -> int:
    n = _registry(args).resign()
    print(f"re-signed {n} manifest(s); deploy again so devices get the new manifest hashes")
    return 0


def cmd_registry_root(args) -> int:
    from edge_maas.trust import keys as kf

    reg = _registry(args)
    version = reg.add_root(kf.read_bytes(args.root_file, "root metadata"))
    if not args.no_publish:
        client = _client(args.broker, "registry-cli")
        try:
            reg.publish_roots(client)
        finally:
            client.stop()
    print(f"root v{version} stored{'' if args.no_publish else ' and retained for devices'}")
    return 0


def _registry(args):
    from edge_maas.registry.service import Registry

    return Registry(args.root, args.key, desired_ttl_s=getattr(args, "ttl", 7 * 24 * 3600.0),
                    blob_store=getattr(args, "blob_store", None))  # fmt: skip


def _client(url: str, name: str):
    """A started MQTT 5 client with a unique id, name-<host>-<random>: two tools (or two registries) with
    one fixed id would take each other's session over in a loop."""
    import paho.mqtt.client as mqtt

    from edge_maas.client import unique_client_id
    from edge_maas.transport.client import MqttClient

    return MqttClient(url, unique_client_id(name), protocol=mqtt.MQTTv5).start()


def cmd_publish(args) -> int:
    from edge_maas.cli_progress import ByteProgress

    reg = _registry(args)
    with ByteProgress("storing blobs") as progress:
        rec = reg.publish(args.split_dir, progress=progress)
    st = reg.last_publish
    print(f"published {rec.model}@{rec.version} release {rec.release} (manifest {rec.manifest_sha256[:12]}, "
          f"{rec.manifest_size} bytes); {st.new_blobs} of {st.blobs} blobs new ({st.new_bytes} bytes), "
          f"the rest already stored")
    return 0


def cmd_list(args) -> int:
    from edge_maas.registry.service import Registry

    # listing signs nothing: no key is loaded (a --key given is ignored, so is its trust check)
    for rec in Registry(args.root, None, blob_store=args.blob_store).catalog.versions():
        print(f"{rec.model}@{rec.version}  release {rec.release}  manifest {rec.manifest_sha256[:12]}")
    return 0


def cmd_deploy(args) -> int:
    import sys

    from edge_maas.errors import EdgeMaasError
    from edge_maas.registry.fleet import FleetWatch
    from edge_maas.registry.rollout import RolloutError, RolloutRunner

    model, sep, version = args.target.partition("@")
    if not sep or not model or not version:
        raise EdgeMaasError(f"deploy target {args.target!r} must be MODEL@VERSION")
    if args.group and args.wait <= 0:
        raise EdgeMaasError("--group needs --wait > 0: a group's members are the devices whose retained reports "
                            "arrive within it")
    reg = _registry(args)
    reg.catalog.version(model, version)  # unpublished: refused before connecting
    reg._need_key()
    client = _client(args.broker, "registry-cli")
    try:
        watch = FleetWatch(client)
        seen = watch.settle(args.wait)
        if args.device:
            for d in args.device if args.wait > 0 else ():  # --wait 0: no look at the fleet, no warning
                if d not in seen:
                    print(f"edge-maas: warning: device {d} has never reported on {args.broker} (no retained "
                          "reported state): its desired state waits for it; check the id", file=sys.stderr)
            reg.deploy(client, model, version, args.device)
            print(f"desired state of {', '.join(args.device)} set to {model}@{version}")
            return 0
        runner = RolloutRunner(reg, client, watch, say=lambda line: print(line, flush=True))
        r = runner.plan(model, version, args.group, args.stages, args.max_failures, args.stage_timeout)
        print(f"rollout {r.id}: {model}@{version} to {len(r.devices)} device(s) of group {args.group} in stages "
              f"{','.join(r.stages)} ({', '.join(map(str, r.sizes))} devices)", flush=True)  # fmt: skip
        r = runner.run(r)
    finally:
        client.stop()
    print(r.summary())
    if r.status != "complete":
        raise RolloutError(f"rollout {r.id} halted at stage {r.stage}: {r.reason}")
    return 0


def cmd_rollout_status(args) -> int:
    import json

    from edge_maas.registry.rollout import RolloutStore

    rollouts = RolloutStore(args.root).all()
    if args.json:
        print(json.dumps([r.model_dump(mode="json") for r in rollouts], indent=1))
        return 0
    if not rollouts:
        print("no rollout yet")
    for r in rollouts:
        print(r.summary())
        for d in r.devices:
            why = f" ({d.reason})" if d.reason else ""
            rb = ""
            if d.rollback:
                rb = f"; rollback {d.rollback}" + (f" ({d.rollback_reason})" if d.rollback_reason else "")
            print(f"  stage {d.stage} {d.device_id:20s} {d.state}{why}{rb}")
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
    import json

    from edge_maas.registry.fleet import FleetWatch, status_line

    client = _client(args.broker, "registry-status")
    try:
        states = FleetWatch(client).settle(args.wait)
    finally:
        client.stop()
    if args.json:
        print(json.dumps([s.model_dump(mode="json") for _, s in sorted(states.items())], indent=1))
        return 0
    if not states:
        print("no device has reported yet")
    for _, s in sorted(states.items()):
        print(status_line(s))
    return 0


_fatal: list[str] = []  # why a daemon's client gave up (its id is in use): _until_interrupted raises it


def _on_sigterm() -> threading.Event:
    """An event that SIGTERM sets.  Install it before a daemon connects: a SIGTERM that comes while
    it starts must still end in a clean stop, not in Python's default (killed on the spot)."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    return stop


def _ready() -> None:
    """Tell systemd (Type=notify) the daemon is up; nothing outside systemd."""
    from edge_maas import systemd_notify as sd

    sd.notify(sd.READY)


def _until_interrupted(stop: threading.Event | None = None) -> None:
    """Block until SIGTERM (``stop`` from _on_sigterm, else installed now) or SIGINT (Ctrl-C); the
    caller then stops cleanly.  TransportError when a client from _profile_client gave up (another
    daemon holds its id): nothing is cleaned up or published then, since the topics belong to the
    other daemon."""
    from edge_maas import systemd_notify as sd

    stop = stop or _on_sigterm()
    tick = min(0.5, sd.watchdog_interval() or 0.5)  # under systemd's WatchdogSec: ping at half its period
    try:
        while not stop.wait(tick) and not _fatal:  # a timed wait: the handler runs promptly on every platform
            sd.notify(sd.WATCHDOG)
    except KeyboardInterrupt:
        pass
    sd.notify(sd.STOPPING)
    if _fatal:
        from edge_maas.errors import TransportError

        raise TransportError(_fatal[0])


def cmd_serve(args) -> int:
    reg = _registry(args)
    client = _client(args.broker, "registry")
    server = reg.serve(client)
    metrics, port = None, None
    if args.metrics_port is not None:
        from edge_maas.registry.fleet import FleetWatch
        from edge_maas.registry.metrics import RegistryMetrics

        metrics = RegistryMetrics(reg, server, FleetWatch(client))
        try:
            port = metrics.serve(args.metrics_port, args.metrics_host)
        except BaseException:
            client.stop()
            raise
    reg.republish(client)  # a broker restarted without persistence lost the retained roots and states
    roots = len(reg.roots())
    stop = threading.Event()

    def refresh():
        while not stop.wait(args.refresh_every):
            try:
                reg.refresh(client)
            except Exception:  # keep serving chunks; the next round tries again
                logging.getLogger(__name__).exception("refreshing desired states failed")

    if reg.key is not None:
        reg.refresh(client)
        threading.Thread(target=refresh, name="refresh", daemon=True).start()
    shown = f", metrics on {args.metrics_host}:{port}/metrics" if port is not None else ""
    print(f"registry serving {args.root} on {args.broker} ({roots} root version(s) retained{shown}); Ctrl-C to stop",
          flush=True)  # fmt: skip
    _until_interrupted()
    stop.set()
    if metrics is not None:
        metrics.close()
    client.stop()
    return 0


def cmd_worker(args) -> int:
    from edge_maas.config import load_worker_profile
    from edge_maas.registry.blobs import BlobStore
    from edge_maas.transport import topics
    from edge_maas.transport.messages import WorkerStatus
    from edge_maas.trust.root import TrustedRoot
    from edge_maas.worker.worker import Batching, Worker

    keys = ("name", "registry_key", "cache_dir", "group", "backend", "threads", "xnnpack", "max_batch", "max_delay_ms",
            "status_every_s", "metrics_port", "metrics_host")  # fmt: skip
    overrides = {k: getattr(args, k) for k in keys}
    overrides["mqtt"] = {"broker": args.broker} if args.broker else None
    if args.config and args.broker:
        overrides["mqtt"] = {**_toml_table(args.config, "mqtt"), "broker": args.broker}
    p = load_worker_profile(args.config, overrides)
    batching = Batching(p.max_batch, p.max_delay_ms)
    offline = WorkerStatus(worker=p.name, status="offline").model_dump_json().encode()
    trust = TrustedRoot.load(p.registry_key)  # a missing key file is refused before anything connects
    client = _profile_client(p.mqtt, p.name, will=(topics.worker_status(p.name), offline))
    worker = Worker(p.name, client, BlobStore(p.cache_dir), trust, group=p.group,
                    backend=p.backend, options=p.backend_options(), batching=batching,
                    status_every_s=p.status_every_s, metrics_port=p.metrics_port,
                    metrics_host=p.metrics_host)  # fmt: skip
    metrics = f", metrics on {p.metrics_host}:{worker.metrics_port}/metrics" if worker.metrics_port is not None else ""
    print(f"worker {p.name} serving {topics.offload_shared(p.group) if p.group else topics.offload('+')} on "
          f"{p.mqtt.broker} ({p.backend}, batches of up to {batching.max_batch}, {batching.max_delay_ms} ms delay"
          f"{metrics})", flush=True)  # fmt: skip
    _ready()  # Worker() subscribed
    _until_interrupted()
    worker.close()
    client.stop()
    return 0


def _toml_table(path: Path, table: str) -> dict:
    import tomllib

    return tomllib.loads(path.read_text()).get(table, {})


def _profile_client(m, client_id: str, will: tuple[str, bytes]):
    """A started client from [mqtt] settings (TLS files, username, password file)."""
    import paho.mqtt.client as mqtt

    from edge_maas.config import ConfigError
    from edge_maas.transport.client import MqttClient

    try:
        password = m.password_file.read_text().strip() if m.password_file else None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the MQTT password file {m.password_file}: "
                          f"{getattr(exc, 'strerror', None) or exc}") from None  # fmt: skip
    for what, f in (("ca_file", m.ca_file), ("cert_file", m.cert_file), ("key_file", m.key_file)):
        if f is not None and not Path(f).is_file():
            raise ConfigError(f"mqtt.{what} {f} does not exist (or is not a file)")
    # refuse_twin: the id is the device's (or worker's) own; a second daemon with it gives up instead of
    # taking the session over back and forth (its start() raises, or _until_interrupted does later)
    client = MqttClient(m.broker, client_id, username=m.username, password=password,
                        ca_file=str(m.ca_file) if m.ca_file else None,
                        cert_file=str(m.cert_file) if m.cert_file else None,
                        key_file=str(m.key_file) if m.key_file else None, will=will,
                        protocol=mqtt.MQTTv5 if m.protocol == "5" else mqtt.MQTTv311,
                        max_packet_size=m.max_packet_size, chunk_size=m.chunk_size, refuse_twin=True)  # fmt: skip
    client.on_fatal = _fatal.append
    return client.start()


def cmd_bench_offload(args) -> int:
    from edge_maas import offload_bench as ob
    from edge_maas.errors import EdgeMaasError

    names = args.settings.split(",") if args.settings else list(ob.SETTINGS)
    unknown = [n for n in names if n not in ob.SETTINGS]
    if unknown:
        raise EdgeMaasError(f"unknown link setting {', '.join(unknown)}; choose from {', '.join(ob.SETTINGS)}")
    setup = ob.Setup(model=args.model, shards=args.shards, requests=args.requests, pairs=args.pairs,
                     warmup=args.warmup, codec=args.codec, link=args.link)  # fmt: skip
    if args.warmup < 0:
        raise EdgeMaasError(f"--warmup must be 0 or more, not {args.warmup}")
    for flag in ("runs", "requests", "pairs"):
        if getattr(args, flag) < 1:
            raise EdgeMaasError(f"--{flag} must be at least 1, not {getattr(args, flag)}")
    js, png = ob.run(args.out, setup, {n: ob.SETTINGS[n] for n in names}, runs=args.runs)
    print(f"wrote {js} and {png}")
    return 0


def cmd_infer(args) -> int:
    import numpy as np

    from edge_maas.cli import _write_outputs
    from edge_maas.client import Client
    from edge_maas.errors import TensorMismatchError
    from edge_maas.service import parse_tasks

    try:
        loaded = np.load(args.input, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise TensorMismatchError(f"cannot read input file {args.input}: {exc}") from None
    inputs = {args.input_name: loaded} if isinstance(loaded, np.ndarray) else {k: loaded[k] for k in loaded.files}
    with Client(args.broker, name="infer-cli") as c:  # typed errors: unknown or offline device, unknown task, ...
        outputs = c.infer(args.device_id, inputs, parse_tasks(args.task), timeout=args.timeout)
    version = outputs.version
    for k, v in outputs.items():
        top = f", top-1 index {int(np.argmax(v))}" if v.size <= 1000 else ""
        print(f"{k}: {v.dtype}{list(v.shape)}{top}")
    if args.output is not None:
        _write_outputs(args.output, outputs)
        print(f"wrote {len(outputs)} output(s) to {args.output}")
    print(f"answered by {args.device_id} running version {version}")
    return 0


def cmd_device(args) -> int:
    from edge_maas.config import ConfigError, load_profile
    from edge_maas.device.agent import DeviceAgent
    from edge_maas.registry.blobs import BlobStore
    from edge_maas.transport import topics
    from edge_maas.transport.messages import ReportedState
    from edge_maas.trust.root import TrustedRoot

    profile = load_profile(args.config)
    if profile.registry_key is None:
        raise ConfigError(f"profile {profile.device_id}: registry_key (the registry's public key) is required")
    http = _http_server(profile.http, args.http)  # bound before anything connects: a port in use fails first
    metrics_port = args.metrics_port if args.metrics_port is not None else profile.metrics_port
    stop = _on_sigterm()
    # the last will keeps labels and groups: an offline device stays a member of its groups for the registry
    offline = ReportedState(device_id=profile.device_id, status="offline", labels=profile.labels,
                            groups=profile.groups).model_dump_json().encode()  # fmt: skip
    # the trust root first: a missing key file is refused before anything connects or creates the cache
    trust = TrustedRoot.load(profile.registry_key, Path(profile.cache_dir) / "root.json")  # later rotations win
    client = _profile_client(profile.mqtt, profile.device_id, will=(topics.reported(profile.device_id), offline))
    cache = BlobStore(profile.cache_dir)
    agent = DeviceAgent(profile.device_id, client, cache, trust, allow_rollback=profile.security.allow_rollback,
                        backend=profile.runtime.backend, backend_options=profile.backend_options(),
                        cache_budget=profile.memory_budget_mb << 20, offload=profile.offload,
                        rollout=profile.rollout,
                        hold_budget=None if profile.hold_budget_kb is None else profile.hold_budget_kb << 10,
                        labels=profile.labels, groups=profile.groups,
                        report_every_s=profile.report_every_s, metrics_port=metrics_port,
                        metrics_host=profile.metrics_host)  # fmt: skip
    shown = f", metrics on {profile.metrics_host}:{agent.metrics.port}/metrics" if agent.metrics.port is not None else ""
    print(f"device {profile.device_id} following {topics.desired(profile.device_id)} on {profile.mqtt.broker}"
          f"{shown}", flush=True)  # fmt: skip
    try:
        if http is not None:
            http.start(agent)
            print(f"serving the Open Inference Protocol on {http.url}/v2", flush=True)
        _ready()  # DeviceAgent() restored its running version and subscribed
        _until_interrupted(stop)
    finally:
        if http is not None:  # first: no request starts on an agent that is shutting down
            http.stop()
    # a clean DISCONNECT sends no last will: say "offline" ourselves, and wait until the broker has it
    agent.shutdown(timeout=5.0)
    client.stop()
    return 0


def _http_server(settings, flag: str | None):
    """The HTTP API's server, bound (edge_maas.device.http_api.HttpServer), or None when it is off.  ``flag``:
    --http's [HOST:]PORT, which turns it on and overrides the profile's host and port."""
    from edge_maas.config import ConfigError, HttpSettings
    from edge_maas.device.oip import HttpApiError

    if flag is not None:
        host, _, port = flag.rpartition(":")
        try:
            settings = HttpSettings(**{**settings.model_dump(), "enabled": True, "port": int(port),
                                       "host": host.strip("[]") or settings.host})  # fmt: skip
        except ValueError:  # int() or the model's validation (pydantic's ValidationError is a ValueError)
            raise ConfigError(f"--http {flag}: expected [HOST:]PORT with PORT in 0..65535") from None
    if not settings.enabled:
        return None
    try:
        from edge_maas.device.http_api import HttpServer
    except ModuleNotFoundError as exc:
        why = f"the HTTP API needs {exc.name}, which is not installed: pip install 'edge-maas[http]'"
        raise HttpApiError(why) from None
    return HttpServer(settings.host, settings.port, settings.max_body_mb << 20)
