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
"""


class RegistryError(EdgeMaasError):
    """Unknown model/version, or a version published twice with different contents."""


@dataclass(frozen=True)
class VersionRecord:
    model: str
    version: str
    manifest_sha256: str
    manifest_size: int


class Catalog:
    def __init__(self, path: Path | str):
        self.db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self.db.executescript(SCHEMA)

    def add_version(self, rec: VersionRecord) -> None:
        old = self.version(rec.model, rec.version, missing_ok=True)
        if old is not None and old != rec:
            raise RegistryError(f"{rec.model}@{rec.version} is already published with other contents; bump the version")
        self.db.execute("INSERT OR IGNORE INTO versions VALUES (?, ?, ?, ?, ?)",
                        (rec.model, rec.version, rec.manifest_sha256, rec.manifest_size, time.time()))  # fmt: skip

    def version(self, model: str, version: str, missing_ok: bool = False) -> VersionRecord | None:
        row = self.db.execute("SELECT model, version, manifest_sha256, manifest_size FROM versions "
                              "WHERE model = ? AND version = ?", (model, version)).fetchone()  # fmt: skip
        if row is None and not missing_ok:
            raise RegistryError(f"no published version {model}@{version}")
        return VersionRecord(*row) if row else None

    def versions(self) -> list[VersionRecord]:
        rows = self.db.execute("SELECT model, version, manifest_sha256, manifest_size FROM versions ORDER BY created")
        return [VersionRecord(*r) for r in rows]

    def deployments(self, target: str) -> list[tuple[str, str]]:
        """(model, version) deployed to target, newest first."""
        rows = self.db.execute("SELECT model, version FROM deployments WHERE target = ? ORDER BY created DESC, rowid DESC",
                               (target,))  # fmt: skip
        return [tuple(r) for r in rows]

    def record_deployment(self, target: str, model: str, version: str) -> None:
        self.db.execute("INSERT INTO deployments VALUES (?, ?, ?, ?)", (target, model, version, time.time()))
