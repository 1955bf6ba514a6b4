"""Chunked blob transfer over MQTT: a server that answers chunk requests from a blob
getter, and a fetcher with a bounded in-flight window, per-chunk sha256, duplicate
and out-of-order tolerance, retries, and resume from the chunks already held.

Chunk size versus the broker's maximum packet size: the fetcher asks for chunks that fit its own
connection's limit; the server answers a request whose chunks would not fit its connection's
limit with an error that carries the largest chunk size that does (max_chunk), and the fetcher
asks again with it.  Nothing oversized is ever queued (it would make the server's client flap)."""

from __future__ import annotations

import hashlib
import logging
import threading
import time
import uuid
from collections.abc import Callable

from pydantic import ValidationError

from edge_maas.errors import EdgeMaasError, IntegrityError, TransportError
from edge_maas.transport import topics
from edge_maas.transport.client import MqttClient, PacketTooLargeError
from edge_maas.transport.messages import ChunkHeader, ChunkRequest, decode, encode

log = logging.getLogger(__name__)

DEFAULT_CHUNK = 64 * 1024
MIN_CHUNK = 1024  # ChunkRequest's lower bound
MAX_HELD = 8  # partial blobs kept across failed fetches (to resume); a worker is asked for hashes by requests
HEADER_ROOM = 512  # bytes of a chunk's frame besides its body (length prefix + ChunkHeader JSON, ~330 at most)


def chunk_that_fits(room: int | None) -> int | None:
    """The largest chunk size (a multiple of 1 KiB) whose frame fits `room` payload bytes; None: no limit known."""
    if room is None:
        return None
    return (room - HEADER_ROOM) // 1024 * 1024


