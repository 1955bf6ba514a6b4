"""The fleet as the registry sees it: every device's retained reported state (version, health, update, labels,
groups, counters), collected from the broker, and one status line per device for `registry status`."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from pydantic import ValidationError

from edge_maas.transport import topics
from edge_maas.transport.client import MqttClient
from edge_maas.transport.messages import ReportedState

log = logging.getLogger(__name__)


class FleetWatch:
    """Follows ``maas/v1/device/+/reported`` on ``client``: ``latest`` maps device id -> its newest ReportedState.
    Retained states arrive right after subscribing; MQTT has no end-of-retained marker, so ``settle`` waits a while
    (seconds) for them.  A malformed report is logged and skipped (one bad device must not hide the fleet)."""

    def __init__(self, client: MqttClient):
        self.latest: dict[str, ReportedState] = {}
        self.cv = threading.Condition()
        self._version = 0  # bumped on every report: wait_change() wakes on it
        self.client = client
        client.subscribe(f"{topics.PREFIX}/device/+/reported", self._on)

    def _on(self, topic: str, payload: bytes) -> None:
        if not payload:  # a cleared retained state
            return
        try:
            s = ReportedState.model_validate_json(payload)
        except ValidationError as exc:
            log.warning("ignoring a malformed reported state on %s: %s", topic, str(exc).splitlines()[0])
            return
        with self.cv:
            self.latest[s.device_id] = s
            self._version += 1
            self.cv.notify_all()

    def settle(self, wait_s: float) -> dict[str, ReportedState]:
        """Wait ``wait_s`` seconds for the retained states; a copy of what arrived."""
        time.sleep(wait_s)
        return self.snapshot()

    def snapshot(self) -> dict[str, ReportedState]:
        with self.cv:
            return dict(self.latest)

    def members(self, group: str) -> list[str]:
        """Device ids whose newest report names ``group``, sorted (the rollout order)."""
        with self.cv:
            return sorted(d for d, s in self.latest.items() if group in s.groups)

    def wait(self, pred: Callable[[dict[str, ReportedState]], bool], timeout: float) -> bool:
        """Block until ``pred(latest)`` holds (True) or ``timeout`` seconds passed (False)."""
        with self.cv:
            return self.cv.wait_for(lambda: pred(self.latest), timeout)

    def wait_change(self, seen: int, timeout: float) -> int:
        """Block until a report newer than version ``seen`` arrived or ``timeout`` seconds passed; the version now."""
        with self.cv:
            self.cv.wait_for(lambda: self._version != seen, timeout)
            return self._version

    @property
    def version(self) -> int:
        with self.cv:
            return self._version


def status_line(s: ReportedState) -> str:
    """One human line: id, online, model@version, health, update in progress or its outcome, counters, offload
    decision, groups, last error."""
    running = f"{s.model}@{s.version}" if s.model else "(nothing)"
    health = {True: "healthy", False: "UNHEALTHY", None: "-"}[s.healthy]
    parts = [f"{s.device_id:20s} {s.status:8s} {running:28s} {health}"]
    if s.update is not None and not (s.update.state == "installed" and s.update.version == s.version):
        u = s.update
        done = f" {u.progress:.0%}" if u.progress is not None and u.state == "installing" else ""
        parts.append(f"update {u.model}@{u.version} {u.state}{done}" + (f" ({u.error})" if u.error else ""))
    if s.retrying is not None:
        parts.append(f"retry {s.retrying.attempt} in {s.retrying.next_in_s:.0f} s")
    parts.append(f"served {s.served} failed {s.failed}")
    if s.offload is not None:
        o = s.offload
        online = {True: "", False: "; no worker online", None: ""}[o.workers_online]
        parts.append(f"offload {o.policy} split {o.split}/{o.stages} ({o.reason}; remote {o.remote} fallback "
                     f"{o.fallback} local {o.local} probes {o.probes} explored {o.explored} "
                     f"kept local without a worker {o.offline_skips}{online})")  # fmt: skip
    if s.service is not None:
        parts.append(f"tasks {','.join(s.service.tasks)}" + (f" ({len(s.service.remote)} submodel(s) on workers)"
                                                             if s.service.remote else ""))  # fmt: skip
    if s.auto_rollback is not None:
        parts.append(f"rolled back from {s.auto_rollback.version} by itself")
    if s.groups:
        parts.append(f"groups {','.join(s.groups)}")
    if s.previous_version:
        parts.append(f"previous {s.previous_version}")
    if s.last_error:
        parts.append(f"last error: {s.last_error}")
    return "  ".join(parts)
