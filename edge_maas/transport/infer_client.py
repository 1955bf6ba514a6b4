"""Client side of `infer` over MQTT: request/response with correlation ids and timeouts."""

from __future__ import annotations

import re

import numpy as np

from edge_maas.errors import DeviceError, EdgeMaasError, PayloadTooLargeError, RequestTimeoutError, UnknownTaskError
from edge_maas.transport import topics
from edge_maas.transport.client import MqttClient
from edge_maas.transport.messages import InferReply, InferRequest, encode, pack_tensors, unpack_tensors
from edge_maas.transport.requests import Requester

# what the device says (edge_maas/service.py, device/agent.py) when a request names a task it lacks; the reply
# carries a message only, so the error's type is recovered from its wording
_UNKNOWN_TASK = re.compile(r"has no task |^no task named|is a split model: its only task is| has \d+ tasks: ")


class InferClient:
    def __init__(self, client: MqttClient):
        self.client = client
        self._requests = Requester(client, topics.infer_reply(client.client_id), InferReply, lambda r: r.corr)

    def infer(self, device_id: str, inputs: dict[str, np.ndarray], timeout: float = 10.0,
              tasks: tuple[str, ...] | list[str] = ()):  # fmt: skip
        """(version, outputs) from the device.  ``tasks``: the service's tasks to answer in this one request;
        outputs are then keyed ``TASK/TENSOR``.  Errors: RequestTimeoutError (no reply within ``timeout`` s),
        PayloadTooLargeError (the request, or the device's reply, exceeds the broker's packet limit),
        UnknownTaskError, DeviceError (any other error the device answered), each with the device's message."""
        metas, body = pack_tensors(inputs)
        corr = self._requests.new_id()
        req = InferRequest(corr=corr, reply_to=self._requests.reply_topic, inputs=metas, tasks=tuple(tasks))
        payload = encode(req, body)
        answer = self._requests.request(topics.infer_request(device_id), corr, payload, timeout)
        if answer is None:
            raise RequestTimeoutError(f"no reply from {device_id} within {timeout:.1f} s")
        reply, out_body = answer
        if reply.error:
            raise reply_error(device_id, reply.error)
        return reply.version, unpack_tensors(reply.outputs, out_body)


def reply_error(device_id: str, message: str) -> EdgeMaasError:
    """The typed error for a device's error reply (the message is kept as the device wrote it)."""
    text = f"{device_id}: {message}"
    if message.startswith("reply of "):  # device/agent.py: its outputs exceed the broker's packet limit
        return PayloadTooLargeError(text)
    if _UNKNOWN_TASK.search(message):
        return UnknownTaskError(text)
    return DeviceError(text)
