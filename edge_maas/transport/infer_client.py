"""Client side of `infer` over MQTT: request/response with correlation ids and timeouts."""

from __future__ import annotations

import threading
import uuid

import numpy as np

from edge_maas.errors import EdgeMaasError, TransportError
from edge_maas.transport import topics
from edge_maas.transport.client import MqttClient
from edge_maas.transport.messages import InferReply, InferRequest, decode, encode, pack_tensors, unpack_tensors


class InferClient:
    def __init__(self, client: MqttClient):
        self.client = client
        self._reply_topic = f"{topics.PREFIX}/client/{client.client_id}/infer"
        self._pending: dict[str, tuple[threading.Event, list]] = {}
        self._lock = threading.Lock()
        client.subscribe(self._reply_topic, self._on_reply, qos=0)

    def infer(self, device_id: str, inputs: dict[str, np.ndarray], timeout: float = 10.0):
        """(version, outputs) from the device; EdgeMaasError with the device's message on failure."""
        corr = uuid.uuid4().hex
        done: tuple[threading.Event, list] = (threading.Event(), [])
        with self._lock:
            self._pending[corr] = done
        metas, body = pack_tensors(inputs)
        self.client.publish(topics.infer_request(device_id),
                            encode(InferRequest(corr=corr, reply_to=self._reply_topic, inputs=metas), body),
                            qos=0)  # fmt: skip  # request/response has its own timeout; QoS 1 only adds a round trip
        try:
            if not done[0].wait(timeout):
                raise TransportError(f"no reply from {device_id} within {timeout:.1f} s")
        finally:
            with self._lock:
                self._pending.pop(corr, None)
        reply, out_body = done[1][0]
        if reply.error:
            raise EdgeMaasError(f"{device_id}: {reply.error}")
        return reply.version, unpack_tensors(reply.outputs, out_body)

    def _on_reply(self, topic: str, payload: bytes) -> None:
        reply, body = decode(payload, InferReply)
        with self._lock:
            waiter = self._pending.get(reply.corr)
        if waiter is not None:  # late replies after a timeout are dropped
            waiter[1].append((reply, body))
            waiter[0].set()
