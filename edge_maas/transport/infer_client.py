"""Client side of `infer` over MQTT: request/response with correlation ids and timeouts."""

from __future__ import annotations

import numpy as np

from edge_maas.errors import EdgeMaasError, TransportError
from edge_maas.transport import topics
from edge_maas.transport.client import MqttClient
from edge_maas.transport.messages import InferReply, InferRequest, encode, pack_tensors, unpack_tensors
from edge_maas.transport.requests import Requester


class InferClient:
    def __init__(self, client: MqttClient):
        self.client = client
        self._requests = Requester(client, topics.infer_reply(client.client_id), InferReply, lambda r: r.corr)

    def infer(self, device_id: str, inputs: dict[str, np.ndarray], timeout: float = 10.0,
              tasks: tuple[str, ...] | list[str] = ()):  # fmt: skip
        """(version, outputs) from the device; EdgeMaasError with the device's message on failure.
        ``tasks``: the service's tasks to answer in this one request; outputs are then keyed ``TASK/TENSOR``."""
        metas, body = pack_tensors(inputs)
        corr = self._requests.new_id()
        req = InferRequest(corr=corr, reply_to=self._requests.reply_topic, inputs=metas, tasks=tuple(tasks))
        payload = encode(req, body)
        answer = self._requests.request(topics.infer_request(device_id), corr, payload, timeout)
        if answer is None:
            raise TransportError(f"no reply from {device_id} within {timeout:.1f} s")
        reply, out_body = answer
        if reply.error:
            raise EdgeMaasError(f"{device_id}: {reply.error}")
        return reply.version, unpack_tensors(reply.outputs, out_body)
