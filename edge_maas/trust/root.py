"""The root of trust, as TUF's root role (TUF specification 1.0, section 5.3 "Update the root
role"), on python-tuf's Metadata API.

A root names keys and, per role, which keys sign for it and how many must (threshold).  Role
``root`` signs root versions; role ``targets`` signs what the registry releases (manifests,
desired states).  A new root version N+1 is trusted only if signed by a threshold of root keys
of version N *and* of N+1; a key is revoked by leaving it out of the next version.  Roots expire
(freeze attacks go noticed).  A bare Ed25519 public key (older profiles) becomes a one-key root
that can never rotate."""

from __future__ import annotations

import copy
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from securesystemslib.signer import Signer
from tuf.api.metadata import Metadata, Root
from tuf.api.serialization import DeserializationError
from tuf.api.serialization.json import JSONSerializer

from edge_maas.errors import EdgeMaasError
from edge_maas.files import atomic_write
from edge_maas.trust import keys as keyfiles
from edge_maas.trust.envelope import Signature, as_tuf

RELEASE_ROLE = "targets"  # TUF's role for "what is authentic to install"
MAX_ROOT_BYTES = 1 << 20


class TrustError(EdgeMaasError):
    """Metadata is unsigned, signed by the wrong or too few keys, expired, or replayed."""


def now() -> datetime:
    return datetime.now(timezone.utc)


def new_root(root_keys: Iterable[Ed25519PublicKey], release_keys: Iterable[Ed25519PublicKey], *,
             root_threshold: int = 1, release_threshold: int = 1, expires_days: float = 365, version: int = 1) -> Root:
    """An unsigned root: these root keys (threshold) sign roots, these release keys sign releases.
    TUF's snapshot and timestamp roles are given the release keys (unused here)."""
    r = Root(version=version, expires=(now() + timedelta(days=expires_days)).replace(microsecond=0),
             consistent_snapshot=False)  # fmt: skip
    for k in root_keys:
        r.add_key(keyfiles.tuf_key(k), Root.type)
    for k in release_keys:
        for role in (RELEASE_ROLE, "snapshot", "timestamp"):
            r.add_key(keyfiles.tuf_key(k), role)
    r.roles[Root.type].threshold = root_threshold
    r.roles[RELEASE_ROLE].threshold = release_threshold
    for role, t in ((Root.type, root_threshold), (RELEASE_ROLE, release_threshold)):
        if not 1 <= t <= len(r.roles[role].keyids):
            raise TrustError(f"{role} threshold {t} needs between 1 and {len(r.roles[role].keyids)} keys")
    return r


def sign_root(root: Root, signers: Iterable[Signer]) -> bytes:
    """Root metadata JSON signed by each signer (for a rotation: old and new root keys)."""
    md = Metadata(root)
    for s in signers:
        md.sign(s, append=True)
    return md.to_bytes(JSONSerializer(compact=False))


def parse_root(data: bytes) -> Metadata[Root]:
    if len(data) > MAX_ROOT_BYTES:
        raise TrustError(f"root metadata of {len(data)} bytes exceeds {MAX_ROOT_BYTES}")
    try:
        md = Metadata.from_bytes(data)
    except (DeserializationError, ValueError, TypeError, KeyError) as exc:
        raise TrustError(f"malformed root metadata: {str(exc).splitlines()[0][:200]}") from None
    if not isinstance(md.signed, Root):
        raise TrustError(f"metadata of type {md.signed.type!r} where root metadata was expected")
    return md


