"""A paho-mqtt 2.x client wrapper: one connection, handlers by topic filter that are
re-subscribed after every reconnect, reconnect with capped exponential backoff and
jitter, byte counters, clear errors.

Broker limits: the effective maximum packet size is the configured one and, on MQTT 5, the
broker's CONNACK "Maximum Packet Size".  publish() refuses a message whose packet would
exceed it (PacketTooLargeError) instead of queueing it: a queued QoS 1 packet that the broker
rejects is re-sent after every reconnect and makes the client flap forever.  Where the limit
is unknown (MQTT 3.1.1, nothing configured) a message that the broker keeps disconnecting us
for is dropped after the second disconnect and the limit is lowered.

Client identity: a session that the broker drops right after it connected, repeatedly, is
what a second client with the same id causes (each connect takes the session over from the
other).  Backoff grows on such short sessions, and a client made with refuse_twin=True gives
up (fatal) when it is the newcomer, so the first holder of the id keeps its session."""

from __future__ import annotations

import logging
import random
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlparse

import paho.mqtt.client as mqtt

from edge_maas.errors import PayloadTooLargeError, TransportError

log = logging.getLogger(__name__)

Handler = Callable[[str, bytes], None]

MAX_MQTT_PACKET = 268_435_460  # the largest packet MQTT's remaining-length field can describe, fixed header included
STABLE_S = 10.0  # a session that lasted this long (seconds) was not a takeover loop: backoff starts over
# another client holds our id: TWIN_DROPS short sessions within TWIN_GRACE_S of our first connect, none of them
# held for TWIN_HELD_S (the holder, which did hold the id that long, takes it back instead of giving up)
TWIN_DROPS = 3
TWIN_GRACE_S = 10.0
TWIN_HELD_S = 2.0


