"""A paho-mqtt 2.x client wrapper: one connection, handlers by topic filter that are
re-subscribed after every reconnect, reconnect with capped exponential backoff and
jitter, byte counters, clear errors."""

from __future__ import annotations

import logging
import random
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlparse

import paho.mqtt.client as mqtt

from edge_maas.errors import TransportError

log = logging.getLogger(__name__)

Handler = Callable[[str, bytes], None]


@dataclass(frozen=True)
class BrokerUrl:
    host: str
    port: int
    tls: bool

    @classmethod
    def parse(cls, url: str) -> BrokerUrl:
        u = urlparse(url if "://" in url else f"mqtt://{url}")
        if u.scheme not in ("mqtt", "mqtts", "tcp", "ssl"):
            raise TransportError(f"broker URL {url!r}: scheme must be mqtt:// or mqtts://")
        if not u.hostname:
            raise TransportError(f"broker URL {url!r} has no host")
        tls = u.scheme in ("mqtts", "ssl")
        return cls(u.hostname, u.port or (8883 if tls else 1883), tls)


class MqttClient:
    """Connect with start(); subscribe(filter, handler) at any time; publish(); stop()."""

    def __init__(self, url: str, client_id: str, *, username: str | None = None, password: str | None = None,
                 ca_file: str | None = None, cert_file: str | None = None, key_file: str | None = None,
                 will: tuple[str, bytes] | None = None, backoff: tuple[float, float] = (0.2, 10.0),
                 protocol: int = mqtt.MQTTv311):  # fmt: skip
        self.url = BrokerUrl.parse(url)
        self.client_id = client_id
        self.bytes_in = 0
        self.bytes_out = 0
        self._handlers: dict[str, Handler] = {}
        self._lock = threading.Lock()
        self._connected = threading.Event()
        self._stopping = False
        self._refused: str | None = None
        self._acks: dict[int, threading.Event] = {}
        self._early_acks: set[int] = set()
        self._backoff = backoff
        self._c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=protocol)
        if username is not None:
            self._c.username_pw_set(username, password)
        if self.url.tls or ca_file:
            self._c.tls_set(ca_certs=ca_file, certfile=cert_file, keyfile=key_file)
        if will is not None:
            self._c.will_set(will[0], will[1], qos=1, retain=True)
        self._c.on_connect = self._on_connect
        self._c.on_disconnect = self._on_disconnect
        self._c.on_message = self._on_message
        self._c.on_subscribe = self._on_subscribe
        self._c.reconnect_delay_set(*backoff)

    # -- lifecycle -------------------------------------------------------------------------
    def start(self, timeout: float = 10.0) -> MqttClient:
        try:
            self._c.connect_async(self.url.host, self.url.port, keepalive=30)
        except (OSError, ValueError) as exc:
            raise TransportError(f"cannot connect to {self.url.host}:{self.url.port}: {exc}") from None
        self._c.loop_start()
        if not self._connected.wait(timeout):
            self.stop()
            why = f" (refused: {self._refused})" if self._refused else ""
            raise TransportError(
                f"no connection to the broker at {self.url.host}:{self.url.port} within {timeout:.0f} s{why}"
            )
        return self

    def stop(self) -> None:
        self._stopping = True
        self._c.disconnect()
        self._c.loop_stop()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    # -- messaging -------------------------------------------------------------------------
    def subscribe(self, topic_filter: str, handler: Handler, qos: int = 1, timeout: float = 5.0) -> None:
        """Register handler for a filter; when connected, return once the broker acknowledged it
        (so a request published right after cannot overtake the subscription)."""
        with self._lock:
            self._handlers[topic_filter] = handler
        if self.connected:
            acked = threading.Event()
            rc, mid = self._c.subscribe(topic_filter, qos)
            with self._lock:  # the SUBACK may already have been handled on the network thread
                if mid in self._early_acks:
                    self._early_acks.discard(mid)
                    acked.set()
                else:
                    self._acks[mid] = acked
            if rc == mqtt.MQTT_ERR_SUCCESS and not acked.wait(timeout):
                log.warning("%s: no SUBACK for %s within %.0f s", self.client_id, topic_filter, timeout)

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
        info = self._c.publish(topic, payload, qos=qos, retain=retain)
        if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
            raise TransportError(f"publish to {topic} failed: {mqtt.error_string(info.rc)}")
        self.bytes_out += len(payload)  # queued while disconnected: paho sends it on reconnect

    # -- paho callbacks (network thread) ---------------------------------------------------
    def _on_connect(self, client, userdata, flags, reason_code, properties):
        if reason_code.is_failure:
            self._refused = str(reason_code)
            log.warning("%s: broker refused the connection: %s", self.client_id, reason_code)
            return
        sock = client.socket()
        if sock is not None and hasattr(sock, "setsockopt"):
            # request/response traffic: Nagle + delayed ACK would add ~40 ms per round trip
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
        with self._lock:
            filters = list(self._handlers)
        for f in filters:  # a clean session forgets subscriptions: restore them every time
            client.subscribe(f, 1)
        log.info("%s: connected to %s:%d (%d subscriptions)", self.client_id, self.url.host, self.url.port, len(filters))
        self._connected.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties):
        self._connected.clear()
        if self._stopping:
            return
        lo, hi = self._backoff
        jittered = lo * random.uniform(0.5, 1.5)  # spread a fleet's reconnects after a broker restart
        client.reconnect_delay_set(jittered, hi)
        log.warning("%s: disconnected (%s); reconnecting with backoff %.2f..%.0f s", self.client_id, reason_code,
                    jittered, hi)  # fmt: skip

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties):
        with self._lock:
            ev = self._acks.pop(mid, None)
            if ev is None:
                self._early_acks.add(mid)
        if ev is not None:
            ev.set()

    def _on_message(self, client, userdata, msg):
        self.bytes_in += len(msg.payload)
        with self._lock:
            handlers = [h for f, h in self._handlers.items() if mqtt.topic_matches_sub(_plain_filter(f), msg.topic)]
        for h in handlers:
            try:
                h(msg.topic, bytes(msg.payload))
            except Exception:  # a handler bug must not kill the network thread
                log.exception("%s: handler for %s failed", self.client_id, msg.topic)


def _plain_filter(topic_filter: str) -> str:
    """A shared subscription '$share/<group>/<filter>' delivers messages of <filter>."""
    if topic_filter.startswith("$share/"):
        parts = topic_filter.split("/", 2)
        return parts[2] if len(parts) == 3 else topic_filter
    return topic_filter
