"""Request/response over MQTT: one reply topic per client, replies matched to waiters by
correlation id, a timeout per request; a reply that arrives after its waiter gave up is
dropped and counted.  Used by the infer client and the offload backend."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable

from pydantic import BaseModel

from edge_maas.transport.client import MqttClient
from edge_maas.transport.messages import decode


class Requester:
    def __init__(self, client: MqttClient, reply_topic: str, reply_model: type[BaseModel],
                 corr_of: Callable[[BaseModel], str]):  # fmt: skip
        self.client = client
        self.reply_topic = reply_topic
        self.late = 0
        self._model = reply_model
        self._corr_of = corr_of
        self._pending: dict[str, tuple[threading.Event, list]] = {}
        self._lock = threading.Lock()
        client.subscribe(reply_topic, self._on_reply, qos=0)

    @staticmethod
    def new_id() -> str:
        return uuid.uuid4().hex

    def request(self, topic: str, corr: str, payload: bytes, timeout: float):
        """Publish a request carrying correlation id `corr`; (reply, body), or None when nothing
        came in time.  QoS 0: the request has its own timeout, QoS 1 would only add a round trip."""
        waiter: tuple[threading.Event, list] = (threading.Event(), [])
        with self._lock:
            self._pending[corr] = waiter
        try:
            self.client.publish(topic, payload, qos=0)
            if not waiter[0].wait(timeout):
                return None
        finally:
            with self._lock:
                self._pending.pop(corr, None)
        return waiter[1][0]

    def _on_reply(self, topic: str, payload: bytes) -> None:
        reply, body = decode(payload, self._model)
        with self._lock:
            waiter = self._pending.get(self._corr_of(reply))
        if waiter is None:
            self.late += 1
            return
        waiter[1].append((reply, body))
        waiter[0].set()
