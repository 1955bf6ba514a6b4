"""`edge-maas` command line: split, run, inspect, demo (+ keys, registry, device: cli_maas.py)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

import numpy as np

from edge_maas import __version__, logging_setup
from edge_maas.errors import EdgeMaasError, TensorMismatchError

log = logging.getLogger("edge_maas")


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    logging_setup.configure(args.verbose, getattr(args, "log_format", "text"))  # --log-format: the daemons'
    try:
        _require_registry(args)
        code = args.func(args) or 0
        sys.stdout.flush()  # a closed pipe shows here, inside the handlers below
        return code
    except BrokenPipeError:
        # `edge-maas inspect M | head`: the reader left.  As the Python docs advise: point stdout at devnull so
        # the interpreter's final flush does not fail again, and exit quietly.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    except EdgeMaasError as exc:
        print(f"edge-maas: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a user path we could not read or write (permissions, missing folder, full disk)
        where = f": {exc.filename}" if exc.filename else ""
        print(f"edge-maas: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 2
    except MemoryError:  # numpy or the interpreter could not get memory for what a model asked
        print("edge-maas: error: out of memory (the model or its inputs need more than this process may use)",
              file=sys.stderr)  # fmt: skip
        return 2
    except KeyboardInterrupt:
        return 130


def _require_registry(args) -> None:
    """Registry commands other than publish (and root, which stores trust metadata before the first publish)
    need an existing registry: a mistyped --root must not silently become a new, empty one."""
    if getattr(args, "command", None) == "registry" and getattr(args, "registry_cmd", None) not in ("publish", "root"):
        if getattr(args, "root", None) is not None:
            from edge_maas.registry.catalog import require_registry

            require_registry(args.root)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="edge-maas", description="Model-as-a-service runtime for the edge.")
    p.add_argument("--version", action="version", version=f"edge-maas {__version__}")
    p.add_argument("-v", "--verbose", action="count", default=0, help="-v: info logs, -vv: debug logs")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("split", help="cut an int8 .tflite into shard models plus manifest.json")
    s.add_argument("model", type=Path)
    how = s.add_mutually_exclusive_group(required=True)
    how.add_argument("--shards", type=int, metavar="N", help="N shards balanced by cost (see --balance)")
    how.add_argument("--at", metavar="T1[,T2...]", help="cut right after the ops producing these tensors")
    how.add_argument("--every-op", action="store_true", help="one shard per operator")
    s.add_argument("--balance", choices=("macs", "latency"), default="macs",
                   help="cost to balance with --shards: MACs from shapes, or per-op latency measured here")
    s.add_argument("--out", type=Path, required=True,
                   help="output folder (manifest.json + shard_NN.tflite), written all or nothing: built beside it, "
                   "then moved in; an existing folder keeps its other files, and its manifest.json and shard "
                   "files are replaced")  # fmt: skip
    s.add_argument("--name", help="model name in the manifest (default: file stem)")
    s.add_argument("--model-version", default="1", help="version string in the manifest (default: 1)")
    s.set_defaults(func=cmd_split)

    c = sub.add_parser("compose", help="models sharing a backbone -> one service: shared submodel + one head each")
    c.add_argument("models", type=Path, nargs="*", help="int8 .tflite models (task named after the file stem)")
    c.add_argument("--task", action="append", default=[], metavar="NAME=PATH", help="a model and its task name")
    c.add_argument("--out", type=Path, required=True,
                   help="output folder (manifest.json + backbone.tflite + head_TASK.tflite), written all or nothing")
    c.add_argument("--name", help="service name in the manifest (default: the --out folder's name)")
    c.add_argument("--service-version", default="1", help="version string in the manifest (default: 1)")
    c.set_defaults(func=cmd_compose)

    _head_parser(sub)

    r = sub.add_parser("run", help="run a split model, a service's tasks, or a whole .tflite on an input array")
    r.add_argument("manifest", type=Path, help="DIR/manifest.json, or a .tflite to run whole")
    r.add_argument("--input", type=Path, required=True, help=".npy (one input) or .npz keyed by tensor name")
    r.add_argument("--output", type=Path, required=True,
                   help=".npy (one output) or .npz keyed by tensor name (services: keyed TASK/TENSOR)")
    r.add_argument("--task", help="service task(s) to run, comma-separated (default: the only task)")
    _backend_args(r)
    r.set_defaults(func=cmd_run)

    i = sub.add_parser("inspect", help="print ops, tensors, boundaries, sizes and MACs")
    i.add_argument("path", type=Path, help="a .tflite model or a manifest.json")
    i.set_defaults(func=cmd_inspect)

    d = sub.add_parser("demo", help="split a zoo model, run it as a pipeline, print a report")
    d.add_argument("--model", type=Path, default=None, help="default: the zoo's digits MLP (shipped in the package)")
    d.add_argument("--shards", type=int, default=3)
    d.add_argument("--out", type=Path, default=None, help="where to write the shards (default: a temp folder)")
    d.add_argument("--broker", default=None, help="MQTT broker URL (default: an embedded amqtt broker)")
    d.add_argument("--no-mqtt", action="store_true", help="skip the registry -> MQTT -> device part")
    _backend_args(d)
    d.set_defaults(func=cmd_demo)

    from edge_maas.cli_maas import add_commands
    from edge_maas.cli_quantize import add_quantize

    add_quantize(sub)
    add_commands(sub)
    return p


_HEAD_EXAMPLE = """example (a backbone's features -> a new task, trained on few samples, added to the service):
  edge-maas compose a.tflite b.tflite --out svc
  edge-maas head train svc/manifest.json --at backbone/out_0 --data train.npz --task ge5 --hidden 16
  edge-maas run svc/manifest.json --task ge5 --input x.npy --output y.npy"""


_HEAD_TRAIN = """Run the submodels that compute TENSOR on the samples in --data, train a classifier on those
features (logistic regression, or one ReLU layer of --hidden units) and quantize it to full-integer int8
(TFLite's rules); report float vs int8 accuracy on a held-out part; check that the interpreter and the native
kernels give the same bytes.  Then add it to the service: DIR/head_TASK.tflite, and a task TASK (output
TASK/out_0, with a golden pair) in DIR/manifest.json, at a new version, unsigned and unreleased (the registry
signs and numbers it at publish).  A version-1 split folder becomes a version-2 service."""


def _head_parser(sub) -> None:
    h = sub.add_parser("head", help="transfer learning: train a new task's head on a service's features",
                       description="Train small classifier heads on the features a service already computes.",
                       epilog=_HEAD_EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    hs = h.add_subparsers(dest="head_cmd", required=True, metavar="{train,remove}")
    t = hs.add_parser(
        "train", help="train a head at a tensor of a service and add it as a new task",
        description=_HEAD_TRAIN,
        epilog=_HEAD_EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    t.add_argument("manifest", type=Path, help="DIR/manifest.json of a service (edge-maas compose) or a split model")
    t.add_argument("--at", required=True, metavar="TENSOR",
                   help="the tensor the head reads: a submodel output, e.g. backbone/out_0 (not a service input)")
    t.add_argument("--data", type=Path, required=True, metavar="TRAIN.npz",
                   help="x: the service input's samples, (n, ...) of its dtype (or one array per input name); "
                   "y: one integer label per sample")  # fmt: skip
    t.add_argument("--task", required=True, metavar="NAME", help="the new task's name (letters, digits, _ . -)")
    t.add_argument("--hidden", type=int, metavar="N", help="one hidden ReLU layer of N units (default: none)")
    t.add_argument("--version", dest="service_version", metavar="V",
                   help="the edited service's version (default: the next one: 1 -> 2, 1.0 -> 1.1)")
    t.add_argument("--backend", choices=("litert", "native"), default="litert",
                   help="what runs the submodels for the features (both give the same bytes)")
    t.add_argument("--holdout", type=float, default=0.25, metavar="FRACTION",
                   help="part of the samples kept out of training to score the head (default 0.25; 0: none)")
    t.add_argument("--seed", type=int, default=0, help="seed of the held-out split and the classifier")
    t.add_argument("--replace", action="store_true",
                   help="retrain an existing task: its head is replaced, the other tasks stay as they are")
    t.set_defaults(func=cmd_head_train)
    r = hs.add_parser("remove", help="drop a task (and the submodels only it needs) from a service",
                      description="Write the service without one task, at a new version; devices that get it "
                      "drop that task and keep serving the others without reloading them.")  # fmt: skip
    r.add_argument("manifest", type=Path, help="DIR/manifest.json of a service")
    r.add_argument("--task", required=True, metavar="NAME")
    r.add_argument("--version", dest="service_version", metavar="V", help="the edited service's version (default: next)")
    r.set_defaults(func=cmd_head_remove)


def cmd_head_train(args) -> int:
    from edge_maas.heads.service_head import train_service_task

    r = train_service_task(args.manifest, args.at, args.data, args.task, args.hidden, args.service_version,
                           args.backend, args.holdout, args.seed, replace=args.replace)  # fmt: skip
    h = r.head
    if r.converted_from_v1:
        print(f"{args.manifest} was a version-1 split: it is now a version-2 service (its shards are submodels)")
    print(f"features at {args.at} {h.boundary.dtype}{list(h.boundary.shape)} of {r.n_samples} samples "
          f"({args.backend}); head: {h.n_train} training samples, {len(h.classes)} classes, "
          + (f"hidden {h.hidden}" if h.hidden else "logistic regression"))  # fmt: skip
    if r.accuracy:
        a = r.accuracy
        print(f"held out {a.n} samples: float accuracy {a.float:.4f}, int8 accuracy {a.int8:.4f} "
              f"({(a.int8 - a.float) * 100:+.2f} points)")  # fmt: skip
    print(f"interpreter vs native head: identical bytes on {r.checked} samples")
    print(f"wrote {r.path.parent / r.submodel.file} ({r.submodel.size} bytes, sha256 {r.submodel.sha256[:12]}) and "
          f"{r.path}: task {args.task} (backbone reused), version {r.previous_version} -> "
          f"{r.manifest.service.version}, unsigned (publish with the registry)")  # fmt: skip
    return 0


def cmd_head_remove(args) -> int:
    from edge_maas.service import ServiceManifest
    from edge_maas.service_edit import remove_task, write_service

    m = ServiceManifest.load(args.manifest)
    edited = remove_task(m, args.task, args.service_version)
    write_service(args.manifest.parent, edited, {})
    gone = sorted({s.name for s in m.submodels} - {s.name for s in edited.submodels})
    print(f"{args.manifest}: task {args.task} removed" + (f" with {', '.join(gone)}" if gone else "")
          + f", version {m.service.version} -> {edited.service.version}; tasks now "
          f"{', '.join(t.name for t in edited.tasks)}, unsigned (publish with the registry)")  # fmt: skip
    return 0


def _backend_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", choices=("litert", "native", "native-only"), default="litert",
                   help="native: edge_maas kernels for every stage that has all its ops, the interpreter for the "
                   "rest (logged with -v); native-only: fail unless every stage runs natively")  # fmt: skip
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--no-xnnpack", action="store_true", help="interpreter built-in kernels only (no delegates)")
    p.add_argument("--config", type=Path, help="device profile (firmware_configs/*.toml): its runtime settings win")


def _backend_options(args) -> dict:
    if args.config:
        from edge_maas.config import load_profile

        profile = load_profile(args.config)
        args.backend = profile.runtime.backend
        return profile.backend_options()
    return {"threads": args.threads, "xnnpack": not args.no_xnnpack} if args.backend == "litert" else {"threads": args.threads}


def cmd_split(args) -> int:
    from edge_maas.partition import plan_at_tensors, plan_balanced, plan_every_op, split_model
    from edge_maas.partition.split import require_int8
    from edge_maas.partition.costs import graph_macs, measure_op_latency
    from edge_maas.tflite import load_graph

    source = _read_model(args.model)
    graph = load_graph(source)
    require_int8(graph)  # before planning: a float model gets this message, not a planning error
    if args.at:
        plan = plan_at_tensors(graph, [t.strip() for t in args.at.split(",") if t.strip()])
    elif args.every_op:
        plan = plan_every_op(graph)
    else:
        costs = measure_op_latency(graph) if args.balance == "latency" else graph_macs(graph)
        plan = plan_balanced(graph, args.shards, costs)
    name = args.name or _safe_name(args.model.stem)
    manifest = split_model(graph, plan, args.out, name, args.model_version, source_bytes=source)
    total = sum(s.size for s in manifest.shards)
    print(f"{args.model} -> {args.out}/manifest.json: {len(manifest.shards)} shards, "
          f"{total} bytes (model {len(source)} bytes)")
    for s, cut in zip(manifest.shards, [*plan.boundaries(graph), []]):
        print(f"  {s.file}: {len(s.ops)} ops, {s.size} bytes, {s.macs} MACs" + (f"; cut crosses {cut}" if cut else ""))
    return 0


def cmd_compose(args) -> int:
    from edge_maas.errors import PartitionError
    from edge_maas.partition.compose import Source, compose_service

    named: list[tuple[str, Path]] = []
    for spec in args.task:
        task, sep, path = spec.partition("=")
        if not sep or not task or not path:
            raise PartitionError(f"--task {spec!r}: write it NAME=PATH")
        named.append((task, Path(path)))
    paths = {p.resolve() for _, p in named}
    items = named + [(_safe_name(p.stem), p) for p in args.models if p.resolve() not in paths]
    if not items:
        raise PartitionError("no models given: compose A.tflite B.tflite ... --out DIR")
    sources = [Source(task, _read_model(p), str(p)) for task, p in items]
    name = args.name or _safe_name(args.out.resolve().name)
    m = compose_service(sources, args.out, name, args.service_version)
    total = sum(s.size for s in m.submodels)
    whole = sum(len(s.data) for s in sources)
    print(f"{len(sources)} models ({whole} bytes) -> {args.out}/manifest.json: {len(m.submodels)} submodels, "
          f"{total} bytes, {len(m.tasks)} tasks")
    for s in m.submodels:
        print(f"  {s.file}: {len(s.ops)} ops, {s.size} bytes, {s.macs} MACs, sha256 {s.sha256[:12]}, "
              f"tasks {','.join(m.tasks_using(s.name))}")
    return 0


def cmd_run(args) -> int:
    if args.manifest.suffix != ".tflite" and (args.task is not None or _is_service(args.manifest)):
        return _run_service(args)
    runner = _load_runner(args.manifest, args.backend, _backend_options(args))
    feed = _read_inputs(args.input, runner.inputs)
    outputs = runner.run(feed)
    _write_outputs(args.output, outputs)
    print(f"wrote {', '.join(f'{k} {v.dtype}{list(v.shape)}' for k, v in outputs.items())} to {args.output}")
    return 0


def _is_service(path: Path) -> bool:
    from edge_maas.service import SCHEMA_VERSION, schema_version_of

    try:
        return schema_version_of(path.read_bytes()) == SCHEMA_VERSION
    except OSError:
        return False  # the v1 loader reports it


def _run_service(args) -> int:
    from edge_maas.service import flatten_outputs, load_any, parse_tasks
    from edge_maas.service_pipeline import ServicePipeline

    manifest = load_any(args.manifest)
    tasks = manifest.tasks_or_only(parse_tasks(args.task), "name them with --task A[,B]")
    manifest.task_plan(tasks)  # unknown tasks: before any file is read or written
    if len(tasks) > 1 and args.output.suffix != ".npz":
        raise TensorMismatchError(f"{len(tasks)} tasks give several outputs; write them to an .npz file")
    options = _backend_options(args)
    pipe = ServicePipeline.from_reader(manifest, lambda s: manifest.read_submodel(args.manifest.parent, s),
                                       args.backend, **options)
    try:
        feed = _read_inputs(args.input, pipe.inputs)
        result = pipe.run(feed, tasks)
    finally:
        pipe.close()
    if args.output.suffix == ".npz":
        outputs = flatten_outputs(result)
    else:
        outputs = result[tasks[0]]
    _write_outputs(args.output, outputs)
    print(f"wrote {', '.join(f'{k} {v.dtype}{list(v.shape)}' for k, v in outputs.items())} to {args.output}")
    return 0


def cmd_inspect(args) -> int:
    from edge_maas.inspect import describe_manifest, describe_model

    text = describe_manifest(args.path) if args.path.suffix == ".json" else describe_model(_read_model(args.path))
    print(text)
    return 0


def cmd_demo(args) -> int:
    from edge_maas.demo import run_demo

    return run_demo(args.model, args.shards, args.out, args.backend, _backend_options(args), args.broker,
                    not args.no_mqtt)


def _load_runner(path: Path, backend: str, options: dict):
    from edge_maas.backends import make_stage_backend
    from edge_maas.pipeline import Pipeline

    if path.suffix == ".tflite":
        return make_stage_backend(backend, _read_model(path), path.name, **options)[0]
    return Pipeline.from_manifest(path, backend, **options)


def _read_model(path: Path) -> bytes:
    from edge_maas.errors import ModelFormatError

    try:
        return path.read_bytes()
    except OSError as exc:
        raise ModelFormatError(f"cannot read {path}: {exc.strerror}") from None


def _read_inputs(path: Path, specs) -> dict[str, np.ndarray]:
    try:
        loaded = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise TensorMismatchError(f"cannot read input file {path}: {exc}") from None
    if isinstance(loaded, np.ndarray):
        if len(specs) != 1:
            names = ", ".join(s.name for s in specs)
            raise TensorMismatchError(f"the model has {len(specs)} inputs ({names}); give an .npz keyed by name")
        arrays = {specs[0].name: loaded}
    else:
        arrays = {k: loaded[k] for k in loaded.files}
    # A single example without its batch dimension is accepted for batch-1 models.
    for s in specs:
        a = arrays.get(s.name)
        if a is not None and s.shape[:1] == (1,) and a.shape == s.shape[1:]:
            arrays[s.name] = a[None]
    return arrays


def _write_outputs(path: Path, outputs: dict[str, np.ndarray]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".npz":
        np.savez(path, **outputs)
    elif len(outputs) == 1:
        np.save(path, next(iter(outputs.values())))
    else:
        raise TensorMismatchError(f"the model has {len(outputs)} outputs; write them to an .npz file")


def _safe_name(stem: str) -> str:
    return "".join(c if c.isalnum() or c in "_.-" else "_" for c in stem) or "model"


if __name__ == "__main__":
    raise SystemExit(main())
