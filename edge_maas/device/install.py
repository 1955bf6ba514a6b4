"""The one verified path from a manifest hash to a running pipeline, shared by devices and
workers: signature checked, every blob sha256-checked before it is cached or loaded, golden
pair reproduced byte for byte."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from edge_maas.errors import EdgeMaasError, IntegrityError
from edge_maas.manifest import Manifest
from edge_maas.pipeline import Pipeline
from edge_maas.registry import signing
from edge_maas.registry.blobs import BlobStore
from edge_maas.transport.chunks import BlobFetcher


class Installer:
    def __init__(self, cache: BlobStore, fetcher: BlobFetcher | None, registry_key, backend: str = "litert",
                 options: Mapping | None = None):  # fmt: skip
        self.cache = cache
        self.fetcher = fetcher  # None: offline, cache only
        self.key = registry_key
        self.backend = backend
        self.options = dict(options or {"xnnpack": False})  # golden pairs come from built-in kernels

    def manifest(self, sha256: str, size: int) -> Manifest:
        manifest = Manifest.from_json(self.blob(sha256, size))
        signing.verify(manifest, self.key)
        return manifest

    def pipeline(self, manifest: Manifest) -> Pipeline:
        """Fetch what is missing, load from the verified cache, health-check."""
        for shard in manifest.shards:
            self.blob(shard.sha256, shard.size)
        pipeline = Pipeline.from_reader(manifest, self._verified_shard(manifest), self.backend, **self.options)
        out = pipeline.run({t.name: t.to_array() for t in manifest.golden.inputs})
        for t in manifest.golden.outputs:
            if not np.array_equal(out[t.name], t.to_array()):
                raise EdgeMaasError(f"health check failed: output {t.name!r} differs from the golden output")
        return pipeline

    def blob(self, sha256: str, size: int) -> bytes:
        """From the cache, or fetched (verified by the fetcher) and then cached."""
        data = self.cache.get(sha256)
        if data is None:
            if self.fetcher is None:
                raise IntegrityError(f"blob {sha256[:12]} is not in the cache")
            data = self.fetcher.fetch(sha256, size)
            self.cache.put(data)
        return data

    def _verified_shard(self, manifest: Manifest):
        def read(shard):
            data = self.cache.get(shard.sha256)
            if data is None:
                raise IntegrityError(f"shard {shard.index} vanished from the cache")
            manifest.verify_shard(shard, data)
            return data

        return read