class PacketTooLargeError(PayloadTooLargeError):
    """A message does not fit the broker's maximum packet size; it was not sent."""


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
                 protocol: int = mqtt.MQTTv311, max_packet_size: int | None = None, chunk_size: int | None = None,
                 refuse_twin: bool = False):  # fmt: skip
        """max_packet_size: the broker's limit in bytes (whole packet) where the profile knows it; on MQTT 5
        the broker's own CONNACK value applies too (the smaller wins).  chunk_size: preferred blob chunk
        size (bytes) of transfers over this connection (BlobFetcher's default).  refuse_twin: a daemon
        whose id must be unique: when another client with the same id holds the session, give up
        (start() raises, `fatal` says why) instead of taking it over back and forth."""
        self.url = BrokerUrl.parse(url)
        self.client_id = client_id
        self.protocol = protocol
        self.max_packet_size = max_packet_size
        self.chunk_size = chunk_size
        self.refuse_twin = refuse_twin
        self.broker_max_packet: int | None = None  # from CONNACK (MQTT 5), when the broker states one
        self.learned_max_packet: int | None = None  # below a packet the broker disconnected us for (3.1.1)
        self.oversized = 0  # messages refused (publish) or dropped (poison) for their size
        self.reconnects = 0  # successful connects after the first
        self.connect_times: deque[float] = deque(maxlen=64)  # time.monotonic() of each successful connect
        self.last_disconnect: str | None = None  # the last unexpected disconnect's reason
        self.fatal: str | None = None  # why this client gave up (then it no longer reconnects)
        self.on_fatal: Callable[[str], None] | None = None  # called once, on the network thread
        self._first_connect: float | None = None
        self._connected_at = 0.0
        self._short_sessions = 0  # consecutive sessions shorter than STABLE_S
        self._twin_drops = 0  # short sessions that look like a takeover (see _on_disconnect)
        self._longest = 0.0  # seconds of our longest session so far
        self._delay = backoff[0]
        self._suspect: tuple[int, int] | None = None  # (mid, size) pending at the previous disconnect
        self._fatal_ev = threading.Event()
        self._doomed: set[int] = set()  # mids of queued messages to withdraw at the next connect
        self.bytes_in = 0
        self.bytes_out = 0
        self._handlers: dict[str, Handler] = {}
        self._connect_hooks: list[Callable[[], None]] = []
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
        self._c.reconnect_delay_set(backoff[0] * random.uniform(0.5, 1.5), backoff[1])

    # -- lifecycle -------------------------------------------------------------------------
    def start(self, timeout: float = 10.0) -> MqttClient:
        try:
            self._c.connect_async(self.url.host, self.url.port, keepalive=30)
        except (OSError, ValueError) as exc:
            raise TransportError(f"cannot connect to {self.url.host}:{self.url.port}: {exc}") from None
        self._c.loop_start()
        if not self._connected.wait(timeout) or self.fatal:
            self.stop()
            if self.fatal:
                raise TransportError(self.fatal)
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

    def add_connect_hook(self, fn: Callable[[], None]) -> None:
        """Call fn() on the network thread after every (re)connect, once subscriptions are restored
        (e.g. to republish retained state that a broker restart or a last will replaced)."""
        with self._lock:
            self._connect_hooks.append(fn)

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

    @property
    def max_packet(self) -> int | None:
        """The effective maximum packet size in bytes (whole packet), or None while no limit is known."""
        known = [x for x in (self.max_packet_size, self.broker_max_packet, self.learned_max_packet) if x]
        return min(known) if known else None

    def packet_size(self, topic: str, payload_len: int, qos: int = 1) -> int:
        """Bytes of the PUBLISH packet that carries payload_len bytes to topic (fixed header included)."""
        rest = 2 + len(topic.encode()) + (2 if qos else 0) + (1 if self.protocol == mqtt.MQTTv5 else 0) + payload_len
        return 1 + _varint_len(rest) + rest

    def max_payload(self, topic: str, qos: int = 1) -> int | None:
        """The largest payload (bytes) that fits one packet to topic under the known limit; None: no limit known."""
        limit = self.max_packet
        if limit is None:
            return None
        n = limit - self.packet_size(topic, 0, qos)
        while n > 0 and self.packet_size(topic, n, qos) > limit:  # the length field grew: at most 3 steps
            n -= 1
        return max(0, n)

    def oversize(self, topic: str, payload: bytes, qos: int = 1) -> str | None:
        """Why ``payload`` cannot be published to ``topic`` ("N bytes exceeds <limit>"), or None if it fits."""
        room = self.max_payload(topic, qos)
        return None if room is None or len(payload) <= room else f"{len(payload)} bytes exceeds {self.limit_text()}"

    def limit_text(self) -> str:
        """Where the effective limit comes from, for error messages."""
        limit = self.max_packet
        if limit is None:
            return "no limit known"
        why = ("the broker's CONNACK" if limit == self.broker_max_packet else
               "mqtt.max_packet_size" if limit == self.max_packet_size else
               "learned: the broker disconnected this client for a larger message")  # fmt: skip
        return f"the broker's maximum packet size of {limit} bytes ({why})"

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> mqtt.MQTTMessageInfo:
        """Queue a message; the returned info's wait_for_publish() waits until it was sent (QoS 1: acknowledged).
        PacketTooLargeError (nothing queued, counted in `oversized`) if its packet exceeds the known limit."""
        limit = self.max_packet
        if limit is not None and (size := self.packet_size(topic, len(payload), qos)) > limit:
            self.oversized += 1
            msg = f"a message of {size} bytes to {topic} exceeds {self.limit_text()}; not sent"
            log.warning("%s: %s", self.client_id, msg)
            raise PacketTooLargeError(msg)
        info = self._c.publish(topic, payload, qos=qos, retain=retain)
        if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
            raise TransportError(f"publish to {topic} failed: {mqtt.error_string(info.rc)}")
        self.bytes_out += len(payload)  # queued while disconnected: paho sends it on reconnect
        return info

    # -- paho callbacks (network thread) ---------------------------------------------------
    def _on_connect(self, client, userdata, flags, reason_code, properties):
        if reason_code.is_failure:
            self._refused = str(reason_code)
            log.warning("%s: broker refused the connection: %s", self.client_id, reason_code)
            return
        if self._doomed:
            with client._out_message_mutex:
                for mid in self._doomed:
                    client._out_messages.pop(mid, None)
            self._doomed.clear()
        now = time.monotonic()
        mps = getattr(properties, "MaximumPacketSize", None) if properties is not None else None
        self.broker_max_packet = int(mps) if mps else None
        if self._first_connect is None:
            self._first_connect = now
        else:
            self.reconnects += 1
        self._connected_at = now
        self.connect_times.append(now)
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
        with self._lock:
            hooks = list(self._connect_hooks)
        for fn in hooks:
            try:
                fn()
            except Exception:  # a hook bug must not kill the network thread
                log.exception("%s: connect hook failed", self.client_id)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties):
        was_connected = self._connected.is_set()
        self._connected.clear()
        if self._stopping:
            return
        now = time.monotonic()
        code = getattr(reason_code, "value", None)
        self.last_disconnect = str(reason_code)
        size_issue = self._drop_poison(too_large=code == 0x95)  # 0x95: Packet too large (MQTT 5)
        if not was_connected:  # a refused attempt: paho doubles its own delay until a CONNACK succeeds
            self._twin_drops = 0  # the broker (or the link) was down: not another client taking our session
            log.warning("%s: connection attempt failed (%s)", self.client_id, reason_code)
            return
        # paho resets its delay on every successful CONNACK, so a session that the broker drops right after
        # connecting (another client with our id, a rejected packet) would reconnect at the minimum delay
        # forever: grow the delay ourselves over consecutive short sessions
        lo, hi = self._backoff
        self._longest = max(self._longest, now - self._connected_at)
        if now - self._connected_at >= STABLE_S:
            self._short_sessions, self._twin_drops, self._delay = 0, 0, lo
        else:
            self._short_sessions += 1
            self._delay = lo if self._short_sessions == 1 else min(hi, self._delay * 2)
            # a takeover loop reconnects at the first attempt and is dropped again at once; a broker that
            # shuts down says so (0x8B) and then refuses attempts for a while, which resets the count
            if code != 0x8B:
                self._twin_drops += 1
        takeover = code == 0x8E  # Session taken over (MQTT 5 brokers that say so)
        newcomer = (self._first_connect is not None and now - self._first_connect < TWIN_GRACE_S
                    and self._longest < TWIN_HELD_S)  # fmt: skip
        if self.refuse_twin and newcomer and not size_issue and (takeover or self._twin_drops >= TWIN_DROPS):
            how = "the broker says the session was taken over" if takeover else (
                f"the broker dropped this session {self._twin_drops} times right after it connected")
            self._give_up(f"another client is connected with the id {self.client_id!r} ({how}); refusing to run a "
                          "second one: give each device and worker its own id")  # fmt: skip
            return
        jittered = self._delay * random.uniform(0.5, 1.5)  # spread a fleet's reconnects after a broker restart
        client.reconnect_delay_set(jittered, hi)  # paho waits `jittered` before the next attempt
        hint = " (another client with the same id?)" if self._twin_drops >= TWIN_DROPS and not size_issue else ""
        log.warning("%s: disconnected (%s)%s; reconnecting in %.2f s", self.client_id, reason_code, hint, jittered)

    def _give_up(self, why: str) -> None:
        self.fatal = why
        self._stopping = True
        log.error("%s: %s", self.client_id, why)
        self._c.disconnect()  # ends paho's loop: no further attempts
        self._fatal_ev.set()
        if self.on_fatal is not None:
            try:
                self.on_fatal(why)
            except Exception:
                log.exception("%s: on_fatal failed", self.client_id)

    def _drop_poison(self, too_large: bool) -> bool:
        """After an unexpected disconnect: paho re-sends unacknowledged QoS 1/2 messages on reconnect, so a
        message the broker refuses for its size would make us flap forever.  Drop the largest pending one
        when the broker said "Packet too large", or when it was pending at the previous disconnect too
        (MQTT 3.1.1 gives no reason), and lower the assumed limit.  True if the disconnect may be size-related."""
        c = self._c
        if self.protocol == mqtt.MQTTv5 and not too_large:
            return False  # MQTT 5 brokers say "Packet too large" (0x95); any other disconnect is not about size
        try:  # paho has no public way to withdraw a queued message
            with c._out_message_mutex:
                pending = [(len(m.payload), mid, m.topic) for mid, m in c._out_messages.items() if m.qos > 0]
        except AttributeError:
            return too_large
        size, mid, topic = max(pending) if pending else (0, 0, "")
        if size <= 1024:  # smaller than any broker's sensible limit
            self._suspect = None
            return too_large
        if not (too_large or self._suspect == (mid, size)):
            self._suspect = (mid, size)
            return True
        self._suspect = None
        packet = self.packet_size(topic, size, 1)
        # the limit is below `packet`; where the broker does not state it, halving finds it in a few steps
        self.learned_max_packet = max(1024, min(self.learned_max_packet or packet, packet // 2))
        limit = self.max_packet or packet
        with c._out_message_mutex:  # every queued message that the (new) limit rules out, not one per flap
            doomed = [m for m, msg in c._out_messages.items()
                      if self.packet_size(msg.topic, len(msg.payload), 1) > limit]
        # paho may be iterating its queue right now (we can be called from inside its send loop):
        # _on_connect removes them, before paho re-sends the queue
        self._doomed.update(doomed)
        self.oversized += len(doomed)
        log.error("%s: dropped %d message(s) of up to %d bytes (to %s, ...): the broker disconnected this client for "
                  "them (%s); assuming a maximum packet size of %d bytes (set mqtt.max_packet_size, or use MQTT 5)",
                  self.client_id, len(doomed), packet, topic, self.last_disconnect, limit)  # fmt: skip
        return True

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


def _varint_len(n: int) -> int:
    """Bytes of MQTT's variable-length integer for n."""
    return 1 if n < 128 else 2 if n < 16_384 else 3 if n < 2_097_152 else 4


def _plain_filter(topic_filter: str) -> str:
    """A shared subscription '$share/<group>/<filter>' delivers messages of <filter>."""
    if topic_filter.startswith("$share/"):
        parts = topic_filter.split("/", 2)
        return parts[2] if len(parts) == 3 else topic_filter
    return topic_filter
