"""The registry's blobs in an S3-compatible bucket (AWS S3, MinIO, Ceph RGW, GCS's XML API, ...): the same
content-addressed layout as the disk store, <prefix>/<sha[:2]>/<sha>, verified on every read.

Selected with `edge-maas registry ... --blob-store s3://BUCKET[/PREFIX]` (needs `pip install 'edge-maas[s3]'`).
Endpoint, region and credentials come from boto3's usual sources: AWS_ENDPOINT_URL_S3 (or AWS_ENDPOINT_URL) for a
non-AWS server, AWS_DEFAULT_REGION, AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, a profile, or a pod's IAM role.
Only what the registry needs is here (put/get/has/total_bytes): eviction and file paths belong to a device's disk
cache (BlobStore), never to the registry's store."""

from __future__ import annotations

import hashlib
import logging
from urllib.parse import urlsplit

from edge_maas.errors import IntegrityError
from edge_maas.registry.catalog import RegistryError

log = logging.getLogger(__name__)


class S3BlobStore:
    """``url``: s3://BUCKET or s3://BUCKET/PREFIX.  RegistryError when boto3 is missing, the URL is malformed, or the
    bucket cannot be reached (no such bucket, no access, endpoint down) - checked here, before anything is stored."""

    def __init__(self, url: str, *, endpoint_url: str | None = None):
        parts = urlsplit(url)
        if parts.scheme != "s3" or not parts.netloc or parts.query or parts.fragment:
            raise RegistryError(f"blob store {url!r}: expected s3://BUCKET or s3://BUCKET/PREFIX")
        try:
            import boto3
            from botocore.config import Config
        except ImportError:
            raise RegistryError("an s3:// blob store needs boto3: pip install 'edge-maas[s3]'") from None
        self.url = url
        self.bucket = parts.netloc
        self.prefix = parts.path.strip("/")
        # bounded: a registry command must fail in seconds when the store is down, not hang in retries
        config = Config(connect_timeout=5, read_timeout=60, retries={"mode": "standard", "max_attempts": 3})
        self.s3 = boto3.client("s3", endpoint_url=endpoint_url, config=config)
        self._call("reach the bucket", self.s3.head_bucket, Bucket=self.bucket)

    def key(self, sha256: str) -> str:
        """The object key of a blob: the disk store's relative path under the prefix."""
        return f"{self.prefix}/{sha256[:2]}/{sha256}" if self.prefix else f"{sha256[:2]}/{sha256}"

    def has(self, sha256: str) -> bool:
        return self._head(sha256) is not None

    def put(self, data: bytes) -> str:
        """Store ``data`` under its sha256 (nothing is written when it is already there); returns the sha256."""
        sha = hashlib.sha256(data).hexdigest()
        if not self.has(sha):
            # S3 writes an object whole or not at all: no torn blob for a reader to see
            self._call(f"store blob {sha[:12]}", self.s3.put_object, Bucket=self.bucket, Key=self.key(sha), Body=data)
        return sha

    def get(self, sha256: str) -> bytes | None:
        """The blob, or None if absent.  An object that does not match its name (changed in the bucket, a bad
        copy) is deleted, so that the next publish stores it again, and IntegrityError is raised for this call."""
        from botocore.exceptions import ClientError

        try:
            data = self.s3.get_object(Bucket=self.bucket, Key=self.key(sha256))["Body"].read()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise self._error(f"read blob {sha256[:12]}", exc) from None
        except Exception as exc:  # noqa: BLE001 - endpoint down, timeouts: botocore's many classes, one message
            raise self._error(f"read blob {sha256[:12]}", exc) from None
        if hashlib.sha256(data).hexdigest() != sha256:
            self._call(f"discard corrupt blob {sha256[:12]}", self.s3.delete_object, Bucket=self.bucket,
                       Key=self.key(sha256))  # fmt: skip
            log.error("blob store: object %s was corrupt (%d bytes); discarded", self.key(sha256), len(data))
            raise IntegrityError(f"blob {sha256[:12]} in {self.url} was corrupt; discarded")
        return data

    def total_bytes(self) -> int:
        """Bytes of every object under the prefix."""
        pages = self.s3.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=f"{self.prefix}/" if self.prefix else ""
        )
        try:
            return sum(o["Size"] for page in pages for o in page.get("Contents", ()))
        except Exception as exc:  # noqa: BLE001
            raise self._error("list blobs", exc) from None

    # -- errors ---------------------------------------------------------------------------------
    def _head(self, sha256: str) -> dict | None:
        from botocore.exceptions import ClientError

        try:
            return self.s3.head_object(Bucket=self.bucket, Key=self.key(sha256))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise self._error(f"look up blob {sha256[:12]}", exc) from None
        except Exception as exc:  # noqa: BLE001
            raise self._error(f"look up blob {sha256[:12]}", exc) from None

    def _call(self, what: str, fn, **kw):
        try:
            return fn(**kw)
        except Exception as exc:  # noqa: BLE001
            raise self._error(what, exc) from None

    def _error(self, what: str, exc: Exception) -> RegistryError:
        from botocore.exceptions import ClientError

        if isinstance(exc, ClientError):
            err = exc.response.get("Error", {})
            detail = f"{err.get('Code', '?')} {err.get('Message') or ''}".strip()
            if err.get("Code") in ("404", "NoSuchBucket") and what == "reach the bucket":
                detail = "no such bucket"
        else:
            detail = str(exc) or type(exc).__name__
        return RegistryError(f"blob store {self.url}: cannot {what}: {detail}")
