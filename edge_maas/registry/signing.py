"""Ed25519 signing of manifests: the registry signs canonical_bytes(); devices verify with
the registry's public key before trusting anything the manifest names."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from edge_maas.errors import ManifestError
from edge_maas.manifest import Manifest, Signature


def new_key(private_path: Path | str) -> Path:
    """Write a new private key (PEM, mode 0600) and its public key beside it (.pub); return the .pub path."""
    key = Ed25519PrivateKey.generate()
    private_path = Path(private_path)
    private_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))  # fmt: skip
    private_path.chmod(0o600)
    pub = private_path.with_suffix(".pub")
    pub.write_bytes(public_pem(key.public_key()))
    return pub


def public_pem(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def load_private(path: Path | str) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ManifestError(f"{path} is not an Ed25519 private key")
    return key


def load_public(path_or_pem: Path | str | bytes) -> Ed25519PublicKey:
    pem = path_or_pem if isinstance(path_or_pem, bytes) else Path(path_or_pem).read_bytes()
    key = serialization.load_pem_public_key(pem)
    if not isinstance(key, Ed25519PublicKey):
        raise ManifestError("the registry key is not an Ed25519 public key")
    return key


def key_id(key: Ed25519PublicKey) -> str:
    return hashlib.sha256(public_pem(key)).hexdigest()[:16]


def sign(manifest: Manifest, key: Ed25519PrivateKey) -> Manifest:
    value = base64.b64encode(key.sign(manifest.canonical_bytes())).decode()
    sig = Signature(algorithm="ed25519", key_id=key_id(key.public_key()), value=value)
    return manifest.model_copy(update={"signature": sig})


def verify(manifest: Manifest, key: Ed25519PublicKey) -> None:
    """ManifestError unless the manifest carries a valid signature by this key."""
    sig = manifest.signature
    if sig is None:
        raise ManifestError(f"manifest {manifest.model.name}@{manifest.model.version} is not signed")
    if sig.key_id != key_id(key):
        raise ManifestError(f"manifest signed by key {sig.key_id}, not the registry key {key_id(key)}")
    try:
        key.verify(base64.b64decode(sig.value, validate=True), manifest.canonical_bytes())
    except (InvalidSignature, ValueError):
        raise ManifestError(f"manifest {manifest.model.name}@{manifest.model.version}: bad signature (tampered?)") from None
