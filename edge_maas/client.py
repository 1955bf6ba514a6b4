"""The Python SDK: ``edge_maas.Client`` (blocking) and ``edge_maas.AsyncClient`` (asyncio) for applications and
operators.  Reference and examples: docs/sdk.md.

One client is one MQTT 5 connection with a unique client id (``NAME-HOST-RANDOM``: two processes with one fixed id
would take each other's session over in a loop).  It asks devices for inferences (request/response over MQTT, the
same bytes as ``edge-maas infer``), follows the fleet's retained reports (devices' ReportedState, workers'
WorkerStatus) for ``status()`` and ``watch()``, and, given the registry folder and its private release key, signs
desired states for ``deploy()`` and ``rollback()`` as ``edge-maas registry deploy|rollback`` do.

Errors are EdgeMaasError subclasses from edge_maas.errors (re-exported here): RequestTimeoutError,
DeviceUnknownError, DeviceOfflineError, DeviceError, UnknownTaskError, PayloadTooLargeError, TensorMismatchError,
TransportError (the broker), RegistryError (deploy, rollback)."""

from __future__ import annotations

import asyncio
import logging
import queue
import re
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Self

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

from edge_maas.errors import (
    DeviceError,
    DeviceOfflineError,
    DeviceUnknownError,
    EdgeMaasError,
    PayloadTooLargeError,
    RequestTimeoutError,
    TensorMismatchError,
    TransportError,
    UnknownTaskError,
)
from edge_maas.registry.catalog import RegistryError
from edge_maas.transport import topics
from edge_maas.transport.messages import DesiredState, ReportedState, WorkerStatus

__all__ = [
    "AsyncClient", "AsyncWatch", "Client", "DeviceError", "DeviceOfflineError", "DeviceUnknownError", "EdgeMaasError",
    "FleetStatus", "Outputs", "PayloadTooLargeError", "RegistryError", "RequestTimeoutError", "TensorMismatchError",
    "TransportError", "UnknownTaskError", "Watch", "unique_client_id",
]  # fmt: skip

log = logging.getLogger(__name__)

DEFAULT_BROKER = "mqtt://127.0.0.1:1883"
DEFAULT_DESIRED_TTL_S = 7 * 24 * 3600.0
SYNC_TIMEOUT_S = 2.0  # the barrier after a subscription (see Client._sync); an ACL that denies it costs this once
_DTYPES = ("int8", "uint8", "int16", "int32", "float32")  # what the wire carries (messages.TensorMeta)
_CLOSED = None  # what listeners get when the client closes: watches end


def unique_client_id(name: str) -> str:
    """``NAME-HOST-RANDOM`` (8 hex digits): unique per process and call, readable in the broker's log."""
    host = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:24] or "host"
    return f"{name}-{host}-{secrets.token_hex(4)}"


class FleetStatus(BaseModel):
    """What the fleet reported (retained), as ``Client.status()`` saw it: every device's ReportedState
    (``status`` 'online' or 'offline', ``model``/``version`` running, ``healthy``, ``last_error``, offload
    decision, ...; edge_maas/transport/messages.py) and every worker's WorkerStatus, keyed by id."""

    model_config = ConfigDict(frozen=True)

    devices: dict[str, ReportedState]
    workers: dict[str, WorkerStatus]


class Outputs(dict):
    """A device's answer: ``{name: numpy array}`` (dtype and shape as the model's outputs; a request naming tasks
    keys them ``TASK/TENSOR``), plus ``version``, the model version that answered, and ``device``."""

    def __init__(self, arrays: Mapping[str, np.ndarray], *, version: str | None, device: str):
        super().__init__(arrays)
        self.version = version
        self.device = device


