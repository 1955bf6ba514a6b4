"""The device's gate for desired states (the role TUF's timestamp + snapshot checks play for
a repository): a desired state is applied only if a threshold of the release role signed it,
it names this device, it has not expired, its ``seq`` is not older than the newest one this
device accepted (no replay), and its release is not older than the one running unless it is
an operator's signed rollback and the profile allows rollbacks (no downgrade).

The highest seq and each model's release floor are persisted (temp file, fsync, rename)
before the device acts, so a restart does not reopen a replay window."""

from __future__ import annotations

import json
import threading
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edge_maas.files import atomic_write
from edge_maas.transport.messages import DesiredState, SignedDesired
from edge_maas.trust.root import TrustedRoot, TrustError, check_expiry

MAX_DESIRED_BYTES = 64 << 10


class GateState(BaseModel):
    """What the device persisted: the newest accepted seq, and per model the release it runs."""

    model_config = ConfigDict(extra="forbid")

    seq: int = 0
    floor: dict[str, int] = Field(default_factory=dict)


class DesiredGate:
    def __init__(self, device_id: str, root: TrustedRoot, state_file: Path, allow_rollback: bool = True):
        self.device_id = device_id
        self.root = root
        self.state_file = Path(state_file)
        self.allow_rollback = allow_rollback
        self._lock = threading.Lock()
        self.state = self._load()

    def check(self, payload: bytes) -> DesiredState:
        """The verified desired state in ``payload``, its seq recorded; TrustError otherwise.

        Errors name the check that failed (signature, device, expiry, replay, downgrade, policy)."""
        if len(payload) > MAX_DESIRED_BYTES:
            raise TrustError(f"desired state of {len(payload)} bytes exceeds {MAX_DESIRED_BYTES}")
        try:
            env = SignedDesired.model_validate_json(payload)
        except ValidationError as exc:
            raise TrustError(f"malformed or unsigned desired state: {str(exc).splitlines()[0][:200]}") from None
        d = env.signed
        what = f"desired state {d.model}@{d.version} (seq {d.seq})"
        self.root.verify(d.canonical_bytes(), env.signatures, what)
        if d.device_id != self.device_id:
            raise TrustError(f"{what} is addressed to device {d.device_id!r}, not {self.device_id!r} (replayed?)")
        check_expiry(d.expires, what)
        with self._lock:
            if d.seq < self.state.seq:
                raise TrustError(f"{what} is older than seq {self.state.seq} already accepted: replay refused")
            floor = self.state.floor.get(d.model, 0)
            if d.release < floor:
                if not d.rollback:
                    raise TrustError(f"{what} is release {d.release}, older than the running release {floor}: "
                                     "downgrade refused (an operator rollback must be signed as one)")  # fmt: skip
                if not self.allow_rollback:
                    raise TrustError(f"{what} is a signed rollback, but this device's profile forbids rollbacks")
            if d.seq > self.state.seq:
                self.state.seq = d.seq
                self._save()
        return d

    def accept(self, d: DesiredState) -> None:
        """Record that ``d`` is now running: its release becomes the model's floor."""
        with self._lock:
            self.state.floor[d.model] = d.release
            self.state.seq = max(self.state.seq, d.seq)
            self._save()

    def _load(self) -> GateState:
        try:
            return GateState.model_validate_json(self.state_file.read_bytes())
        except FileNotFoundError:
            return GateState()
        except (OSError, ValidationError, json.JSONDecodeError) as exc:
            # never reset silently: a zeroed seq and floor would reopen replays and downgrades
            raise TrustError(f"trust state {self.state_file} is unreadable ({exc}); remove it to reset") from None

    def _save(self) -> None:
        atomic_write(self.state_file, self.state.model_dump_json().encode())
