"""Files that survive a power cut: written to a temporary file beside the target, fsynced, then renamed
over it, so a reader sees the old contents or the new ones, never a torn file."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def atomic_write(path: str | Path, data: bytes, mode: int = 0o644) -> None:
    """Replace ``path`` with ``data`` atomically (same folder: the rename stays on one file system), with
    permissions ``mode`` (mkstemp's own 0600 would make shared files, models and manifests, private).

    Raises OSError from the file system; the temporary file is removed on any failure."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.tmp-")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
