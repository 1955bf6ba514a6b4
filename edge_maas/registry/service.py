"""The registry: publish split models as signed versions, serve their blobs over MQTT,
and set devices' desired state (retained)."""

from __future__ import annotations

import logging
from pathlib import Path

from edge_maas.manifest import Manifest
from edge_maas.registry import signing
from edge_maas.registry.blobs import BlobStore
from edge_maas.registry.catalog import Catalog, RegistryError, VersionRecord
from edge_maas.transport import topics
from edge_maas.transport.chunks import BlobServer
from edge_maas.transport.client import MqttClient
from edge_maas.transport.messages import DesiredState

log = logging.getLogger(__name__)


class Registry:
    def __init__(self, root: Path | str, key_path: Path | str):
        root = Path(root)
        self.blobs = BlobStore(root / "blobs")
        self.catalog = Catalog(root / "registry.sqlite")
        self.key = signing.load_private(key_path)
        self._server: BlobServer | None = None

    def publish(self, split_dir: Path | str) -> VersionRecord:
        """Store every shard (verified against the manifest) and the signed manifest."""
        split_dir = Path(split_dir)
        manifest = Manifest.load(split_dir / "manifest.json")
        for shard in manifest.shards:
            self.blobs.put(manifest.read_shard(split_dir, shard))
        signed = signing.sign(manifest, self.key).to_json().encode()
        rec = VersionRecord(manifest.model.name, manifest.model.version, self.blobs.put(signed), len(signed))
        self.catalog.add_version(rec)
        log.info("published %s@%s: %d shards, manifest %s", rec.model, rec.version, len(manifest.shards),
                 rec.manifest_sha256[:12])  # fmt: skip
        return rec

    def serve(self, client: MqttClient) -> BlobServer:
        self._server = BlobServer(client, self.blobs.get)
        return self._server

    def rollback(self, client: MqttClient, device: str) -> tuple[str, str]:
        """Deploy the version the device had before its current one; returns it."""
        history = self.catalog.deployments(device)
        current = history[0] if history else None
        previous = next((h for h in history if h != current), None)
        if previous is None:
            raise RegistryError(f"device {device} has no earlier deployment to roll back to")
        self.deploy(client, previous[0], previous[1], [device])
        return previous

    def deploy(self, client: MqttClient, model: str, version: str, devices: list[str]) -> None:
        rec = self.catalog.version(model, version)
        msg = DesiredState(model=model, version=version, manifest_sha256=rec.manifest_sha256,
                           manifest_size=rec.manifest_size).model_dump_json().encode()  # fmt: skip
        for device in devices:
            client.publish(topics.desired(device), msg, retain=True)
            self.catalog.record_deployment(device, model, version)
            log.info("deploy %s@%s -> %s", model, version, device)
