"""The device's offload path for one active version: the planner picks a split per request,
RemoteSplit runs it (falling back locally), and the decision is logged and kept for the
device's reported state.  Workers' retained status reports feed the planner's estimate of
their per-stage time before any exchange has been observed."""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Mapping

import numpy as np
from pydantic import ValidationError

from edge_maas.backends.remote import RemoteSplit
from edge_maas.config import ConfigError, OffloadSettings
from edge_maas.manifest import Manifest
from edge_maas.pipeline import Pipeline
from edge_maas.planner import Decision, Planner, Rules
from edge_maas.transport import topics
from edge_maas.transport.client import MqttClient
from edge_maas.transport.messages import OffloadState, WorkerStatus
from edge_maas.transport.requests import Requester

log = logging.getLogger(__name__)


class WorkerBoard:
    """The latest retained status of every worker (one subscription per device)."""

    def __init__(self, client: MqttClient):
        self._status: dict[str, WorkerStatus] = {}
        self._lock = threading.Lock()
        client.subscribe(topics.worker_status("+"), self._on_status)

    def _on_status(self, topic: str, payload: bytes) -> None:
        try:
            st = WorkerStatus.model_validate_json(payload)
        except ValidationError as exc:
            log.warning("ignored a malformed worker status on %s: %s", topic, str(exc).splitlines()[0])
            return
        name = topic.split("/")[-2]  # the topic's name, which the ACL ties to the writer
        if st.worker != name:
            log.warning("ignored a worker status for %r published on %s", st.worker, topic)
            return
        with self._lock:
            self._status[name] = st

    def any_online(self) -> bool:
        """Whether some worker's retained status says online (a killed one says offline once its last will fires)."""
        with self._lock:
            return any(s.status == "online" for s in self._status.values())

    def stage_s(self, manifest_sha256: str) -> dict[int, float]:
        """Per stage of this manifest: mean seconds per batch over online workers that ran it
        (a request waits for its whole batch)."""
        with self._lock:
            online = [s for s in self._status.values() if s.status == "online"]
        per: dict[int, list[float]] = {}
        for st in online:
            for lat in st.stages:
                if lat.manifest_sha256 == manifest_sha256:
                    per.setdefault(lat.stage, []).append(lat.ms_per_batch / 1e3)
        return {k: sum(v) / len(v) for k, v in per.items()}


def task_rules(settings: OffloadSettings, task: str, n_stages: int) -> Rules:
    """The planner's rules for one task (its overrides applied).  ConfigError when a stage pinned for
    this task does not exist; a pin in the [offload] table itself that this model lacks is ignored
    (the table applies to every model), with a warning."""
    s = settings.for_task(task)
    own = settings.tasks[task].stages if task in settings.tasks else {}
    if bad := sorted(k for k in own if k >= n_stages):
        raise ConfigError(f"offload.tasks.{task}.stages: {task} has stages 0..{n_stages - 1}, not {bad[0]}")
    if bad := sorted(k for k in s.stages if k >= n_stages):
        log.warning("offload.stages: %s has stages 0..%d; the pins of stage(s) %s do not apply", task, n_stages - 1, bad)
    pins = {k: v for k, v in s.stages.items() if k < n_stages}
    return Rules(s.policy, s.byte_cap(), frozenset(k for k, v in pins.items() if v == "local_only"),
                 frozenset(k for k, v in pins.items() if v == "remote_only"))  # fmt: skip


class Offloader:
    def __init__(self, client: MqttClient, requester: Requester, board: WorkerBoard, manifest: Manifest,
                 manifest_blob: tuple[str, int], pipeline: Pipeline, settings: OffloadSettings):  # fmt: skip
        """ConfigError when the settings pin a stage this model lacks (see task_rules)."""
        task = manifest.model.name
        self.settings = settings.for_task(task)
        self.board = board
        self.manifest_sha256 = manifest_blob[0]
        rules = task_rules(settings, task, len(pipeline.stages))
        self.remote = RemoteSplit(client, pipeline, task, *manifest_blob, deadline_s=self.settings.deadline_ms / 1e3,
                                  codec=settings.codec, requester=requester)  # fmt: skip
        golden = {t.name: t.to_array() for t in manifest.golden.inputs}
        self.planner = Planner.for_pipeline(pipeline, golden, probe_every_s=settings.probe_every_s, rules=rules,
                                            workers_online=board.any_online, explore_every=settings.explore_every)  # fmt: skip
        self.last: Decision | None = None
        self.local = 0

    def run(self, inputs: Mapping[str, np.ndarray]) -> tuple[dict[str, np.ndarray], str, bool]:
        """Outputs, where the suffix ran, and whether the planner changed its mind (worth a report).
        StageUnavailableError when the rules allow no split that can run now (remote_only, no worker)."""
        self.planner.est.remote_stage_s = self.board.stage_s(self.manifest_sha256)
        fallback = self.settings.policy != "remote_only"
        out, where, decision = self.remote.run_planned(inputs, self.planner, fallback=fallback)
        self.local += where == "local"
        changed = self.last is None or decision.split != self.last.split
        if changed:
            log.info("offload plan: %s", decision.reason)
        self.last = decision
        return out, where, changed

    def state(self) -> OffloadState:
        p = self.planner
        online = self.board.any_online()
        d = self.last or p.best(online)
        e, s = p.est, self.remote.stats
        seen = e.exchanges > 0
        return OffloadState(
            policy=self.settings.policy, split=d.split, stages=p.n, reason=d.reason,
            predicted_ms=_ms(d.predicted_s), costs_ms=tuple(_ms(c) for c in d.costs),
            local_stage_ms=tuple(_ms(t * e.local_scale) for t in e.local_stage_s),
            rtt_ms=_ms(e.rtt_s) if seen else None,
            bandwidth_mbps=_finite(round(e.bandwidth_Bps * 8 / 1e6, 3)) if e.bandwidth_known else None,
            remote=s.remote, fallback=s.fallback, local=self.local,
            rtt_spread_ms=_ms(e.rtt_spread_s) if e.rtt_spread_s is not None else None, link_samples=len(e._samples),
            worker_ms=tuple(_ms(w) if (w := e.worker_s(k, p.n)) is not None else None for k in range(p.n)),
            observed=tuple(e.observations(k) for k in range(p.n)), deadline_ms=self.settings.deadline_ms,
            workers_online=online, probes=p.probes, explored=p.explored, offline_skips=p.offline_skips,
        )  # fmt: skip


def _finite(x: float) -> float | None:
    """JSON has no infinity: pydantic would write null where the schema wants a number."""
    return x if math.isfinite(x) else None


def _ms(seconds: float) -> float | None:
    return _finite(round(seconds * 1e3, 3)) if math.isfinite(seconds) else None
