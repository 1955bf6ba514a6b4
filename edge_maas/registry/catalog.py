"""Registry metadata in SQLite: model versions (their signed manifest's blob) and
deployments.  Shards and manifests themselves live in the BlobStore."""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from edge_maas.errors import EdgeMaasError

SCHEMA = """
CREATE TABLE IF NOT EXISTS versions (
    model TEXT NOT NULL, version TEXT NOT NULL, manifest_sha256 TEXT NOT NULL, manifest_size INTEGER NOT NULL,
    created REAL NOT NULL, PRIMARY KEY (model, version));
CREATE TABLE IF NOT EXISTS deployments (
    target TEXT NOT NULL, model TEXT NOT NULL, version TEXT NOT NULL, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS desired (
    device TEXT PRIMARY KEY, seq INTEGER NOT NULL, signed TEXT NOT NULL, expires REAL NOT NULL);
"""


class RegistryError(EdgeMaasError):
    """Unknown model/version, or a version published twice with different contents."""


def require_registry(root: Path | str) -> None:
    """RegistryError unless ``root`` holds a registry (its registry.sqlite).  Only `registry publish` creates
    one: a mistyped --root elsewhere is refused instead of silently becoming a new, empty registry."""
    if not (Path(root) / "registry.sqlite").is_file():
        raise RegistryError(f"no registry at {root} (no registry.sqlite there); check --root, "
                            "or create one with `edge-maas registry publish`")  # fmt: skip


@dataclass(frozen=True)
class VersionRecord:
    model: str
    version: str
    manifest_sha256: str
    manifest_size: int
    release: int = 0  # 1, 2, ... per model in publish order; 0: not yet assigned


class Catalog:
    def __init__(self, path: Path | str):
        self.db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self.db.executescript(SCHEMA)
        cols = {r[1] for r in self.db.execute("PRAGMA table_info(versions)")}
        if "release" not in cols:  # registries made before releases were numbered
            self.db.execute("ALTER TABLE versions ADD COLUMN release INTEGER NOT NULL DEFAULT 0")

    def add_version(self, rec: VersionRecord) -> None:
        old = self.version(rec.model, rec.version, missing_ok=True)
        if old is not None and old != rec:
            raise RegistryError(f"{rec.model}@{rec.version} is already published with other contents; bump the version")
        self.db.execute("INSERT OR IGNORE INTO versions (model, version, manifest_sha256, manifest_size, created, "
                        "release) VALUES (?, ?, ?, ?, ?, ?)", (rec.model, rec.version, rec.manifest_sha256,
                        rec.manifest_size, time.time(), rec.release))  # fmt: skip

    def next_release(self, model: str, version: str) -> int:
        """The release number a new version of ``model`` gets (an existing version keeps its own)."""
        old = self.version(model, version, missing_ok=True)
        if old is not None and old.release:
            return old.release
        (top,) = self.db.execute("SELECT COALESCE(MAX(release), 0) FROM versions WHERE model = ?", (model,)).fetchone()
        return top + 1

    def version(self, model: str, version: str, missing_ok: bool = False) -> VersionRecord | None:
        row = self.db.execute("SELECT model, version, manifest_sha256, manifest_size, release FROM versions "
                              "WHERE model = ? AND version = ?", (model, version)).fetchone()  # fmt: skip
        if row is None and not missing_ok:
            raise RegistryError(f"no published version {model}@{version}")
        return VersionRecord(*row) if row else None

    def versions(self) -> list[VersionRecord]:
        rows = self.db.execute("SELECT model, version, manifest_sha256, manifest_size, release FROM versions ORDER BY created")
        return [VersionRecord(*r) for r in rows]

    def deployments(self, target: str) -> list[tuple[str, str]]:
        """(model, version) deployed to target, newest first."""
        rows = self.db.execute("SELECT model, version FROM deployments WHERE target = ? ORDER BY created DESC, rowid DESC",
                               (target,))  # fmt: skip
        return [tuple(r) for r in rows]

    def record_deployment(self, target: str, model: str, version: str) -> None:
        self.db.execute("INSERT INTO deployments VALUES (?, ?, ?, ?)", (target, model, version, time.time()))

    def next_seq(self, device: str) -> int:
        """A desired-state sequence number for ``device``, above every earlier one: milliseconds
        since the epoch, bumped past the last one issued (a lost database still counts upwards)."""
        row = self.db.execute("SELECT seq FROM desired WHERE device = ?", (device,)).fetchone()
        return max(int(time.time() * 1000), (row[0] + 1) if row else 0)

    def record_desired(self, device: str, seq: int, signed_json: str, expires: float) -> None:
        self.db.execute("INSERT OR REPLACE INTO desired VALUES (?, ?, ?, ?)", (device, seq, signed_json, expires))

    def desired_states(self) -> list[tuple[str, str, float]]:
        """(device, SignedDesired JSON, expires as epoch seconds) of every device's latest desired state."""
        return [tuple(r) for r in self.db.execute("SELECT device, signed, expires FROM desired ORDER BY device")]

    def replace_manifest(self, model: str, version: str, manifest_sha256: str, manifest_size: int) -> None:
        """Point a version at its re-signed manifest (same content, new signatures)."""
        self.db.execute("UPDATE versions SET manifest_sha256 = ?, manifest_size = ? WHERE model = ? AND version = ?",
                        (manifest_sha256, manifest_size, model, version))  # fmt: skip
