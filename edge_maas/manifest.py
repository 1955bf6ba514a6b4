"""The manifest: what a split model is made of, and how to check each piece.

JSON, validated on load (unknown fields and wrong types are errors).  The
`signatures` field holds the registry's Ed25519 signatures (TUF's {keyid, sig}) over
the canonical JSON of everything else.  Schema: docs/manifest.schema.json.
"""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edge_maas.errors import ManifestError
from edge_maas.trust.envelope import Signature, canonical_json

SCHEMA_VERSION = 1
Sha256 = Field(pattern=r"^[0-9a-f]{64}$")
DType = Literal["int8", "uint8", "int16", "int32", "int64", "float16", "float32", "float64", "bool", "uint16", "uint32"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TensorDesc(_Strict):
    name: str = Field(min_length=1)
    shape: tuple[int, ...]
    dtype: DType
    scale: tuple[float, ...] = ()
    zero_point: tuple[int, ...] = ()
    quantized_dimension: int = 0

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * np.dtype(self.dtype).itemsize


class ShardDesc(_Strict):
    index: int = Field(ge=0)
    file: str = Field(pattern=r"^[A-Za-z0-9_.-]+\.tflite$")  # a bare file name: no paths, no '..'
    sha256: str = Sha256
    size: int = Field(ge=8)
    inputs: tuple[TensorDesc, ...]
    outputs: tuple[TensorDesc, ...] = Field(min_length=1)
    ops: tuple[str, ...] = Field(min_length=1)
    macs: int = Field(ge=0)
    constant_bytes: int = Field(ge=0)


class TensorData(_Strict):
    """A small tensor carried inline (golden pairs): raw little-endian bytes, base64."""

    name: str
    dtype: DType
    shape: tuple[int, ...]
    data: str

    @classmethod
    def from_array(cls, name: str, arr: np.ndarray) -> TensorData:
        a = np.ascontiguousarray(arr)
        return cls(name=name, dtype=a.dtype.name, shape=a.shape, data=base64.b64encode(a.tobytes()).decode())

    def to_array(self) -> np.ndarray:
        raw = base64.b64decode(self.data, validate=True)
        dt = np.dtype(self.dtype).newbyteorder("<")
        expected = int(np.prod(self.shape, dtype=np.int64)) * dt.itemsize
        if len(raw) != expected:
            raise ManifestError(f"golden tensor {self.name!r} holds {len(raw)} bytes; its shape needs {expected}")
        return np.frombuffer(raw, dtype=dt).reshape(self.shape).astype(dt.newbyteorder("="))


class Golden(_Strict):
    inputs: tuple[TensorData, ...]
    outputs: tuple[TensorData, ...]


class ModelInfo(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    version: str = Field(pattern=r"^[A-Za-z0-9_.+-]+$")
    release: int | None = Field(default=None, ge=1)  # set by the registry at publish: orders versions
    source_sha256: str = Sha256
    source_size: int = Field(ge=0)


class SignedDocument(_Strict):
    """What manifests of every schema version share: JSON on disk, validated on load, and
    ``signatures`` (declared by each subclass) over the canonical JSON of everything else."""

    KIND: ClassVar[str] = "manifest"  # for error messages

    def to_json(self) -> str:
        return self.model_dump_json(indent=2) + "\n"

    def canonical_bytes(self) -> bytes:
        """The bytes signatures cover: everything but the signatures, sorted keys, no spaces."""
        return canonical_json(self.model_dump(mode="json", exclude={"signatures"}))

    @classmethod
    def from_json(cls, text: str | bytes):
        """Parse and check; ManifestError on anything malformed or inconsistent."""
        try:
            m = cls.model_validate_json(text)
        except ValidationError as exc:
            raise ManifestError(f"invalid {cls.KIND}: {_summarize(exc)}") from None
        m._check_consistency()
        return m

    @classmethod
    def load(cls, path: str | Path):
        return cls.from_json(read_manifest_bytes(path))

    def _check_consistency(self) -> None:
        raise NotImplementedError

    # what the registry and devices need of any manifest, whatever its schema version
    @property
    def name(self) -> str:
        raise NotImplementedError

    @property
    def version(self) -> str:
        raise NotImplementedError

    @property
    def release(self) -> int | None:
        raise NotImplementedError

    def with_release(self, release: int):
        """A copy numbered ``release`` (the registry's job at publish)."""
        raise NotImplementedError

    def blobs(self) -> list[tuple[str, str, int, str]]:
        """(what, file, size, sha256) of every blob the manifest names, in order."""
        raise NotImplementedError


def read_manifest_bytes(path: str | Path) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ManifestError(f"cannot read manifest {path}: {exc.strerror}") from None


def verify_blob(what: str, data: bytes, size: int, sha256: str) -> None:
    """ManifestError unless ``data`` has the size and sha256 the manifest gives for ``what``."""
    if len(data) != size:
        raise ManifestError(f"{what} is {len(data)} bytes; the manifest says {size}")
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha256:
        raise ManifestError(f"{what} has sha256 {digest}; the manifest says {sha256}")


def read_blob(path: Path, what: str, size: int, sha256: str) -> bytes:
    """Read a file the manifest names and verify it; unverified bytes never leave this function."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ManifestError(f"cannot read {what} at {path}: {exc.strerror}") from None
    verify_blob(what, data, size, sha256)
    return data


class Manifest(SignedDocument):
    schema_version: Literal[1] = SCHEMA_VERSION
    model: ModelInfo
    inputs: tuple[TensorDesc, ...] = Field(min_length=1)
    outputs: tuple[TensorDesc, ...] = Field(min_length=1)
    shards: tuple[ShardDesc, ...] = Field(min_length=1)
    golden: Golden
    created_by: str
    signatures: tuple[Signature, ...] = Field(default=(), max_length=16)  # release role (edge_maas.trust)

    def _check_consistency(self) -> None:
        if [s.index for s in self.shards] != list(range(len(self.shards))):
            raise ManifestError("invalid manifest: shard indices must be 0..N-1 in order")
        available = {t.name for t in self.inputs}
        for s in self.shards:
            missing = [t.name for t in s.inputs if t.name not in available]
            if missing:
                raise ManifestError(f"invalid manifest: shard {s.index} reads {missing}, which no earlier shard produces")
            available.update(t.name for t in s.outputs)
        missing = [t.name for t in self.outputs if t.name not in available]
        if missing:
            raise ManifestError(f"invalid manifest: model outputs {missing} are produced by no shard")

    @property
    def name(self) -> str:
        return self.model.name

    @property
    def version(self) -> str:
        return self.model.version

    @property
    def release(self) -> int | None:
        return self.model.release

    def with_release(self, release: int) -> Manifest:
        return self.model_copy(update={"model": self.model.model_copy(update={"release": release})})

    def blobs(self) -> list[tuple[str, str, int, str]]:
        return [(f"shard {s.index} ({s.file})", s.file, s.size, s.sha256) for s in self.shards]

    def verify_shard(self, shard: ShardDesc, data: bytes) -> None:
        """Raise ManifestError unless ``data`` is exactly the shard the manifest names."""
        verify_blob(f"shard {shard.index} ({shard.file})", data, shard.size, shard.sha256)

    def read_shard(self, directory: str | Path, shard: ShardDesc) -> bytes:
        """Read a shard file and verify it; unverified bytes never leave this function."""
        return read_blob(Path(directory) / shard.file, f"shard {shard.index} ({shard.file})", shard.size, shard.sha256)


def _summarize(exc: ValidationError, limit: int = 3) -> str:
    parts = []
    for err in exc.errors()[:limit]:
        where = ".".join(str(x) for x in err["loc"]) or "(root)"
        parts.append(f"{where}: {err['msg']}")
    more = len(exc.errors()) - limit
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


def json_schema() -> dict:
    return Manifest.model_json_schema()
