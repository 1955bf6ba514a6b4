"""Content-addressed blob store on disk: blobs/<sha[:2]>/<sha>, written atomically,
verified on read (a corrupted file is reported and discarded, never served)."""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

from edge_maas.errors import IntegrityError
from edge_maas.files import atomic_write

log = logging.getLogger(__name__)


class BlobStore:
    def __init__(self, root: Path | str):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, sha256: str) -> Path:
        return self.root / sha256[:2] / sha256

    def has(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    def put(self, data: bytes) -> str:
        sha = hashlib.sha256(data).hexdigest()
        dest = self.path(sha)
        if dest.is_file():
            return sha
        dest.parent.mkdir(exist_ok=True)
        atomic_write(dest, data)
        return sha

    def get(self, sha256: str) -> bytes | None:
        """The blob, or None if absent.  A file that no longer matches its name (bit flip, torn
        write) is deleted, so that the next put() or fetch can replace it, and IntegrityError is
        raised for this call.  A read marks the blob as recently used (its mtime) for LRU eviction."""
        p = self.path(sha256)
        try:
            data = p.read_bytes()
        except (FileNotFoundError, IsADirectoryError):  # absent, or evicted since the caller's has()
            return None
        if hashlib.sha256(data).hexdigest() != sha256:
            # put() skips names that exist: a corrupt file left in place could never be repaired
            p.unlink(missing_ok=True)
            log.error("cache: blob %s on disk was corrupt (%d bytes); discarded", sha256[:12], len(data))
            raise IntegrityError(f"blob {sha256[:12]} on disk was corrupt ({p}); discarded")
        os.utime(p)
        return data

    def _files(self) -> list[tuple[Path, os.stat_result]]:
        """Every file of the store with its stat, writes in progress included, taken once.  Other threads write
        (a temporary file renamed away), evict and discard while this lists: a file gone between the listing and
        its stat is left out, not an error (a /metrics scrape during an install answered 500 on it)."""
        out = []
        for p in self.root.glob("??/*"):
            try:
                out.append((p, p.stat()))
            except FileNotFoundError:
                pass
        return out

    def total_bytes(self) -> int:
        return sum(st.st_size for _, st in self._files())

    def evict(self, budget: int, keep: set[str]) -> list[str]:
        """Delete least recently used blobs, never one in `keep`, until the store fits in
        `budget` bytes (or only kept blobs remain); returns the evicted hashes."""
        blobs = sorted(self._files(), key=lambda f: f[1].st_mtime)
        total = sum(st.st_size for _, st in blobs)
        evicted = []
        for p, st in blobs:
            if total <= budget:
                break
            if p.name in keep or p.name.startswith("."):  # "." : a write in progress (edge_maas.files)
                continue
            total -= st.st_size
            p.unlink(missing_ok=True)  # a corrupt blob get() discarded meanwhile
            evicted.append(p.name)
        if evicted:
            log.info("cache: evicted %d blobs, %d bytes now (budget %d)", len(evicted), total, budget)
        return evicted
