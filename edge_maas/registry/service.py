"""The registry: publish split models as signed, numbered releases, serve their blobs over MQTT,
set devices' desired state (signed, sequenced, expiring; retained), keep those states fresh,
and publish the root of trust's versions (retained) so devices can follow key rotations."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from edge_maas.files import atomic_write
from edge_maas.manifest import read_blob
from edge_maas.registry import signing
from edge_maas.registry.blob_s3 import S3BlobStore
from edge_maas.registry.blobs import BlobStore
from edge_maas.registry.catalog import Catalog, RegistryError, VersionRecord
from edge_maas.service import load_document, parse_document
from edge_maas.transport import topics
from edge_maas.transport.chunks import BlobServer
from edge_maas.transport.client import MqttClient
from edge_maas.transport.messages import DesiredState, SignedDesired
from edge_maas.trust import keys as keyfiles
from edge_maas.trust.root import TrustedRoot, TrustError, parse_root

log = logging.getLogger(__name__)

DEFAULT_DESIRED_TTL_S = 7 * 24 * 3600.0


@dataclass(frozen=True)
class PublishStats:
    """What one publish stored: blobs the manifest names, how many (and bytes) were new, the signed manifest's size."""

    blobs: int
    new_blobs: int
    new_bytes: int
    manifest_bytes: int


