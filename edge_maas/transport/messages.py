"""Wire messages: validated pydantic models, and the binary frame that carries them.

MQTT 3.1.1 has no user properties, so a message with a binary body is framed as
4-byte big-endian header length | JSON header | body.
"""

from __future__ import annotations

import math
import struct
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from edge_maas.errors import TransportError
from edge_maas.trust.envelope import Signature, canonical_json

SHA256 = Field(pattern=r"^[0-9a-f]{64}$")
# a topic to publish the answer on: MQTT forbids wildcards and NUL there (paho would raise)
SHA256_OR_NONE = Field(default=None, pattern=r"^[0-9a-f]{64}$")
REPLY_TO = Field(min_length=1, max_length=256, pattern=r"^[^#+\x00]+$")


class _Msg(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ChunkRequest(_Msg):
    """Ask for chunks [first, first + count) of a blob; the answer goes to reply_to."""

    corr: str = Field(min_length=1, max_length=64)
    reply_to: str = REPLY_TO
    sha256: str = SHA256
    chunk_size: int = Field(ge=1024, le=1 << 20)
    first: int = Field(ge=0)
    count: int = Field(ge=1, le=64)


class ChunkHeader(_Msg):
    """One chunk of a blob (or an error for the whole request when error is set)."""

    corr: str
    sha256: str = SHA256
    index: int = Field(ge=0)
    total_size: int = Field(ge=0)
    chunk_sha256: str = SHA256
    error: str | None = None
    # with error: the largest chunk_size (bytes) the server can send through its broker; ask again with it
    max_chunk: int | None = Field(default=None, ge=1024, le=1 << 20)


def encode(header: BaseModel, body: bytes = b"") -> bytes:
    h = header.model_dump_json().encode()
    return struct.pack(">I", len(h)) + h + body


def decode(payload: bytes, model: type[BaseModel]) -> tuple[BaseModel, bytes]:
    """Parse a frame; TransportError (never another exception) on anything malformed."""
    if len(payload) < 4:
        raise TransportError(f"frame of {len(payload)} bytes is shorter than its length prefix")
    (n,) = struct.unpack(">I", payload[:4])
    if n > len(payload) - 4:
        raise TransportError(f"frame header says {n} bytes but only {len(payload) - 4} follow")
    try:
        header = model.model_validate_json(payload[4 : 4 + n])
    except (ValueError, ValidationError) as exc:
        raise TransportError(f"malformed {model.__name__}: {str(exc).splitlines()[0]}") from None
    return header, payload[4 + n :]


class DesiredState(_Msg):
    """Which signed manifest one device should run; carried inside a SignedDesired.

    ``release`` orders a model's versions (the registry numbers them 1, 2, ... at publish),
    ``seq`` orders the desired states sent to this device (strictly increasing), ``expires``
    bounds how long a withheld update goes unnoticed, ``rollback`` marks an operator's signed
    rollback (the only way a device accepts an older release)."""

    device_id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    model: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    version: str = Field(pattern=r"^[A-Za-z0-9_.+-]+$")
    release: int = Field(ge=1, le=1 << 53)
    manifest_sha256: str = SHA256
    manifest_size: int = Field(ge=1, le=64 << 20)
    seq: int = Field(ge=1, le=1 << 62)
    expires: AwareDatetime
    rollback: bool = False

    def canonical_bytes(self) -> bytes:
        """What the signatures cover: sorted keys, no spaces (as TUF's canonical JSON for these types)."""
        return canonical_json(self.model_dump(mode="json"))


class RootMetadata(BaseModel):
    """TUF root metadata (specification 1.0, section 4.3): the schema here is only its envelope;
    edge_maas.trust.root parses and checks it with python-tuf."""

    model_config = ConfigDict(extra="allow", frozen=True)

    signed: dict
    signatures: list[dict]


class SignedDesired(_Msg):
    """Retained on the device's desired topic: a DesiredState and the release role's signatures."""

    signed: DesiredState
    signatures: tuple[Signature, ...] = Field(min_length=1, max_length=16)


class OffloadState(_Msg):
    """The planner's inputs and last decision, so an operator can see why it offloaded."""

    policy: str
    split: int  # stages < split run on the device; == stages: all local
    stages: int
    reason: str
    predicted_ms: float | None  # None: no split is possible (every cost infinite)
    costs_ms: tuple[float | None, ...]  # every split 0..stages; None: forbidden by the policy
    local_stage_ms: tuple[float | None, ...]
    rtt_ms: float | None  # None: not measured yet
    bandwidth_mbps: float | None
    remote: int = 0
    fallback: int = 0
    local: int = 0
    # what the estimates rest on (all optional: older devices report none of it)
    rtt_spread_ms: float | None = None  # robust spread (MAD) of the link fit's residuals
    link_samples: int = 0  # exchanges the rtt / bandwidth fit rests on
    worker_ms: tuple[float | None, ...] = ()  # per split 0..stages-1: time in the worker (queue + compute); None: unknown
    observed: tuple[int, ...] = ()  # per split 0..stages-1: exchanges observed
    deadline_ms: int | None = None
    workers_online: bool | None = None  # from the workers' retained status; None: not known
    probes: int = 0  # requests sent to measure the link while staying local
    explored: int = 0  # requests sent to a split whose estimate was uncertain
    offline_skips: int = 0  # requests kept local because no worker's status said online (no deadline paid)


class RetryState(_Msg):
    """A desired version the device failed to get (registry down, link cut) and will try again."""

    model: str
    version: str
    attempt: int = Field(ge=1)  # failed attempts so far
    next_in_s: float = Field(ge=0)  # seconds from the report to the next attempt
    reason: str  # the last attempt's error


class AutoRollback(_Msg):
    """A version the device rolled back from by itself; it is not re-applied until the desired state changes."""

    model: str
    version: str  # the failed version
    to_version: str  # what runs again
    reason: str  # e.g. "3 of its first 5 requests failed: ..."


class ServiceState(_Msg):
    """What a device holds of the service it runs: its tasks, the submodels it holds (by sha256) and those it
    does not hold and sends to a worker."""

    tasks: tuple[str, ...]
    held: tuple[str, ...] = ()
    remote: tuple[str, ...] = ()


class UpdateState(_Msg):
    """What became of the newest desired state the device acted on (a job execution's status, as in AWS IoT Jobs):
    the registry matches ``seq`` with the desired state it signed, so an older report is never taken for an answer.
    ``state``: installing (fetching, verifying, health check), installed (runs it; also when it already did),
    failed (kept the version it had: ``error`` says why), retrying (a fetch failed; see ``retrying``), skipped (the
    device rolled back from this version by itself and does not re-apply it).  ``progress``: while installing, the
    share (0..1) of the bytes to fetch that arrived (republished at most every 0.5 s while it moves)."""

    model: str
    version: str
    seq: int
    state: Literal["installing", "installed", "failed", "retrying", "skipped"]
    error: str | None = None
    progress: float | None = Field(default=None, ge=0, le=1)


LABEL_KEY = r"^[A-Za-z0-9_./-]{1,63}$"
GROUP = r"^[A-Za-z0-9_.-]{1,64}$"


class ReportedState(_Msg):
    """Retained on the device's reported topic; `status` is 'online' or 'offline' (last will, and
    a clean stop).  ``labels`` and ``groups`` come from the device's profile: the registry knows its fleet from
    them (`registry deploy --group`).  ``served``/``failed``: inference requests answered / failed since the daemon
    started (republished every report_every_s seconds of the profile while they change)."""

    device_id: str
    status: str
    model: str | None = None
    version: str | None = None
    previous_version: str | None = None
    shard_sha256: tuple[str, ...] = ()
    healthy: bool | None = None
    last_error: str | None = None
    offload: OffloadState | None = None
    retrying: RetryState | None = None
    auto_rollback: AutoRollback | None = None
    service: ServiceState | None = None  # when it runs a v2 service
    labels: dict[Annotated[str, Field(pattern=LABEL_KEY)], Annotated[str, Field(max_length=256)]] = {}
    groups: tuple[Annotated[str, Field(pattern=GROUP)], ...] = ()
    update: UpdateState | None = None
    served: int = 0
    failed: int = 0


class TensorMeta(_Msg):
    name: str
    dtype: str = Field(pattern=r"^(int8|uint8|int16|int32|float32)$")
    shape: tuple[Annotated[int, Field(ge=0, le=1 << 31)], ...] = Field(max_length=8)


TASK = Field(pattern=r"^[A-Za-z0-9_.-]{1,128}$")


class InferRequest(_Msg):
    """Header of an inference request; the body is the inputs' raw bytes, in order.  ``tasks``: which of the
    service's tasks to answer (each submodel they need runs once); the reply's outputs are then named
    ``TASK/TENSOR``.  Empty: the only task of a one-task service, outputs under their own names."""

    corr: str = Field(min_length=1, max_length=64)
    reply_to: str = REPLY_TO
    inputs: tuple[TensorMeta, ...]
    tasks: tuple[Annotated[str, TASK], ...] = Field(default=(), max_length=64)


class InferReply(_Msg):
    """Header of a reply; the body is the outputs' raw bytes (empty on error)."""

    corr: str
    version: str | None = None
    outputs: tuple[TensorMeta, ...] = ()
    error: str | None = None


def pack_tensors(arrays: dict) -> tuple[tuple[TensorMeta, ...], bytes]:
    import numpy as np

    metas, parts = [], []
    for name, a in arrays.items():
        a = np.ascontiguousarray(a)
        metas.append(TensorMeta(name=name, dtype=a.dtype.name, shape=a.shape))
        parts.append(a.astype(a.dtype.newbyteorder("<")).tobytes())
    return tuple(metas), b"".join(parts)


def unpack_tensors(metas: tuple[TensorMeta, ...], body: bytes) -> dict:
    """Arrays from a body; TransportError if the sizes do not add up."""
    import numpy as np

    out, off = {}, 0
    for m in metas:
        dt = np.dtype(m.dtype).newbyteorder("<")
        n = math.prod(m.shape) * dt.itemsize  # Python ints: no wrap-around
        if off + n > len(body):
            raise TransportError(f"tensor {m.name!r} needs {n} bytes; the body has {len(body) - off} left")
        out[m.name] = np.frombuffer(body[off : off + n], dtype=dt).reshape(m.shape).astype(dt.newbyteorder("="))
        off += n
    if off != len(body):
        raise TransportError(f"body has {len(body) - off} bytes beyond the announced tensors")
    return out


class OffloadRequest(_Msg):
    """Run stages first_stage.. of the signed manifest on these boundary tensors (framed body); with
    ``submodel_sha256``, run that one submodel of the signed service manifest instead (first_stage 0)."""

    id: str = Field(min_length=1, max_length=64)  # idempotent: a retried id is answered once
    reply_to: str = REPLY_TO
    manifest_sha256: str = SHA256
    manifest_size: int = Field(ge=1, le=64 << 20)
    first_stage: int = Field(ge=0)
    inputs: tuple[TensorMeta, ...]
    deadline_ms: int = Field(ge=1, le=600_000)
    codec: Literal["none", "zlib", "rle"] = "none"  # of the body; the tensors' sizes bound what it may expand to
    submodel_sha256: str | None = SHA256_OR_NONE


class OffloadReply(_Msg):
    id: str
    worker: str
    outputs: tuple[TensorMeta, ...] = ()
    error: str | None = None
    run_ms: float = 0.0  # this request's share of the worker's run (its batch's time / batch size)
    batch_ms: float = 0.0  # the whole batch's run: what this request waited for after queue_ms
    queue_ms: float = 0.0  # waited in the worker before its batch started (setup_ms included)
    batch: int = 1
    # optional (older workers send neither): the device subtracts worker_ms from its round trip to get the wire time
    worker_ms: float | None = None  # from the request's arrival to the reply's hand-off: queue, compute and packing
    setup_ms: float = 0.0  # of queue_ms, one-off installs and verifications this request waited for
    queue_depth: int = 0


class StageLatency(_Msg):
    """How long one stage (or one submodel of a service) takes on a worker, per batch and per request (EWMA)."""

    manifest_sha256: str = SHA256
    stage: int
    submodel_sha256: str | None = SHA256_OR_NONE
    batches: int
    mean_batch: float
    ms_per_batch: float  # EWMA
    ms_per_request: float  # EWMA


class WorkerStatus(_Msg):
    """Retained on the worker's status topic; `status` 'offline' is its last will."""

    worker: str
    status: str
    backend: str = ""
    max_batch: int = 1
    max_delay_ms: float = 0.0
    served: int = 0
    rejected: int = 0
    queue_depth: int = 0
    stages: tuple[StageLatency, ...] = ()
