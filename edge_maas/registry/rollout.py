"""Staged rollouts of one version to a group of devices, with hawkBit / AWS IoT Jobs semantics.

The group's members are the devices whose reported state names the group, in sorted id order.  Stage k targets the
first ceil(p_k * N) of them (cumulative percentages, the last 100 %): the registry signs and retains their desired
states, then waits for each device's answer to that desired state (ReportedState.update, matched by seq):
  - success: the device runs MODEL@VERSION and is healthy;
  - failure: the install failed (e.g. its health check), the device skipped it (it rolled back from it by itself
    before), it rolled back from it by itself after the swap (probation), or no answer came within the stage timeout.
The next stage starts only when every device of this one succeeded or failed.  As soon as the failures exceed the
allowance (--max-failures: a count, or a percentage of the devices targeted so far; 0 by default: any failure),
the rollout halts: every device it targeted gets a signed rollback to what it ran before the rollout (waited for,
up to the stage timeout), and the devices of later stages are never touched.

Every rollout is a JSON record ROOT/rollouts/NNNN.json, written at every step, so `registry rollout status` shows it
while it runs and after the command ended (a record left "running" means its command was interrupted)."""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Callable
from fractions import Fraction
from itertools import pairwise
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edge_maas.files import atomic_write
from edge_maas.registry.catalog import RegistryError
from edge_maas.registry.fleet import FleetWatch
from edge_maas.transport.client import MqttClient
from edge_maas.transport.messages import ReportedState

log = logging.getLogger(__name__)

DEFAULT_STAGES = "10%,50%,100%"
DeviceRunState = Literal["untouched", "updating", "succeeded", "failed"]
# the per-device state machine: a succeeded device can still fail (it rolls back from the version by itself)
TRANSITIONS: dict[str, set[str]] = {"untouched": {"updating"}, "updating": {"succeeded", "failed"},
                                    "succeeded": {"failed"}, "failed": set()}  # fmt: skip


class RolloutError(RegistryError):
    """Bad stages or threshold, an empty group, an unknown rollout; or a rollout that halted (the message says why)."""


