"""Device profiles (firmware_configs/*.toml), validated on load."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from edge_maas.errors import EdgeMaasError
from edge_maas.transport.messages import GROUP, LABEL_KEY


class ConfigError(EdgeMaasError):
    """A device profile is unreadable or invalid."""


class RuntimeSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # native: each stage natively when native has all its ops, else on the interpreter; native-only: strictly
    backend: Literal["litert", "native", "native-only", "accel"] = "litert"
    backends_allowed: tuple[Literal["litert", "native", "native-only", "accel", "remote"], ...] = ("litert",)
    threads: int = Field(default=1, ge=1, le=64)
    xnnpack: bool = True


class MqttSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    broker: str = "mqtt://127.0.0.1:1883"
    ca_file: Path | None = None  # TLS: the broker's CA; with cert/key: client certificate auth
    cert_file: Path | None = None
    key_file: Path | None = None
    username: str | None = None
    password_file: Path | None = None  # read at start; never inline secrets in a profile
    # "5": the broker states its maximum packet size (CONNACK) and why it disconnects; "3.1.1" for old brokers
    protocol: Literal["5", "3.1.1"] = "5"
    # bytes per MQTT packet, header included, where the broker limits it (Mosquitto max_packet_size,
    # AWS IoT Core: 131072); nothing larger is ever sent.  None: only what an MQTT 5 broker states
    max_packet_size: int | None = Field(default=None, ge=2048, le=268_435_460)
    # shard transfer chunk (bytes), 1 KiB..1 MiB; None: 64 KiB, or the largest that fits the packet size limit
    chunk_size: int | None = Field(default=None, ge=1024, le=1 << 20)

    @model_validator(mode="after")
    def _chunk_fits(self):
        # a chunk travels with ~330 bytes of framing (ChunkHeader JSON, topic); keep 512 spare
        if self.max_packet_size and self.chunk_size and self.chunk_size + 512 > self.max_packet_size:
            raise ValueError(f"chunk_size {self.chunk_size} does not fit max_packet_size {self.max_packet_size} "
                             f"(a chunk needs 512 bytes of framing: at most {self.max_packet_size - 512})")
        return self


OffloadPolicy = Literal["latency", "bytes", "prefer_remote", "local_only", "remote_only"]
StagePin = Literal["local_only", "remote_only"]


def _check_stages(stages: dict[int, str]) -> None:
    if bad := [k for k in stages if k < 0]:
        raise ValueError(f"stage indices start at 0, got {bad[0]}")


class OffloadRule(BaseModel):
    """Overrides for one task (a split model, by its name): whatever is unset is the [offload] table's."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    policy: OffloadPolicy | None = None
    max_bytes: int | None = Field(default=None, ge=1)
    deadline_ms: int | None = Field(default=None, ge=1, le=600_000)
    stages: dict[int, StagePin] = Field(default_factory=dict)  # stage index -> where it must run

    @model_validator(mode="after")
    def _valid_stages(self):
        _check_stages(self.stages)
        return self


