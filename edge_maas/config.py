"""Device profiles (firmware_configs/*.toml), validated on load."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edge_maas.errors import EdgeMaasError


class ConfigError(EdgeMaasError):
    """A device profile is unreadable or invalid."""


class RuntimeSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    backend: Literal["litert", "native"] = "litert"
    backends_allowed: tuple[Literal["litert", "native", "remote"], ...] = ("litert",)
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


class DeviceProfile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    device_id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    description: str = ""
    cache_dir: Path = Path("/var/lib/edge_maas/cache")
    memory_budget_mb: int = Field(default=256, ge=8)
    registry_key: Path | None = None  # the registry's Ed25519 public key (PEM)
    runtime: RuntimeSettings = RuntimeSettings()
    mqtt: MqttSettings = MqttSettings()

    def backend_options(self) -> dict:
        r = self.runtime
        if r.backend not in r.backends_allowed:
            raise ConfigError(f"profile {self.device_id}: backend {r.backend!r} is not in backends_allowed")
        return {"threads": r.threads, "xnnpack": r.xnnpack} if r.backend == "litert" else {"threads": r.threads}


def load_profile(path: str | Path) -> DeviceProfile:
    try:
        raw = tomllib.loads(Path(path).read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read device profile {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"device profile {path} is not valid TOML: {exc}") from None
    try:
        return DeviceProfile.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(x) for x in first["loc"])
        raise ConfigError(f"device profile {path}: {where}: {first['msg']}") from None