class TrustedRoot:
    """The device's (or worker's) current root; `update()` follows TUF 5.3, `verify()` checks a
    release signature threshold.  With ``path``, accepted versions are persisted there
    (temp file, fsync, rename) and preferred over the pinned one at the next start."""

    def __init__(self, md: Metadata[Root], path: Path | None = None):
        self._md = md
        self.path = path

    @classmethod
    def from_trusted_bytes(cls, data: bytes, path: Path | None = None) -> TrustedRoot:
        """Trust-on-first-use of pinned (firmware) root bytes: self-signed by its threshold."""
        md = parse_root(data)
        res = md.signed.get_root_verification_result(None, md.signed_bytes, md.signatures)
        if not res.verified:
            raise TrustError(f"pinned root v{md.signed.version} is signed by {len(res.signed)} of its "
                             f"{md.signed.roles[Root.type].threshold} required root keys")  # fmt: skip
        return cls(md, path)

    @classmethod
    def from_public_key(cls, key: Ed25519PublicKey) -> TrustedRoot:
        """A one-key root that cannot rotate (profiles that pin a bare public key)."""
        return cls(Metadata(new_root([key], [key], expires_days=365 * 100)))

    @classmethod
    def load(cls, pinned: Path | str, state_file: Path | None = None) -> TrustedRoot:
        """The pinned trust (root.json or a PEM public key); a newer root accepted earlier and
        persisted in ``state_file`` (chained when it was accepted) wins if it is not older."""
        data = keyfiles.read_bytes(pinned, "trust root")
        if b"PUBLIC KEY" in data and not data.lstrip().startswith(b"{"):
            return cls.from_public_key(keyfiles.load_public(data))
        trusted = cls.from_trusted_bytes(data, state_file)
        if state_file is not None and state_file.exists():
            try:
                saved = cls.from_trusted_bytes(state_file.read_bytes(), state_file)
            except (TrustError, OSError):
                return trusted  # a damaged saved root: start from the pinned one again
            if saved.version >= trusted.version:
                return saved
        return trusted

    @classmethod
    def coerce(cls, trust) -> TrustedRoot:
        """A TrustedRoot from a TrustedRoot or an Ed25519 public key (older call sites)."""
        if isinstance(trust, TrustedRoot):
            return trust
        if isinstance(trust, Ed25519PublicKey):
            return cls.from_public_key(trust)
        raise TypeError(f"expected a TrustedRoot or an Ed25519 public key, got {type(trust).__name__}")

    @property
    def root(self) -> Root:
        return self._md.signed

    @property
    def version(self) -> int:
        return self._md.signed.version

    def expired(self, at: datetime | None = None) -> bool:
        return self._md.signed.is_expired(at or now())

    def release_keyids(self) -> list[str]:
        return list(self.root.roles[RELEASE_ROLE].keyids)

    def update(self, data: bytes) -> bool:
        """Accept root version N+1 (TUF 5.3.4-5.3.8); False if not newer than the trusted one.

        Raises TrustError for a malformed root, a skipped version, or too few signatures by the
        trusted root keys or by the new root's own keys."""
        md = parse_root(data)
        new = md.signed
        if new.version <= self.version:
            return False
        if new.version != self.version + 1:
            raise TrustError(f"root v{new.version} does not follow the trusted v{self.version}: "
                             f"v{self.version + 1} is needed first")  # fmt: skip
        res = new.get_root_verification_result(self.root, md.signed_bytes, md.signatures)
        if not res.first.verified:
            raise TrustError(f"root v{new.version} is signed by {len(res.first.signed)} of the "
                             f"{res.first.threshold} root keys of trusted v{self.version} it needs")  # fmt: skip
        if not res.second.verified:
            raise TrustError(f"root v{new.version} is signed by {len(res.second.signed)} of its own "
                             f"{res.second.threshold} root keys")  # fmt: skip
        self._md = md
        if self.path is not None:
            atomic_write(self.path, data)
        return True

    def verify(self, payload: bytes, signatures: Iterable[Signature], what: str) -> None:
        """TrustError unless a threshold of the release role's keys signed ``payload``, and the
        root itself has not expired (TUF 5.3.10: a frozen root is not used to verify)."""
        if self.expired():
            raise TrustError(f"trusted root v{self.version} expired at {self.root.expires.isoformat()}; "
                             f"refusing {what} until a newer root arrives")  # fmt: skip
        res = self.root.get_verification_result(RELEASE_ROLE, payload, as_tuf(signatures))
        if not res.verified:
            known = set(self.release_keyids())
            foreign = [s.keyid[:12] for s in signatures if s.keyid not in known]
            why = f"; signed by key(s) {', '.join(foreign)} that root v{self.version} does not trust" if foreign else ""
            raise TrustError(f"{what}: {len(res.signed)} valid signature(s) of the {res.threshold} needed{why}")


def check_expiry(expires: datetime, what: str) -> None:
    """TrustError if ``expires`` (timezone-aware) has passed: TUF's freeze-attack check."""
    if expires <= now():
        raise TrustError(f"{what} expired at {expires.isoformat()} (withheld updates? registry not refreshing?)")



def rotate(current: Root, *, root_keys: Iterable[Ed25519PublicKey] | None = None,
           release_keys: Iterable[Ed25519PublicKey] | None = None, revoke: Iterable[str] = (),
           root_threshold: int | None = None, release_threshold: int | None = None,
           expires_days: float = 365) -> Root:
    """Root version N+1 (unsigned): new root and/or release keys (default: N's), minus revoked
    keyids (a unique prefix is enough), thresholds kept unless given.  TrustError if a revoked
    keyid is unknown or a threshold can no longer be met."""
    nxt = copy.deepcopy(current)
    nxt.version = current.version + 1
    nxt.expires = (now() + timedelta(days=expires_days)).replace(microsecond=0)
    for role, new_keys in ((Root.type, root_keys), (RELEASE_ROLE, release_keys)):
        if new_keys is None:
            continue
        roles = (role,) if role == Root.type else (RELEASE_ROLE, "snapshot", "timestamp")
        for r in roles:
            for kid in list(nxt.roles[r].keyids):
                nxt.revoke_key(kid, r)
            for k in new_keys:
                nxt.add_key(keyfiles.tuf_key(k), r)
    for prefix in revoke:
        hits = [k for k in nxt.keys if k.startswith(prefix)]
        if len(hits) != 1:
            raise TrustError(f"--revoke {prefix}: matches {len(hits)} keys of root v{current.version}")
        for r in list(nxt.roles):
            if hits[0] in nxt.roles[r].keyids:
                nxt.revoke_key(hits[0], r)
    for role, t in ((Root.type, root_threshold), (RELEASE_ROLE, release_threshold)):
        if t is not None:
            nxt.roles[role].threshold = t
        n = len(nxt.roles[role].keyids)
        if not 1 <= nxt.roles[role].threshold <= n:
            raise TrustError(f"root v{nxt.version}: {role} threshold {nxt.roles[role].threshold} with {n} key(s)")
    return nxt