class OffloadSettings(BaseModel):
    """When and how the device sends later stages to cloud workers (needs "remote" in
    runtime.backends_allowed).  policy "latency": the split predicted fastest; "bytes": the
    fastest among splits that send at most max_bytes per request; "prefer_remote": the fastest
    split that runs something on a worker whenever one is online (else all local);
    "local_only": never offload; "remote_only": never run the suffix here (a request fails
    with no worker, rather than running locally).  stages pins single stages to "local_only" or
    "remote_only"; tasks overrides any of these per task (model name); deadline_ms bounds each
    remote exchange (then the suffix runs here).  explore_every: at most one request in this
    many goes to a split whose estimate is still uncertain."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = False
    policy: OffloadPolicy = "latency"
    max_bytes: int | None = Field(default=None, ge=1)
    deadline_ms: int = Field(default=500, ge=1, le=600_000)  # then the stage runs here
    codec: Literal["none", "zlib", "rle"] = "none"
    probe_every_s: float = Field(default=30.0, gt=0)  # re-measure the link while staying local
    explore_every: int = Field(default=8, ge=1, le=1_000_000)
    stages: dict[int, StagePin] = Field(default_factory=dict)
    tasks: dict[str, OffloadRule] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _policy_needs_cap(self):
        _check_stages(self.stages)
        if self.policy == "bytes" and self.max_bytes is None:
            raise ValueError('policy "bytes" needs max_bytes')
        for name, rule in self.tasks.items():
            if (rule.policy or self.policy) == "bytes" and (rule.max_bytes or self.max_bytes) is None:
                raise ValueError(f'task {name!r}: policy "bytes" needs max_bytes')
        return self

    def byte_cap(self) -> int | None:
        """Bytes per request at most: max_bytes, except under policy "latency" (which ignores it)."""
        return None if self.policy == "latency" else self.max_bytes

    def for_task(self, task: str) -> OffloadSettings:
        """These settings with the task's overrides applied (stage pins merged, the task's winning)."""
        rule = self.tasks.get(task)
        if rule is None:
            return self
        return self.model_copy(update={
            "policy": rule.policy or self.policy, "max_bytes": rule.max_bytes or self.max_bytes,
            "deadline_ms": rule.deadline_ms or self.deadline_ms, "stages": {**self.stages, **rule.stages},
        })  # fmt: skip


class RolloutSettings(BaseModel):
    """How a device gets to and stays on its desired version.

    A failed fetch (registry down, link cut) is retried after retry_initial_s, doubling up to
    retry_max_s (seconds, each wait jittered to 50..100 %), until it succeeds or another desired
    state arrives.  After a swap the new version is on probation for its first
    probation_requests requests: once max_failures of them have failed (the model raised while
    running), the device rolls back by itself to the version it ran before and refuses to
    re-apply the failed one until a different desired state arrives.  probation_requests = 0
    turns the automatic rollback off."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    retry_initial_s: float = Field(default=1.0, gt=0, le=3600)
    retry_max_s: float = Field(default=60.0, gt=0, le=86_400)
    probation_requests: int = Field(default=20, ge=0, le=1_000_000)
    max_failures: int = Field(default=3, ge=1, le=1_000_000)

    @model_validator(mode="after")
    def _ordered(self):
        if self.retry_max_s < self.retry_initial_s:
            raise ValueError("retry_max_s must be at least retry_initial_s")
        return self


class SecuritySettings(BaseModel):
    """Update policy.  Desired states are always verified (signature threshold, device, expiry,
    sequence); allow_rollback decides whether an operator's signed rollback to an older release
    is accepted (False: only ever newer releases)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    allow_rollback: bool = True


class HttpSettings(BaseModel):
    """The device's local Open Inference Protocol endpoint (KServe v2 REST; docs/http_api.md), for applications
    on the device; needs pip install 'edge-maas[http]'.  Off unless enabled (or `edge-maas device --http`).  It has
    no authentication: keep it on localhost, or behind a proxy that authenticates."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)  # 0: any free port (the daemon prints the one it got)
    max_body_mb: int = Field(default=64, ge=1, le=4096)  # larger request bodies are refused (413)