class Client:
    """A blocking client; thread-safe (calls from several threads share one connection).  Use it as a context
    manager, or call close().  Connecting raises TransportError when the broker cannot be reached within
    ``connect_timeout`` seconds (or refuses the credentials)."""

    def __init__(self, broker: str = DEFAULT_BROKER, *, name: str = "sdk", client_id: str | None = None,
                 registry_root: Path | str | None = None, signing_key: Path | str | None = None,
                 blob_store: str | None = None, username: str | None = None, password: str | None = None,
                 ca_file: Path | str | None = None, cert_file: Path | str | None = None,
                 key_file: Path | str | None = None, connect_timeout: float = 10.0):  # fmt: skip
        """``broker``: mqtt://HOST[:PORT] or mqtts://HOST[:PORT].  ``name``: the prefix of the generated client id
        (``client_id`` sets the whole id instead: keep it unique).  ``registry_root``, ``signing_key``,
        ``blob_store``: the registry folder, its private release key and its blob store (as ``edge-maas registry
        --root --key --blob-store``), needed by deploy() and rollback() only.  ``username``, ``password``, and the
        TLS files ``ca_file``, ``cert_file``, ``key_file``: as the broker asks (docs/protocol.md)."""
        import paho.mqtt.client as mqtt

        from edge_maas.transport.client import MqttClient
        from edge_maas.transport.infer_client import InferClient

        self.broker = broker
        self.registry_root = Path(registry_root) if registry_root is not None else None
        self.signing_key = Path(signing_key) if signing_key is not None else None
        self.blob_store = blob_store
        self._lock = threading.Lock()
        self._devices: dict[str, ReportedState] = {}
        self._workers: dict[str, WorkerStatus] = {}
        self._listeners: list[tuple[Callable[[ReportedState | None], None], frozenset[str] | None]] = []
        self._tracked: set[str] = set()  # topic filters subscribed (and synced)
        self._track_lock = threading.Lock()
        self._sync_waiters: dict[bytes, threading.Event] = {}
        self._closed = False
        self._mqtt = MqttClient(broker, client_id or unique_client_id(name), username=username, password=password,
                                ca_file=_str(ca_file), cert_file=_str(cert_file), key_file=_str(key_file),
                                protocol=mqtt.MQTTv5).start(connect_timeout)  # fmt: skip
        try:
            self._mqtt.subscribe(self._sync_topic, self._on_sync)
            self._infer = InferClient(self._mqtt)
        except BaseException:
            self._mqtt.stop()
            raise

    # -- lifecycle -------------------------------------------------------------------------
    @property
    def client_id(self) -> str:
        """This connection's MQTT client id."""
        return self._mqtt.client_id

    def close(self) -> None:
        """Disconnect; open watches end.  Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._mqtt.stop()
        with self._lock:
            listeners = [fn for fn, _ in self._listeners]
        for fn in listeners:
            fn(_CLOSED)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- applications ----------------------------------------------------------------------
    def infer(self, device: str, inputs: Mapping[str, np.ndarray] | np.ndarray, tasks: Iterable[str] | str = (),
              timeout: float = 10.0) -> Outputs:  # fmt: skip
        """Run one inference on ``device`` and return its outputs, byte for byte what ``edge-maas infer`` gets.

        ``inputs``: ``{input name: array}`` with the model's dtypes (int8, uint8, int16, int32 or float32) and shapes,
        e.g. ``{"input_0": np.int8 array of shape (1, 64)}``; a bare array is named ``input_0`` (what ``compose``
        calls a service's input).  ``tasks``: the service's tasks to answer in this one request (a name, or
        several; outputs then keyed ``TASK/TENSOR``); empty for a one-task service or a split model.  ``timeout``:
        seconds to wait for the reply.

        Returns Outputs, a dict ``{output name: array}`` with ``.version`` (the version that answered).
        Raises DeviceOfflineError at once when the device's retained report says it is offline;
        DeviceUnknownError after ``timeout`` when no device of that id ever reported to this broker;
        RequestTimeoutError when a known device did not answer in time; UnknownTaskError; PayloadTooLargeError
        (the request or the reply exceeds the broker's maximum packet size); TensorMismatchError (a dtype the wire
        cannot carry); DeviceError for any other error the device answered (no model yet, inputs it refused)."""
        arrays = {"input_0": inputs} if isinstance(inputs, np.ndarray) else dict(inputs)
        for k, a in arrays.items():
            if np.asarray(a).dtype.name not in _DTYPES:
                raise TensorMismatchError(f"input {k!r} is {np.asarray(a).dtype.name}; the wire carries "
                                          f"{', '.join(_DTYPES)}: convert it to the model's input dtype")  # fmt: skip
        names = (tasks,) if isinstance(tasks, str) else tuple(tasks)
        self._track(topics.reported(device))
        self._refuse_offline(device)
        try:
            version, outputs = self._infer.infer(device, arrays, timeout, names)
        except RequestTimeoutError as exc:
            with self._lock:
                known = device in self._devices
            self._refuse_offline(device)  # it went away while we waited
            if not known:
                raise DeviceUnknownError(f"{exc}; no device {device!r} has ever reported to {self.broker} "
                                         "(check its id: `status()` lists the fleet)") from None  # fmt: skip
            raise
        except ValidationError as exc:  # InferRequest refused a name (e.g. a task with a space)
            raise TensorMismatchError(f"invalid request: {str(exc).splitlines()[0]}") from None
        return Outputs(outputs, version=version, device=device)

    # -- operators -------------------------------------------------------------------------
    def deploy(self, model: str, version: str, devices: Iterable[str] | str, *,
               ttl: float | None = None) -> list[DesiredState]:  # fmt: skip
        """Set ``devices``' desired version to ``model@version`` (published with ``edge-maas registry publish``):
        a signed desired state per device, retained on the broker, valid for ``ttl`` seconds (default 7 days;
        ``edge-maas registry serve`` re-signs it before it expires).  Returns once the broker has it; the devices
        then fetch, verify and swap: follow them with watch() or wait_for().  Returns the signed DesiredState of
        each device, in order (``seq`` orders a device's desired states).  Needs ``registry_root`` and
        ``signing_key``; RegistryError for an unknown version or a missing key, TrustError for a key the root of
        trust does not name."""
        ids = [devices] if isinstance(devices, str) else list(devices)
        if not ids:
            raise RegistryError("deploy: name at least one device")
        return self._registry(ttl).deploy(self._mqtt, model, version, ids)

    def rollback(self, devices: Iterable[str] | str, *, ttl: float | None = None) -> dict[str, tuple[str, str]]:
        """Return each device to the version deployed before its current one (a signed rollback: the only desired
        state a device accepts for an older release).  Returns ``{device: (model, version)}`` rolled back to.
        Needs ``registry_root`` and ``signing_key``; RegistryError when a device has no earlier deployment."""
        ids = [devices] if isinstance(devices, str) else list(devices)
        reg = self._registry(ttl)
        return {d: reg.rollback(self._mqtt, d) for d in ids}

    def status(self, wait: float = 0.0) -> FleetStatus:
        """Every device's and worker's latest retained report.  The first call subscribes to the fleet's reports
        and returns once the broker has delivered the retained ones (a round trip); ``wait``: seconds to keep
        collecting after that (reports still arriving from a slow broker)."""
        self._track(topics.reported("+"))
        self._track(topics.worker_status("+"))
        if wait > 0:
            time.sleep(wait)
        with self._lock:
            return FleetStatus(devices=dict(self._devices), workers=dict(self._workers))

    def watch(self, devices: Iterable[str] | str | None = None, *, timeout: float | None = None,
              initial: bool = True) -> Watch:  # fmt: skip
        """An iterator of ReportedState as devices report changes (a report equal to the device's last one is
        skipped).  ``devices``: only these (default: the whole fleet).  ``initial``: first yield each device's
        current report.  ``timeout``: seconds after which the iteration stops (None: until close() of the watch or
        of the client).  Registered at once: nothing reported after this call is missed.
        Example: ``for s in c.watch("cam-1", timeout=60): if s.version == "2" and s.healthy: break``."""
        w = Watch(timeout)
        self._listen(w._put, devices, initial, w)
        return w

    def wait_for(self, device: str, version: str | None = None, *, healthy: bool | None = True,
                 status: str | None = "online", timeout: float = 60.0) -> ReportedState:  # fmt: skip
        """Block until ``device`` reports ``version`` (any when None) with ``healthy`` and ``status`` (None: any);
        return that report.  RequestTimeoutError after ``timeout`` seconds, naming the last report seen."""
        last: ReportedState | None = None
        with self.watch(device, timeout=timeout) as w:
            for s in w:
                last = s
                if _matches(s, version, healthy, status):
                    return s
        want = f"{device} reporting {version or 'any version'}" + (f" {'healthy' if healthy else 'unhealthy'}"
                                                                    if healthy is not None else "")  # fmt: skip
        seen = _describe(last) if last else "no report at all"
        raise RequestTimeoutError(f"no {want} within {timeout:.0f} s; last seen: {seen}")

    # -- internals ------------------------------------------------------------------------
    @property
    def _sync_topic(self) -> str:
        return f"{topics.PREFIX}/client/{self.client_id}/sync"

    def _registry(self, ttl: float | None):
        from edge_maas.registry.service import Registry

        if self.registry_root is None or self.signing_key is None:
            raise RegistryError("deploy and rollback sign desired states: create the Client with registry_root= "
                                "(the registry folder) and signing_key= (its private release key)")  # fmt: skip
        # one per call: cheap (a sqlite handle, a key), and calls from several threads never share one
        return Registry(self.registry_root, self.signing_key, blob_store=self.blob_store,
                        desired_ttl_s=DEFAULT_DESIRED_TTL_S if ttl is None else ttl)  # fmt: skip

    def _refuse_offline(self, device: str) -> None:
        with self._lock:
            s = self._devices.get(device)
        if s is not None and s.status == "offline":
            running = f" (last ran {s.model}@{s.version})" if s.model else ""
            raise DeviceOfflineError(f"device {device} is offline{running}: its retained report says so")

    def _track(self, topic_filter: str) -> None:
        """Subscribe to a report filter once, then wait until the broker has delivered its retained reports."""
        fleet = topic_filter.rsplit("/", 2)[0] + "/+/" + topic_filter.rsplit("/", 1)[1]  # .../device/+/reported
        with self._track_lock:  # held through the sync: a second caller must not read a partial snapshot
            if topic_filter in self._tracked or fleet in self._tracked:
                return
            handler = self._on_worker if "/worker/" in topic_filter else self._on_reported
            self._mqtt.subscribe(topic_filter, handler)  # returns after the SUBACK
            self._sync()
            self._tracked.add(topic_filter)

    def _sync(self) -> None:
        """A barrier: Mosquitto queues a subscription's retained messages before anything published after its
        SUBACK, so once our own message comes back they are all here.  (MQTT orders messages per topic only; a
        broker that reorders, or an ACL that denies the sync topic, costs SYNC_TIMEOUT_S and a possibly partial
        first snapshot.)"""
        nonce = secrets.token_hex(8).encode()
        ev = threading.Event()
        with self._lock:
            self._sync_waiters[nonce] = ev
        try:
            self._mqtt.publish(self._sync_topic, nonce, qos=1)
            if not ev.wait(SYNC_TIMEOUT_S):
                log.warning("%s: no echo on %s within %.0f s", self.client_id, self._sync_topic, SYNC_TIMEOUT_S)
        finally:
            with self._lock:
                self._sync_waiters.pop(nonce, None)

    def _on_sync(self, topic: str, payload: bytes) -> None:
        with self._lock:
            ev = self._sync_waiters.get(payload)
        if ev is not None:
            ev.set()

    def _on_reported(self, topic: str, payload: bytes) -> None:
        if not payload:  # a retained report cleared by an operator: the device is forgotten
            with self._lock:
                self._devices.pop(topic.split("/")[-2], None)
            return
        try:
            s = ReportedState.model_validate_json(payload)
        except ValueError as exc:  # pydantic's ValidationError is a ValueError
            log.warning("%s: malformed report on %s: %s", self.client_id, topic, str(exc).splitlines()[0])
            return
        with self._lock:  # store and notify under one lock: a watch registering meanwhile sees it exactly once
            if self._devices.get(s.device_id) == s:
                return  # a device says it again after every reconnect: not a change
            self._devices[s.device_id] = s
            for fn, want in self._listeners:
                if want is None or s.device_id in want:
                    fn(s)

    def _on_worker(self, topic: str, payload: bytes) -> None:
        try:
            w = WorkerStatus.model_validate_json(payload)
        except ValueError:
            return
        with self._lock:
            self._workers[w.worker] = w

    def _listen(self, fn: Callable[[ReportedState | None], None], devices: Iterable[str] | str | None,
                initial: bool, handle) -> None:  # fmt: skip
        want = None if devices is None else frozenset([devices] if isinstance(devices, str) else devices)
        for f in [topics.reported("+")] if want is None else [topics.reported(d) for d in sorted(want)]:
            self._track(f)
        entry = (fn, want)
        with self._lock:
            if initial:
                for d, s in sorted(self._devices.items()):
                    if want is None or d in want:
                        fn(s)
            self._listeners.append(entry)
            if self._closed:
                fn(_CLOSED)

        def remove() -> None:
            with self._lock:
                if entry in self._listeners:
                    self._listeners.remove(entry)

        handle._remove = remove


class Watch:
    """A blocking iterator of ReportedState from Client.watch(); a context manager (close() stops it)."""

    def __init__(self, timeout: float | None):
        self._q: queue.Queue[ReportedState | None] = queue.Queue()
        self._deadline = None if timeout is None else time.monotonic() + timeout
        self._remove: Callable[[], None] = lambda: None
        self._done = False

    def _put(self, s: ReportedState | None) -> None:
        self._q.put(s)

    def __iter__(self) -> Watch:
        return self

    def __next__(self) -> ReportedState:
        if self._done:
            raise StopIteration
        try:
            if self._deadline is None:
                s = self._q.get()
            else:
                s = self._q.get(timeout=max(0.0, self._deadline - time.monotonic()))
        except queue.Empty:
            s = _CLOSED
        if s is _CLOSED:
            self.close()
            raise StopIteration
        return s

    def close(self) -> None:
        self._done = True
        self._remove()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class AsyncClient:
    """The asyncio client: the same methods as Client, awaitable.  It wraps a Client: each call runs the blocking
    one in a worker thread (``asyncio.to_thread``; paho's network loop is a thread of its own anyway), so many
    concurrent infer() calls share one connection.  ``async with AsyncClient(broker) as c:`` connects (or
    ``await c.connect()``); the keyword arguments are Client's."""

    def __init__(self, broker: str = DEFAULT_BROKER, **kwargs):
        self._args = (broker, kwargs)
        self._c: Client | None = None

    async def connect(self) -> AsyncClient:
        """Connect (TransportError when the broker cannot be reached)."""
        broker, kwargs = self._args
        self._c = await asyncio.to_thread(Client, broker, **kwargs)
        return self

    @property
    def client(self) -> Client:
        """The underlying blocking Client (connected)."""
        if self._c is None:
            raise TransportError("the AsyncClient is not connected: use `async with AsyncClient(...)` or connect()")
        return self._c

    @property
    def client_id(self) -> str:
        return self.client.client_id

    async def close(self) -> None:
        if self._c is not None:
            await asyncio.to_thread(self._c.close)

    async def __aenter__(self) -> Self:
        return await self.connect()

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def infer(self, device: str, inputs: Mapping[str, np.ndarray] | np.ndarray, tasks: Iterable[str] | str = (),
                    timeout: float = 10.0) -> Outputs:  # fmt: skip
        """Client.infer, awaitable."""
        return await asyncio.to_thread(self.client.infer, device, inputs, tasks, timeout)

    async def deploy(self, model: str, version: str, devices: Iterable[str] | str, *,
                     ttl: float | None = None) -> list[DesiredState]:  # fmt: skip
        """Client.deploy, awaitable."""
        return await asyncio.to_thread(self.client.deploy, model, version, devices, ttl=ttl)

    async def rollback(self, devices: Iterable[str] | str, *, ttl: float | None = None) -> dict[str, tuple[str, str]]:
        """Client.rollback, awaitable."""
        return await asyncio.to_thread(self.client.rollback, devices, ttl=ttl)

    async def status(self, wait: float = 0.0) -> FleetStatus:
        """Client.status, awaitable."""
        return await asyncio.to_thread(self.client.status, wait)

    async def wait_for(self, device: str, version: str | None = None, *, healthy: bool | None = True,
                       status: str | None = "online", timeout: float = 60.0) -> ReportedState:  # fmt: skip
        """Client.wait_for, awaitable."""
        return await asyncio.to_thread(self.client.wait_for, device, version, healthy=healthy, status=status,
                                       timeout=timeout)  # fmt: skip

    def watch(self, devices: Iterable[str] | str | None = None, *, timeout: float | None = None,
              initial: bool = True) -> AsyncWatch:  # fmt: skip
        """Client.watch as an async iterator: ``async for s in c.watch("cam-1", timeout=60): ...``.  Call it from a
        coroutine: it starts subscribing at once (in a worker thread) and the first ``__anext__`` waits for that, so
        nothing reported after the subscription is in place is missed."""
        loop = asyncio.get_running_loop()
        w = AsyncWatch(loop, timeout)
        w._registered = loop.create_task(asyncio.to_thread(self.client._listen, w._put, devices, initial, w))
        return w


class AsyncWatch:
    """An async iterator of ReportedState from AsyncClient.watch(); ``async with`` or close() stops it."""

    def __init__(self, loop: asyncio.AbstractEventLoop, timeout: float | None):
        self._loop = loop
        self._q: asyncio.Queue[ReportedState | None] = asyncio.Queue()
        self._deadline = None if timeout is None else loop.time() + timeout
        self._remove: Callable[[], None] = lambda: None
        self._registered: asyncio.Task | None = None
        self._done = False

    def _put(self, s: ReportedState | None) -> None:  # on paho's thread
        try:
            self._loop.call_soon_threadsafe(self._q.put_nowait, s)
        except RuntimeError:  # the loop is closed: nobody listens any more
            self._done = True

    def __aiter__(self) -> AsyncWatch:
        return self

    async def __anext__(self) -> ReportedState:
        if self._done:
            raise StopAsyncIteration
        if self._registered is not None:
            registering, self._registered = self._registered, None
            await registering  # TransportError etc. from subscribing surface here
        try:
            left = None if self._deadline is None else max(0.0, self._deadline - self._loop.time())
            s = await asyncio.wait_for(self._q.get(), left)
        except TimeoutError:
            s = _CLOSED
        if s is _CLOSED:
            self.close()
            raise StopAsyncIteration
        return s

    def close(self) -> None:
        self._done = True
        self._remove()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc) -> None:
        self.close()


def _matches(s: ReportedState, version: str | None, healthy: bool | None, status: str | None) -> bool:
    return ((version is None or s.version == version) and (healthy is None or s.healthy is healthy)
            and (status is None or s.status == status))  # fmt: skip


def _describe(s: ReportedState) -> str:
    running = f"{s.model}@{s.version}" if s.model else "nothing"
    health = {True: "healthy", False: "unhealthy", None: "health unknown"}[s.healthy]
    err = f", last error: {s.last_error}" if s.last_error else ""
    return f"{s.status}, running {running}, {health}{err}"


def _str(p: Path | str | None) -> str | None:
    return None if p is None else str(p)