class Registry:
    """``key_path``: the release role's private key (or None for read-only use: list, status).  ``blob_store``: where
    blobs live, s3://BUCKET[/PREFIX] (registry/blob_s3.py) or None: ROOT/blobs on disk, or the store recorded at
    first use (RegistryError when it differs)."""

    def __init__(self, root: Path | str, key_path: Path | str | None, *, desired_ttl_s: float = DEFAULT_DESIRED_TTL_S,
                 blob_store: str | None = None):  # fmt: skip
        root = Path(root)
        self.root = root
        self.blobs = _blob_store(root, blob_store)
        self.catalog = Catalog(root / "registry.sqlite")
        self.key = keyfiles.load_private(key_path) if key_path is not None else None
        self.desired_ttl_s = desired_ttl_s
        self._server: BlobServer | None = None
        self.last_publish: PublishStats | None = None
        if self.key is not None:
            self._check_key_trusted()

    # -- root of trust ------------------------------------------------------------------------
    def roots(self) -> list[Path]:
        """Stored root versions, oldest first (REG/trust/root.<N>.json)."""
        return sorted((self.root / "trust").glob("root.*.json"), key=_root_version)

    def add_root(self, data: bytes) -> int:
        """Store a root version after checking that it chains from the newest stored one (TUF 5.3)."""
        version = parse_root(data).signed.version
        trusted = self._newest_root()
        if trusted is None:
            TrustedRoot.from_trusted_bytes(data)  # the first: signed by its own threshold
        elif not trusted.update(data):
            raise TrustError(f"root v{version} is not newer than the stored v{trusted.version}")
        (self.root / "trust").mkdir(parents=True, exist_ok=True)
        atomic_write(self.root / "trust" / f"root.{version}.json", data)
        log.info("stored root v%d", version)
        return version

    def _newest_root(self) -> TrustedRoot | None:
        stored = self.roots()
        return TrustedRoot.from_trusted_bytes(stored[-1].read_bytes()) if stored else None

    def publish_roots(self, client: MqttClient) -> int:
        """Retain every stored root version on its own topic; devices chain through them."""
        paths = self.roots()
        for p in paths:
            client.publish(topics.trust_root(_root_version(p)), p.read_bytes(), retain=True)
        return len(paths)

    def _check_key_trusted(self) -> None:
        """Refuse to sign with a key the newest root does not name for releases: everything
        signed with it would be refused by every device (e.g. after a key was regenerated)."""
        trusted = self._newest_root()
        if trusted is None:
            return
        kid = keyfiles.tuf_key(self.key.public_key()).keyid
        if kid not in trusted.release_keyids():
            raise TrustError(f"the signing key (keyid {kid[:12]}) is not a release key of root v{trusted.version}: "
                             "devices would refuse what it signs; rotate the root to add it first")  # fmt: skip

    def _need_key(self):
        if self.key is None:
            raise RegistryError("this command signs: pass the registry's private key with --key")
        return self.key

    # -- releases -----------------------------------------------------------------------------
    def publish(self, split_dir: Path | str, progress: Callable[[int, int], None] | None = None) -> VersionRecord:
        """Store every blob the manifest names (a split's shards, a service's submodels), each verified against
        the manifest and stored once whatever the number of versions and services naming it, then the signed,
        numbered manifest.  ``last_publish`` says how many bytes were new.  ``progress(done, total)``: bytes of the
        new blobs stored so far, called after each (a CLI progress bar)."""
        key = self._need_key()
        split_dir = Path(split_dir)
        manifest = load_document(split_dir / "manifest.json")
        # every new blob read and verified before any is stored: a bad folder leaves the store as it was
        new = [read_blob(split_dir / file, what, size, sha) for what, file, size, sha in manifest.blobs()
               if not self.blobs.has(sha)]  # fmt: skip
        new_bytes, new_blobs, done = sum(map(len, new)), len(new), 0
        for data in new:
            self.blobs.put(data)
            done += len(data)
            if progress is not None:
                progress(done, new_bytes)
        release = self.catalog.next_release(manifest.name, manifest.version)
        signed = signing.sign(manifest.with_release(release), key).to_json().encode()
        rec = VersionRecord(manifest.name, manifest.version, self.blobs.put(signed), len(signed), release)
        self.catalog.add_version(rec)
        self.last_publish = PublishStats(len(manifest.blobs()), new_blobs, new_bytes, len(signed))
        log.info("published %s@%s (release %d): %d blobs (%d new, %d bytes), manifest %s", rec.model, rec.version,
                 release, len(manifest.blobs()), new_blobs, new_bytes, rec.manifest_sha256[:12])  # fmt: skip
        return rec

    def resign(self) -> int:
        """Re-sign every published manifest with the current key (after a rotation revoked the
        key that signed them: devices refuse a revoked key's signatures, old ones included).
        Deploy again afterwards: desired states name the manifest by its new sha256."""
        key = self._need_key()
        n = 0
        for rec in self.catalog.versions():
            old = self.blobs.get(rec.manifest_sha256)
            if old is None:
                raise RegistryError(f"manifest of {rec.model}@{rec.version} is missing from the blob store")
            data = signing.sign(parse_document(old), key).to_json().encode()
            if data != old:
                self.catalog.replace_manifest(rec.model, rec.version, self.blobs.put(data), len(data))
                n += 1
        log.info("re-signed %d manifest(s)", n)
        return n

    def serve(self, client: MqttClient) -> BlobServer:
        """Answer chunk requests; after every reconnect retain roots and desired states again."""
        self._server = BlobServer(client, self.blobs.get)
        client.add_connect_hook(lambda: self.republish(client))
        return self._server

    # -- desired state ------------------------------------------------------------------------
    def rollback(self, client: MqttClient, device: str) -> tuple[str, str]:
        """Deploy the version the device had before its current one, signed as a rollback."""
        history = self.catalog.deployments(device)
        current = history[0] if history else None
        previous = next((h for h in history if h != current), None)
        if previous is None:
            raise RegistryError(f"device {device} has no earlier deployment to roll back to")
        self.deploy(client, previous[0], previous[1], [device], rollback=True)
        return previous

    def deploy(self, client: MqttClient, model: str, version: str, devices: list[str], *,
               rollback: bool = False) -> list[DesiredState]:  # fmt: skip
        """Sign and retain each device's desired state (a fresh seq, expiring after desired_ttl_s); returns them,
        in order (a rollout matches each device's reported ``update.seq`` with its seq)."""
        key = self._need_key()
        rec = self.catalog.version(model, version)
        if not rec.release:
            raise RegistryError(f"{model}@{version} was published before releases were numbered: publish it again")
        sent = []
        for device in devices:
            state = DesiredState(device_id=device, model=model, version=version, release=rec.release,
                                 manifest_sha256=rec.manifest_sha256, manifest_size=rec.manifest_size,
                                 seq=self.catalog.next_seq(device), expires=signing.expiry(self.desired_ttl_s),
                                 rollback=rollback)  # fmt: skip
            self._send(client, state, key)
            self.catalog.record_deployment(device, model, version)
            sent.append(state)
            log.info("deploy %s@%s -> %s%s", model, version, device, " (rollback)" if rollback else "")
        return sent

    def refresh(self, client: MqttClient, margin_s: float | None = None) -> int:
        """Re-sign desired states that expire within ``margin_s`` (default: half their lifetime)
        with a new seq: without this a device cannot tell a quiet registry from withheld updates."""
        key = self._need_key()
        margin = self.desired_ttl_s / 2 if margin_s is None else margin_s
        horizon = datetime.now(timezone.utc).timestamp() + margin
        n = 0
        for device, signed_json, expires in self.catalog.desired_states():
            if expires > horizon:
                continue
            old = SignedDesired.model_validate_json(signed_json).signed
            state = old.model_copy(update={"seq": self.catalog.next_seq(device),
                                           "expires": signing.expiry(self.desired_ttl_s)})  # fmt: skip
            self._send(client, state, key)
            n += 1
        if n:
            log.info("refreshed %d desired state(s)", n)
        return n

    def republish(self, client: MqttClient) -> int:
        """Retain again every root version and every device's latest signed desired state, as
        signed (a broker restarted without persistence has lost them); devices take an equal seq
        for the version they run as a no-op."""
        self.publish_roots(client)
        states = self.catalog.desired_states()
        for device, signed_json, _ in states:
            client.publish(topics.desired(device), signed_json.encode(), retain=True)
        return len(states)

    def _send(self, client: MqttClient, state: DesiredState, key) -> None:
        payload = signing.sign_desired(state, key).model_dump_json()
        client.publish(topics.desired(state.device_id), payload.encode(), retain=True)
        self.catalog.record_desired(state.device_id, state.seq, payload, state.expires.timestamp())


def _blob_store(root: Path, url: str | None) -> BlobStore | S3BlobStore:
    """ROOT/blobs, or the S3 store named now or recorded in ROOT/blob_store at first use: every later command (serve,
    resign, list) then reads the store that publish wrote without repeating the flag, and never silently an empty
    one.  RegistryError when the named store differs from the recorded one, or when ROOT/blobs already holds blobs."""
    marker = root / "blob_store"
    recorded = marker.read_text().strip() if marker.is_file() else None
    if recorded and url and url != recorded:
        raise RegistryError(f"registry {root} keeps its blobs in {recorded}, not {url}")
    url = url or recorded
    if url is None:
        return BlobStore(root / "blobs")
    if not recorded and any((root / "blobs").glob("??/*")):
        raise RegistryError(f"registry {root} already keeps blobs in {root / 'blobs'}: copy them to {url} "
                            f"(same layout) and write {url} into {marker} to switch")  # fmt: skip
    store = S3BlobStore(url)
    if not recorded:
        root.mkdir(parents=True, exist_ok=True)
        atomic_write(marker, url.encode())
    return store


def _root_version(path: Path) -> int:
    """N of REG/trust/root.<N>.json."""
    return int(path.stem.split(".")[1])
