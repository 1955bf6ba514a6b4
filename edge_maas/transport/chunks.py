"""Chunked blob transfer over MQTT: a server that answers chunk requests from a blob
getter, and a fetcher with a bounded in-flight window, per-chunk sha256, duplicate
and out-of-order tolerance, retries, and resume from the chunks already held."""

from __future__ import annotations

import hashlib
import logging
import threading
import time
import uuid
from collections.abc import Callable

from pydantic import ValidationError

from edge_maas.errors import IntegrityError, TransportError
from edge_maas.transport import topics
from edge_maas.transport.client import MqttClient
from edge_maas.transport.messages import ChunkHeader, ChunkRequest, decode, encode

log = logging.getLogger(__name__)

DEFAULT_CHUNK = 64 * 1024


class BlobServer:
    """Serves chunks of blobs that get_blob(sha256) returns (None: unknown blob)."""

    def __init__(self, client: MqttClient, get_blob: Callable[[str], bytes | None], cache_bytes: int = 64 << 20):
        self.client = client
        self.get_blob = get_blob
        self.rejected = 0
        self.served_chunks = 0
        # a transfer asks for a blob many times (one request per window): keep recent blobs in
        # memory, already verified, instead of re-reading and re-hashing them per request
        self._recent: dict[str, bytes] = {}
        self._cache_bytes = cache_bytes
        client.subscribe(topics.blob_request(), self._on_request)

    def _on_request(self, topic: str, payload: bytes) -> None:
        try:
            req = ChunkRequest.model_validate_json(payload)
        except ValidationError as exc:
            self.rejected += 1
            log.warning("dropped a malformed chunk request (%d bytes): %s", len(payload), str(exc).splitlines()[0])
            return
        try:
            blob = self._recent.get(req.sha256) or self.get_blob(req.sha256)
            problem = None if blob is not None else f"unknown blob {req.sha256[:12]}"
            if blob is not None:
                self._remember(req.sha256, blob)
        except IntegrityError as exc:
            log.error("refusing to serve: %s", exc)
            blob, problem = None, str(exc)
        if blob is None:
            err = ChunkHeader(corr=req.corr, sha256=req.sha256, index=req.first, total_size=0, chunk_sha256="0" * 64,
                              error=problem)  # fmt: skip
            self.client.publish(req.reply_to, encode(err))
            return
        n = -(-len(blob) // req.chunk_size)
        for i in range(req.first, min(req.first + req.count, n)):
            body = blob[i * req.chunk_size : (i + 1) * req.chunk_size]
            head = ChunkHeader(corr=req.corr, sha256=req.sha256, index=i, total_size=len(blob),
                               chunk_sha256=hashlib.sha256(body).hexdigest())  # fmt: skip
            self.client.publish(req.reply_to, encode(head, body))
            self.served_chunks += 1


    def _remember(self, sha: str, blob: bytes) -> None:
        self._recent.pop(sha, None)
        self._recent[sha] = blob  # most recent last
        while sum(map(len, self._recent.values())) > self._cache_bytes and len(self._recent) > 1:
            self._recent.pop(next(iter(self._recent)))


class BlobFetcher:
    """fetch(sha256, size) -> verified bytes.  `held` chunks survive a failed fetch so the
    next call resumes from the first missing chunk instead of starting over."""

    def __init__(self, client: MqttClient, chunk_size: int = DEFAULT_CHUNK, window: int = 16,
                 chunk_timeout: float = 5.0, max_retries: int = 5):  # fmt: skip
        self.client = client
        self.chunk_size = chunk_size
        self.window = window
        self.chunk_timeout = chunk_timeout
        self.max_retries = max_retries
        self.held: dict[str, dict[int, bytes]] = {}
        self.discarded = 0
        self._cv = threading.Condition()
        self._corr = ""
        self._sha = ""
        self._error: str | None = None
        self._reply = topics.blob_reply(client.client_id)
        client.subscribe(self._reply, self._on_chunk)

    def fetch(self, sha256: str, size: int, progress: Callable[[int, int], None] | None = None) -> bytes:
        n = max(1, -(-size // self.chunk_size))
        got = self.held.setdefault(sha256, {})
        with self._cv:
            self._corr, self._sha, self._error = uuid.uuid4().hex, sha256, None
        retries = 0
        t0 = time.monotonic()
        while len(got) < n:
            missing = [i for i in range(n) if i not in got]
            first, count = missing[0], 1
            while count < self.window and first + count < n and first + count not in got:
                count += 1
            before = len(got)
            self._request(sha256, first, count)
            deadline = time.monotonic() + self.chunk_timeout
            with self._cv:
                while self._error is None and any(i not in got for i in range(first, first + count)):
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._cv.wait(left)
                if self._error is not None:
                    raise TransportError(f"registry refused blob {sha256[:12]}: {self._error}")
            if len(got) == before:
                retries += 1
                if retries > self.max_retries:
                    raise TransportError(
                        f"blob {sha256[:12]}: no chunk arrived in {self.max_retries} tries of "
                        f"{self.chunk_timeout:.0f} s; {len(got)}/{n} chunks held, a later fetch resumes"
                    )
                log.warning("blob %s: chunks %d..%d timed out, retrying (%d)", sha256[:12], first, first + count - 1, retries)
            else:
                retries = 0
                step = max(1, n // 10)  # long transfers log about every 10 %
                if n >= 16 and len(got) // step != before // step:
                    log.info("blob %s: %d/%d chunks (%d%%)", sha256[:12], len(got), n, 100 * len(got) // n)
            if progress:
                progress(len(got), n)
        data = b"".join(got[i] for i in range(n))
        if len(data) != size or hashlib.sha256(data).hexdigest() != sha256:
            del self.held[sha256]
            raise IntegrityError(f"blob {sha256[:12]}: reassembled {len(data)} bytes do not match the announced sha256")
        del self.held[sha256]
        log.info("blob %s: %d bytes in %d chunks, %.1f ms", sha256[:12], size, n, (time.monotonic() - t0) * 1e3)
        return data

    def _request(self, sha256: str, first: int, count: int) -> None:
        req = ChunkRequest(corr=self._corr, reply_to=self._reply, sha256=sha256, chunk_size=self.chunk_size,
                           first=first, count=count)  # fmt: skip
        self.client.publish(topics.blob_request(), req.model_dump_json().encode())

    def _on_chunk(self, topic: str, payload: bytes) -> None:
        try:
            head, body = decode(payload, ChunkHeader)
        except TransportError as exc:
            self.discarded += 1
            log.warning("discarded a malformed chunk: %s", exc)
            return
        with self._cv:
            if head.sha256 != self._sha:  # a stale answer for an earlier fetch
                return
            if head.error is not None:
                self._error = head.error
            elif hashlib.sha256(body).hexdigest() != head.chunk_sha256 or len(body) > self.chunk_size:
                self.discarded += 1
                log.warning("blob %s chunk %d failed its checksum; discarded", head.sha256[:12], head.index)
            else:
                self.held.setdefault(head.sha256, {}).setdefault(head.index, body)  # duplicates: first wins
            self._cv.notify_all()
