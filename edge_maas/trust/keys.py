"""Key files: Ed25519 private keys (PEM, PKCS#8, mode 0600) and their public keys (.pub, PEM).

Every failure is a KeyFileError with the path and what to do; nothing is overwritten unless
asked (a silently replaced signing key makes every later version unverifiable)."""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from securesystemslib.signer import CryptoSigner, SSlibKey

from edge_maas.errors import EdgeMaasError


class KeyFileError(EdgeMaasError):
    """A key file is missing, unreadable, of the wrong kind, or would be overwritten."""


def new_key(private_path: Path | str, force: bool = False) -> Path:
    """Write a new Ed25519 private key (PEM, mode 0600) and its public key beside it (.pub).

    Returns the .pub path.  Raises KeyFileError if either file exists and ``force`` is False,
    or if the folder is not writable."""
    private_path = Path(private_path)
    pub = private_path.with_suffix(".pub")
    existing = [str(p) for p in (private_path, pub) if p.exists()]
    if existing and not force:
        raise KeyFileError(f"{' and '.join(existing)} already exist(s); refusing to overwrite a key "
                           "(versions signed with it would no longer verify): pass --force to replace it")
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())  # fmt: skip
    try:
        fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
        private_path.chmod(0o600)
        pub.write_bytes(public_pem(key.public_key()))
    except OSError as exc:
        raise KeyFileError(f"cannot write key {private_path}: {exc.strerror}") from None
    return pub


def public_pem(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def read_bytes(path: Path | str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise KeyFileError(f"cannot read {what} {path}: {exc.strerror}") from None


def load_private(path: Path | str) -> Ed25519PrivateKey:
    """The Ed25519 private key in ``path``; KeyFileError if missing, a public key, or another kind."""
    data = read_bytes(path, "private key")
    if b"PUBLIC KEY" in data:
        raise KeyFileError(f"{path} is a public key; --key needs the private key (the file without .pub)")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise KeyFileError(f"{path} is not a PEM private key ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"{path} is not an Ed25519 private key")
    return key


def load_public(path_or_pem: Path | str | bytes) -> Ed25519PublicKey:
    """The Ed25519 public key in a PEM file (or PEM bytes); KeyFileError otherwise."""
    pem = path_or_pem if isinstance(path_or_pem, bytes) else read_bytes(path_or_pem, "public key")
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError):
        raise KeyFileError(f"{'the given key' if isinstance(path_or_pem, bytes) else path_or_pem} "
                           "is not a PEM public key") from None  # fmt: skip
    if not isinstance(key, Ed25519PublicKey):
        raise KeyFileError("the registry key is not an Ed25519 public key")
    return key


def tuf_key(key: Ed25519PublicKey) -> SSlibKey:
    """The key as TUF names it (keyid = sha256 of its canonical JSON form)."""
    return SSlibKey.from_crypto(key)


def signer(key: Ed25519PrivateKey) -> CryptoSigner:
    return CryptoSigner(key)


def load_signer(path: Path | str) -> CryptoSigner:
    return signer(load_private(path))
