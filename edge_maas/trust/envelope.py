"""Signatures over canonical bytes, in TUF's form: {keyid, sig} (hex), any number of them, so a
role may need a threshold of keys."""

from __future__ import annotations

import json
from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict, Field
from securesystemslib.signer import Signature as SslibSignature
from securesystemslib.signer import Signer


class Signature(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    keyid: str = Field(pattern=r"^[0-9a-f]{64}$")
    sig: str = Field(pattern=r"^[0-9a-f]{2,1024}$")


def canonical_json(body) -> bytes:
    """The bytes a signature covers: JSON with sorted keys and no spaces (as TUF's canonical
    JSON for the types used here: strings, integers, lists, objects)."""
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def sign(payload: bytes, signers: Iterable[Signer]) -> tuple[Signature, ...]:
    """One signature per signer over ``payload`` (Ed25519 over the bytes as they are)."""
    out = []
    for s in signers:
        ss = s.sign(payload)
        out.append(Signature(keyid=ss.keyid, sig=ss.signature))
    return tuple(out)


def as_tuf(signatures: Iterable[Signature]) -> dict[str, SslibSignature]:
    """keyid -> securesystemslib Signature; a repeated keyid counts once (TUF's rule)."""
    return {s.keyid: SslibSignature(s.keyid, s.sig) for s in signatures}
