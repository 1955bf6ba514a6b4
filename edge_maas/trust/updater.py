"""Root rotation on a device: root versions arrive (retained, one topic per version) in any
order; they are applied in version order, each checked by TrustedRoot.update (TUF 5.3)."""

from __future__ import annotations

import logging
import threading

from edge_maas.trust.root import TrustedRoot, TrustError, parse_root

log = logging.getLogger(__name__)

MAX_PENDING = 32


class RootUpdater:
    def __init__(self, root: TrustedRoot):
        self.root = root
        self._pending: dict[int, bytes] = {}
        self._lock = threading.Lock()

    def offer(self, data: bytes) -> list[int]:
        """Queue a root version and apply every one that now chains; returns versions applied.

        Raises TrustError for a root that is malformed or fails its signature checks (it is
        dropped; versions after it wait for a valid one)."""
        version = parse_root(data).signed.version
        applied = []
        with self._lock:
            if version <= self.root.version:
                return applied
            if len(self._pending) >= MAX_PENDING and version not in self._pending:
                raise TrustError(f"more than {MAX_PENDING} root versions waiting; dropped v{version}")
            self._pending[version] = data
            while (nxt := self._pending.pop(self.root.version + 1, None)) is not None:
                self.root.update(nxt)
                applied.append(self.root.version)
                log.info("trusted root is now v%d (release keys %s)", self.root.version,
                         [k[:12] for k in self.root.release_keyids()])  # fmt: skip
            for v in [v for v in self._pending if v <= self.root.version]:
                del self._pending[v]
        return applied