class DeviceProfile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    device_id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    description: str = ""
    cache_dir: Path = Path("/var/lib/edge_maas/cache")
    memory_budget_mb: int = Field(default=256, ge=8)
    # bytes of a service's submodels this device holds (KiB), smallest first; the others run on a worker
    # (see [offload] deadline_ms).  None: hold every submodel
    hold_budget_kb: int | None = Field(default=None, ge=0)
    registry_key: Path | None = None  # the trusted root (root.json, `edge-maas trust init`), or a bare public key (PEM)
    runtime: RuntimeSettings = RuntimeSettings()
    mqtt: MqttSettings = MqttSettings()
    offload: OffloadSettings = OffloadSettings()
    rollout: RolloutSettings = RolloutSettings()
    security: SecuritySettings = SecuritySettings()
    http: HttpSettings = HttpSettings()
    # what the registry knows this device by (reported in its state): labels describe it (site = "plant-3"),
    # groups are the rollout targets it joins (`edge-maas registry deploy MODEL@V --group G`)
    labels: dict[Annotated[str, Field(pattern=LABEL_KEY)], Annotated[str, Field(max_length=256)]] = {}
    groups: tuple[Annotated[str, Field(pattern=GROUP)], ...] = ()
    # seconds between republishing the reported state while its request counters change (they would go stale)
    report_every_s: float = Field(default=10.0, gt=0, le=86_400)
    # Prometheus /metrics (requests, latency per task and stage, installs, offload, cache; docs/metrics.md) on this
    # TCP port of metrics_host (localhost: scrape through a local agent or proxy); None: off
    metrics_port: int | None = Field(default=None, ge=0, le=65535)
    metrics_host: str = "127.0.0.1"

    @model_validator(mode="after")
    def _offload_allowed(self):
        if self.offload.enabled and "remote" not in self.runtime.backends_allowed:
            raise ValueError('offload.enabled needs "remote" in runtime.backends_allowed')
        return self

    def backend_options(self) -> dict:
        r = self.runtime
        if r.backend not in r.backends_allowed:
            raise ConfigError(f"profile {self.device_id}: backend {r.backend!r} is not in backends_allowed")
        return {"threads": r.threads, "xnnpack": r.xnnpack} if r.backend == "litert" else {"threads": r.threads}


class WorkerProfile(BaseModel):
    """An offload worker (`edge-maas worker --config`); command-line flags override it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    group: str | None = Field(default="workers", pattern=r"^[A-Za-z0-9_-]{1,64}$")  # None: no $share
    cache_dir: Path
    registry_key: Path
    backend: Literal["litert", "native", "accel"] = "litert"  # accel: GPU accumulators when torch sees one
    threads: int = Field(default=1, ge=1, le=256)
    xnnpack: bool = False  # faster, but may differ from the built-in kernels by 1 LSB
    max_batch: int = Field(default=8, ge=1, le=1024)
    max_delay_ms: float = Field(default=0.0, ge=0, le=10_000)
    status_every_s: float = Field(default=2.0, gt=0)
    # Prometheus /metrics (queue depth, served/failed/shed, latency) on metrics_host:metrics_port; None: off
    # (deploy/k8s uses 9464 on 0.0.0.0, for the pod's scraper); 0: any free port
    metrics_port: int | None = Field(default=None, ge=0, le=65535)
    metrics_host: str = "127.0.0.1"
    mqtt: MqttSettings = MqttSettings()

    def backend_options(self) -> dict:
        return {"threads": self.threads, "xnnpack": self.xnnpack} if self.backend == "litert" else {"threads": self.threads}


def load_profile(path: str | Path) -> DeviceProfile:
    return _load(path, DeviceProfile, "device profile")


def load_worker_profile(path: str | Path | None, overrides: dict) -> WorkerProfile:
    """The worker's settings from a TOML file (optional), then the given non-None overrides."""
    raw = _read(path, "worker profile") if path else {}
    raw.update({k: v for k, v in overrides.items() if v is not None})
    return _validate(raw, WorkerProfile, f"worker settings{f' ({path})' if path else ''}")


def _read(path, what: str) -> dict:
    try:
        return tomllib.loads(Path(path).read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{what} {path} is not valid TOML: {exc}") from None


def _validate(raw: dict, model: type[BaseModel], what: str):
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(x) for x in first["loc"])
        raise ConfigError(f"{what}: {where}: {first['msg']}") from None


def _load(path, model: type[BaseModel], what: str):
    return _validate(_read(path, what), model, f"{what} {path}")
