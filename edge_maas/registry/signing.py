"""Signing what the registry releases (manifests, desired states) with the release role's keys,
and verifying it against a trusted root (edge_maas.trust.root).  Key files: edge_maas.trust.keys
(re-exported here for callers that only sign manifests)."""

from __future__ import annotations

from datetime import datetime, timedelta

from securesystemslib.signer import Signer

from edge_maas.errors import ManifestError
from edge_maas.manifest import SignedDocument
from edge_maas.transport.messages import DesiredState, SignedDesired
from edge_maas.trust import envelope
from edge_maas.trust.keys import load_private, load_public, load_signer, new_key, public_pem, signer  # noqa: F401
from edge_maas.trust.root import TrustedRoot, TrustError, now


def _signers(keys) -> list[Signer]:
    """A Signer, an Ed25519 private key, or an iterable of either -> signers."""
    items = keys if isinstance(keys, (list, tuple)) else [keys]
    return [k if isinstance(k, Signer) else signer(k) for k in items]


def sign(manifest: SignedDocument, keys) -> SignedDocument:
    """The manifest (v1 or a v2 service: the signature covers the whole service) with one signature
    per key over its canonical bytes (replacing any)."""
    sigs = envelope.sign(manifest.model_copy(update={"signatures": ()}).canonical_bytes(), _signers(keys))
    return manifest.model_copy(update={"signatures": sigs})


def verify(manifest: SignedDocument, trust) -> None:
    """ManifestError unless a threshold of the trusted release keys signed the manifest.

    ``trust``: a TrustedRoot, or an Ed25519 public key (a one-key root)."""
    what = f"{manifest.KIND} {manifest.name}@{manifest.version}"
    if not manifest.signatures:
        raise ManifestError(f"{what} is not signed")
    try:
        TrustedRoot.coerce(trust).verify(manifest.canonical_bytes(), manifest.signatures, what)
    except TrustError as exc:
        raise ManifestError(f"{exc} (tampered, or signed by an untrusted key?)") from None


def sign_desired(desired: DesiredState, keys) -> SignedDesired:
    return SignedDesired(signed=desired, signatures=envelope.sign(desired.canonical_bytes(), _signers(keys)))


def expiry(seconds: float, at: datetime | None = None) -> datetime:
    return ((at or now()) + timedelta(seconds=seconds)).replace(microsecond=0)