class BlobServer:
    """Serves chunks of blobs that get_blob(sha256) returns (None: unknown blob)."""

    def __init__(self, client: MqttClient, get_blob: Callable[[str], bytes | None], cache_bytes: int = 64 << 20):
        self.client = client
        self.get_blob = get_blob
        self.rejected = 0
        self.requests = 0  # well-formed chunk requests (each asks for a window of chunks of one blob)
        self.served_chunks = 0
        self.served_bytes = 0  # chunk bodies published
        self.refused = 0  # requests answered with an error (unknown or corrupt blob, chunks too large)
        self.too_large = 0  # requests answered "chunks too large for the broker"
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
        self.requests += 1
        try:
            blob = self._recent.get(req.sha256) or self.get_blob(req.sha256)
            problem = None if blob is not None else f"unknown blob {req.sha256[:12]}"
            if blob is not None:
                self._remember(req.sha256, blob)
        except IntegrityError as exc:
            log.error("refusing to serve: %s", exc)
            blob, problem = None, str(exc)
        if blob is None:
            self._refuse(req, problem)
            return
        fit = chunk_that_fits(self.client.max_payload(req.reply_to))
        if fit is not None and min(req.chunk_size, len(blob)) > fit:
            self._too_large(req, fit)
            return
        n = -(-len(blob) // req.chunk_size)
        for i in range(req.first, min(req.first + req.count, n)):
            body = blob[i * req.chunk_size : (i + 1) * req.chunk_size]
            head = ChunkHeader(corr=req.corr, sha256=req.sha256, index=i, total_size=len(blob),
                               chunk_sha256=hashlib.sha256(body).hexdigest())  # fmt: skip
            try:
                self.client.publish(req.reply_to, encode(head, body))
            except PacketTooLargeError:  # the limit became known (or lower) since the check above
                self._too_large(req, chunk_that_fits(self.client.max_payload(req.reply_to)) or MIN_CHUNK)
                return
            self.served_chunks += 1
            self.served_bytes += len(body)

    def _too_large(self, req: ChunkRequest, fit: int) -> None:
        self.too_large += 1
        problem = f"chunks of {req.chunk_size} bytes do not fit {self.client.limit_text()}"
        log.warning("chunk request for %s: %s; answering max_chunk %d", req.sha256[:12], problem, fit)
        self._refuse(req, problem, fit if fit >= MIN_CHUNK else None)

    def _refuse(self, req: ChunkRequest, problem: str | None, max_chunk: int | None = None) -> None:
        self.refused += 1
        err = ChunkHeader(corr=req.corr, sha256=req.sha256, index=req.first, total_size=0, chunk_sha256="0" * 64,
                          error=problem, max_chunk=max_chunk)  # fmt: skip
        try:
            self.client.publish(req.reply_to, encode(err))
        except PacketTooLargeError:  # only a reply_to of ~the whole limit gets here: nothing to tell
            pass

    def _remember(self, sha: str, blob: bytes) -> None:
        self._recent.pop(sha, None)
        self._recent[sha] = blob  # most recent last
        while sum(map(len, self._recent.values())) > self._cache_bytes and len(self._recent) > 1:
            self._recent.pop(next(iter(self._recent)))


class BlobFetcher:
    """fetch(sha256, size) -> verified bytes.  `held` chunks survive a failed fetch so the
    next call resumes from the first missing chunk instead of starting over.

    chunk_size (bytes): the preferred size; default the client's chunk_size (from the profile)
    or 64 KiB.  Each fetch uses at most what fits the client's known maximum packet size, and
    a smaller size when the server answers that its broker cannot carry the asked one."""

    def __init__(self, client: MqttClient, chunk_size: int | None = None, window: int = 16,
                 chunk_timeout: float = 5.0, max_retries: int = 5):  # fmt: skip
        self.client = client
        self.chunk_size = chunk_size or getattr(client, "chunk_size", None) or DEFAULT_CHUNK
        self.window = window
        self.chunk_timeout = chunk_timeout
        self.max_retries = max_retries
        self.held: dict[str, dict[int, bytes]] = {}
        self.held_chunk: dict[str, int] = {}  # the chunk size that `held`'s indices of a blob refer to
        self.discarded = 0
        self.fetched_blobs = 0  # completed, verified fetches: what crossed the network, for reports and tests
        self.fetched_bytes = 0
        self.last_chunk_size: int | None = None  # of the last fetch (after any reduction)
        self._cv = threading.Condition()
        self._corr = ""
        self._sha = ""
        self._chunk = self.chunk_size
        self._error: str | None = None
        self._max_chunk: int | None = None
        self._corrs: set[str] = set()  # requests of the current blob and chunk size
        self._reply = topics.blob_reply(client.client_id)
        client.subscribe(self._reply, self._on_chunk)

    def chunk_for(self, wanted: int) -> int:
        """wanted, or the largest chunk size that fits this client's known maximum packet size."""
        fit = chunk_that_fits(self.client.max_payload(self._reply))
        if fit is None or fit >= wanted:
            return wanted
        if fit < MIN_CHUNK:
            raise TransportError(f"{self.client.limit_text()} cannot carry even {MIN_CHUNK}-byte chunks")
        return fit

    def fetch(self, sha256: str, size: int, progress: Callable[[int, int], None] | None = None,
              chunk_size: int | None = None) -> bytes:  # fmt: skip
        """The verified blob; chunk_size overrides the fetcher's for this fetch.  TransportError when
        the registry refuses or stops answering, IntegrityError when the bytes do not match."""
        chunk = self.chunk_for(max(MIN_CHUNK, chunk_size or self.chunk_size))
        try:
            while True:
                try:
                    return self._fetch(sha256, size, chunk, progress)
                except _SmallerChunks as exc:
                    if exc.max_chunk >= chunk:
                        raise TransportError(f"registry refused blob {sha256[:12]}: {exc.problem}") from None
                    log.info("blob %s: %s; fetching with %d-byte chunks", sha256[:12], exc.problem, exc.max_chunk)
                    chunk = exc.max_chunk
        except EdgeMaasError:
            with self._cv:  # keep partial blobs to resume, but no empty entry per hash that was asked for
                if not self.held.get(sha256):
                    self.held.pop(sha256, None)
                    self.held_chunk.pop(sha256, None)
                while len(self.held) > MAX_HELD:  # bounded: the oldest partial blobs go first
                    old = next(iter(self.held))
                    self.held.pop(old)
                    self.held_chunk.pop(old, None)
            raise

    def _fetch(self, sha256: str, size: int, chunk: int, progress) -> bytes:
        n = max(1, -(-size // chunk))
        with self._cv:
            if self.held_chunk.get(sha256) != chunk or self._sha != sha256:
                self._corrs = set()  # late chunks of earlier requests count only if they have this size
            if self.held_chunk.get(sha256) != chunk:  # indices of another chunk size: useless now
                self.held.pop(sha256, None)
            self.held_chunk[sha256] = chunk
            got = self.held.setdefault(sha256, {})
            self._corr, self._sha, self._chunk = uuid.uuid4().hex, sha256, chunk
            self._error, self._max_chunk = None, None
            self._corrs.add(self._corr)
        self.last_chunk_size = chunk
        retries = 0
        t0 = time.monotonic()
        while len(got) < n:
            missing = [i for i in range(n) if i not in got]
            first, count = missing[0], 1
            while count < self.window and first + count < n and first + count not in got:
                count += 1
            before = len(got)
            self._request(sha256, first, count, chunk)
            deadline = time.monotonic() + self.chunk_timeout
            with self._cv:
                while self._error is None and any(i not in got for i in range(first, first + count)):
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._cv.wait(left)
                if self._error is not None:
                    if self._max_chunk is not None:
                        raise _SmallerChunks(self._error, self._max_chunk)
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
        del self.held[sha256]
        self.held_chunk.pop(sha256, None)
        if len(data) != size or hashlib.sha256(data).hexdigest() != sha256:
            raise IntegrityError(f"blob {sha256[:12]}: reassembled {len(data)} bytes do not match the announced sha256")
        self.fetched_blobs, self.fetched_bytes = self.fetched_blobs + 1, self.fetched_bytes + size
        log.info("blob %s: %d bytes in %d chunks, %.1f ms", sha256[:12], size, n, (time.monotonic() - t0) * 1e3)
        return data

    def _request(self, sha256: str, first: int, count: int, chunk: int) -> None:
        req = ChunkRequest(corr=self._corr, reply_to=self._reply, sha256=sha256, chunk_size=chunk,
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
            if head.sha256 != self._sha or head.corr not in self._corrs:  # a stale answer for an earlier fetch
                return
            if head.error is not None:
                if head.corr == self._corr:  # not an error meant for an earlier chunk size
                    self._error, self._max_chunk = head.error, head.max_chunk
            elif hashlib.sha256(body).hexdigest() != head.chunk_sha256 or len(body) > self._chunk:
                self.discarded += 1
                log.warning("blob %s chunk %d failed its checksum; discarded", head.sha256[:12], head.index)
            else:
                self.held.setdefault(head.sha256, {}).setdefault(head.index, body)  # duplicates: first wins
            self._cv.notify_all()


class _SmallerChunks(Exception):
    """The server's broker cannot carry the asked chunk size; max_chunk does fit."""

    def __init__(self, problem: str, max_chunk: int):
        super().__init__(problem)
        self.problem = problem
        self.max_chunk = max_chunk