class DeviceRun(BaseModel):
    """One device of a rollout: the stage that targets it (1-based), what it ran before (the rollback target),
    its result, and the rollback it got if the rollout halted.  Times: seconds since the epoch."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    device_id: str
    stage: int = Field(ge=1)
    from_model: str | None = None
    from_version: str | None = None
    state: DeviceRunState = "untouched"
    reason: str | None = None
    seq: int | None = None  # the desired state's seq it was sent
    deployed_at: float | None = None
    finished_at: float | None = None
    rollback: Literal["sent", "done", "failed", "impossible"] | None = None
    rollback_reason: str | None = None
    rollback_seq: int | None = None

    def move(self, state: DeviceRunState, reason: str | None = None) -> None:
        """Change state along TRANSITIONS (RolloutError otherwise: a bug, never a device's doing)."""
        if state not in TRANSITIONS[self.state]:
            raise RolloutError(f"rollout bug: {self.device_id} cannot go from {self.state} to {state}")
        self.state, self.reason = state, reason
        if state in ("succeeded", "failed"):
            self.finished_at = time.time()


class Rollout(BaseModel):
    """A rollout's record.  ``sizes``: how many devices (cumulative) each stage targets; ``stage``: stages started
    (0: none yet); ``status``: running, complete (every device succeeded... or failed within the allowance), halted
    (``reason`` says why)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    id: str
    model: str
    version: str
    group: str
    stages: tuple[str, ...]
    sizes: tuple[int, ...]
    max_failures: str
    stage_timeout_s: float
    status: Literal["running", "complete", "halted"] = "running"
    stage: int = 0
    reason: str | None = None
    created: float = Field(default_factory=time.time)
    updated: float = Field(default_factory=time.time)
    devices: list[DeviceRun]

    def targeted(self) -> list[DeviceRun]:
        return [d for d in self.devices if d.state != "untouched"]

    def failures(self) -> int:
        return sum(d.state == "failed" for d in self.devices)

    def allowed_failures(self) -> int:
        """How many failures the threshold allows among the devices targeted so far."""
        return allowed_failures(self.max_failures, len(self.targeted()))

    def summary(self) -> str:
        done = sum(d.state == "succeeded" for d in self.devices)
        head = (f"rollout {self.id}: {self.model}@{self.version} to group {self.group} ({len(self.devices)} devices), "
                f"stages {','.join(self.stages)}: {self.status} at stage {self.stage}/{len(self.sizes)}, "
                f"{done} succeeded, {self.failures()} failed")  # fmt: skip
        return head + (f": {self.reason}" if self.reason else "")


def parse_stages(text: str) -> tuple[tuple[str, ...], tuple[Fraction, ...]]:
    """Stages "10%,50%,100%" -> the stages as given and their fractions.  RolloutError unless each is a percentage in
    (0, 100], strictly increasing, the last 100 %."""
    items = [t.strip() for t in text.split(",") if t.strip()]
    fracs = []
    for t in items:
        m = re.fullmatch(r"(\d+(?:\.\d+)?)%", t)
        if not m or not 0 < Fraction(m.group(1)) <= 100:
            raise RolloutError(f"stage {t!r} of --stages {text!r} is not a percentage in (0, 100], e.g. 10%")
        fracs.append(Fraction(m.group(1)) / 100)
    if not fracs:
        raise RolloutError("--stages names no stage; e.g. 10%,50%,100%")
    if any(b <= a for a, b in pairwise(fracs)):
        raise RolloutError(f"--stages {text!r} must increase (each stage's share of the group is cumulative)")
    if fracs[-1] != 1:
        raise RolloutError(f"--stages {text!r} must end at 100% (a rollout reaches the whole group)")
    return tuple(items), tuple(fracs)


def stage_sizes(fracs: tuple[Fraction, ...], n: int) -> tuple[int, ...]:
    """Cumulative devices per stage: ceil(p * n), exactly (no float rounding: 10% of 30 is 3, not 4)."""
    return tuple(math.ceil(p * n) for p in fracs)


def parse_threshold(text: str) -> str:
    """--max-failures: "5%" (of the devices targeted so far) or a count "2"; RolloutError otherwise."""
    t = text.strip()
    if not re.fullmatch(r"\d+(\.\d+)?%|\d+", t) or (t.endswith("%") and Fraction(t[:-1]) > 100):
        raise RolloutError(f"--max-failures {text!r} must be a count (e.g. 2) or a percentage (e.g. 5%)")
    return t


def allowed_failures(threshold: str, targeted: int) -> int:
    """Failures allowed among ``targeted`` devices: a count as is, a percentage of them rounded down."""
    if threshold.endswith("%"):
        return math.floor(Fraction(threshold[:-1]) / 100 * targeted)
    return int(threshold)


class RolloutStore:
    """Rollout records, one JSON file each under ROOT/rollouts (ids 0001, 0002, ...)."""

    def __init__(self, root: Path | str):
        self.dir = Path(root) / "rollouts"

    def new_id(self) -> str:
        self.dir.mkdir(parents=True, exist_ok=True)
        ids = [int(p.stem) for p in self.dir.glob("*.json") if p.stem.isdigit()]
        return f"{max(ids, default=0) + 1:04d}"

    def save(self, r: Rollout) -> None:
        r.updated = time.time()
        self.dir.mkdir(parents=True, exist_ok=True)
        atomic_write(self.dir / f"{r.id}.json", r.model_dump_json(indent=1).encode())

    def all(self) -> list[Rollout]:
        """Every record, oldest first; RolloutError for one that does not parse (named)."""
        out = []
        for p in sorted(self.dir.glob("*.json")):
            try:
                out.append(Rollout.model_validate_json(p.read_bytes()))
            except ValidationError as exc:
                raise RolloutError(f"rollout record {p} is not valid: {str(exc).splitlines()[0]}") from None
        return out


def judge(d: DeviceRun, rep: ReportedState | None, model: str, version: str) -> tuple[DeviceRunState, str] | None:
    """What ``rep`` says of device run ``d`` (sent MODEL@VERSION with seq d.seq): (succeeded|failed, why), or None
    while there is no answer yet."""
    if rep is None:
        return None
    ab = rep.auto_rollback
    if ab is not None and (ab.model, ab.version) == (model, version):
        return "failed", f"rolled back from {version} by itself: {ab.reason}"
    u = rep.update
    if u is not None and u.seq == d.seq and (u.model, u.version) == (model, version):
        if u.state in ("failed", "skipped"):
            return "failed", f"{u.state}: {u.error or 'no reason given'}"
        if u.state != "installed":
            return None  # installing, retrying: wait
    if (rep.model, rep.version) == (model, version) and rep.healthy:
        return "succeeded", f"runs {model}@{version}, healthy"
    return None


class RolloutRunner:
    """Runs one rollout to its end.  ``registry``: a Registry with its signing key; ``client``: its MQTT client;
    ``watch``: a FleetWatch on a client of the same broker (it may be ``client`` itself); ``say``: progress lines
    for a human (the CLI prints them)."""

    def __init__(self, registry, client: MqttClient, watch: FleetWatch, store: RolloutStore | None = None,
                 say: Callable[[str], None] | None = None):  # fmt: skip
        self.reg, self.client, self.watch = registry, client, watch
        self.store = store or RolloutStore(registry.root)
        self.say = say or (lambda line: log.info("%s", line))

    def plan(self, model: str, version: str, group: str, stages: str = DEFAULT_STAGES, max_failures: str = "0",
             stage_timeout_s: float = 300.0) -> Rollout:  # fmt: skip
        """The record of a new rollout over the group as the watch sees it now (call FleetWatch.settle first).
        RolloutError for bad arguments or an empty group; RegistryError for an unpublished version."""
        self.reg.catalog.version(model, version)  # unpublished: refused before anything is recorded
        names, fracs = parse_stages(stages)
        threshold = parse_threshold(max_failures)
        if not stage_timeout_s > 0:
            raise RolloutError(f"--stage-timeout must be positive, not {stage_timeout_s}")
        members = self.watch.members(group)
        if not members:
            raise RolloutError(f"no device has reported group {group!r} (groups come from each device's profile)")
        sizes = stage_sizes(fracs, len(members))
        states = self.watch.snapshot()
        devices = []
        for i, dev in enumerate(members):
            rep = states[dev]
            devices.append(DeviceRun(device_id=dev, stage=next(k for k, n in enumerate(sizes, 1) if i < n),
                                     from_model=rep.model, from_version=rep.version))  # fmt: skip
        r = Rollout(id=self.store.new_id(), model=model, version=version, group=group, stages=names, sizes=sizes,
                    max_failures=threshold, stage_timeout_s=stage_timeout_s, devices=devices)  # fmt: skip
        self.store.save(r)
        return r

    def run(self, r: Rollout, poll_s: float = 0.5) -> Rollout:
        """Stage by stage until complete or halted (then the targeted devices are rolled back); the record is saved
        at every step.  Returns it; never raises for a device's failure (the record says it)."""
        for k, size in enumerate(r.sizes, 1):
            r.stage = k
            batch = [d for d in r.devices[:size] if d.state == "untouched"]
            self.say(f"stage {k}/{len(r.sizes)} ({r.stages[k - 1]}): {r.model}@{r.version} -> "
                     f"{', '.join(d.device_id for d in batch) or 'no new device'}")  # fmt: skip
            sent = self.reg.deploy(self.client, r.model, r.version, [d.device_id for d in batch])
            for d, desired in zip(batch, sent):
                d.move("updating")
                d.seq, d.deployed_at = desired.seq, time.time()
            self.store.save(r)
            halted = self._wait_stage(r, poll_s)
            if halted:
                r.status, r.reason = "halted", halted
                self.store.save(r)
                self.say(f"halted at stage {k}: {halted}; rolling back {len(r.targeted())} device(s)")
                self._roll_back(r, poll_s)
                return r
            self.say(f"stage {k} done: {sum(d.state == 'succeeded' for d in r.devices)} succeeded, "
                     f"{r.failures()} failed")  # fmt: skip
        r.status = "complete"
        self.store.save(r)
        return r

    def _judge_all(self, r: Rollout) -> bool:
        """Update every targeted device from its newest report; True when something changed."""
        states, changed = self.watch.snapshot(), False
        for d in r.devices:
            if d.state not in ("updating", "succeeded"):
                continue
            verdict = judge(d, states.get(d.device_id), r.model, r.version)
            if verdict is not None and verdict[0] != d.state and verdict[0] in TRANSITIONS[d.state]:
                d.move(*verdict)
                self.say(f"  {d.device_id}: {d.state} ({d.reason})")
                changed = True
        return changed

    def _over(self, r: Rollout) -> str | None:
        n, allowed = r.failures(), r.allowed_failures()
        if n > allowed:
            return (f"{n} failure(s) among {len(r.targeted())} device(s) exceed the allowance {allowed} "
                    f"(--max-failures {r.max_failures})")  # fmt: skip
        return None

    def _wait_stage(self, r: Rollout, poll_s: float) -> str | None:
        """Until every targeted device answered (or timed out): the reason to halt, or None to go on."""
        deadline = time.monotonic() + r.stage_timeout_s
        seen = self.watch.version
        while True:
            if self._judge_all(r):
                self.store.save(r)
            if why := self._over(r):
                return why
            pending = [d for d in r.devices if d.state == "updating"]
            if not pending:
                return None
            left = deadline - time.monotonic()
            if left <= 0:
                states = self.watch.snapshot()
                for d in pending:
                    rep = states.get(d.device_id)
                    seen_as = f"; its last report: {rep.status}, running {rep.version}" if rep else ""
                    err = f", last error: {rep.last_error}" if rep and rep.last_error else ""
                    d.move("failed", f"no healthy report within {r.stage_timeout_s:g} s{seen_as}{err}")
                    self.say(f"  {d.device_id}: failed ({d.reason})")
                self.store.save(r)
                continue  # judged against the threshold above
            seen = self.watch.wait_change(seen, min(left, poll_s))

    def _roll_back(self, r: Rollout, poll_s: float) -> None:
        """A signed rollback for every device this rollout targeted, to what it ran before; waited for (up to the
        stage timeout) until each reports it runs that version again."""
        for d in r.targeted():
            if d.from_model is None or d.from_version is None:
                d.rollback, d.rollback_reason = "impossible", "it ran nothing before the rollout"
            elif (d.from_model, d.from_version) == (r.model, r.version):
                d.rollback, d.rollback_reason = "done", f"it ran {r.version} before the rollout"
            elif self.reg.catalog.version(d.from_model, d.from_version, missing_ok=True) is None:
                why = f"{d.from_model}@{d.from_version} is not published in this registry"
                d.rollback, d.rollback_reason = "impossible", why
            else:
                (desired,) = self.reg.deploy(self.client, d.from_model, d.from_version, [d.device_id], rollback=True)
                d.rollback, d.rollback_seq = "sent", desired.seq
        self.store.save(r)
        deadline = time.monotonic() + r.stage_timeout_s
        seen = self.watch.version
        while True:
            states = self.watch.snapshot()
            for d in r.devices:
                if d.rollback != "sent":
                    continue
                rep = states.get(d.device_id)
                if rep is None or (rep.model, rep.version) != (d.from_model, d.from_version):
                    continue
                u = rep.update
                if u is None or u.seq >= d.rollback_seq:  # it answered the rollback (or predates update reports)
                    d.rollback, d.rollback_reason = "done", f"runs {d.from_model}@{d.from_version} again"
                    self.say(f"  {d.device_id}: rolled back to {d.from_version}")
            self.store.save(r)
            pending = [d for d in r.devices if d.rollback == "sent"]
            left = deadline - time.monotonic()
            if not pending:
                return
            if left <= 0:
                for d in pending:
                    why = f"no report of {d.from_version} within {r.stage_timeout_s:g} s"
                    d.rollback, d.rollback_reason = "failed", why
                self.store.save(r)
                return
            seen = self.watch.wait_change(seen, min(left, poll_s))
