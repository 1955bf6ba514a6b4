"""Mosquitto with TLS, per-client passwords and the generated ACL: devices see only their
own desired state, cannot write the registry's topics, and strangers cannot connect."""

from __future__ import annotations

import getpass
import time

import pytest
from tls import make_ca_and_server

from edge_maas.errors import TransportError
from edge_maas.registry.blobs import BlobStore
from edge_maas.registry.broker_config import write_config
from edge_maas.transport import topics
from edge_maas.transport.chunks import BlobFetcher, BlobServer
from edge_maas.transport.client import MqttClient
from edge_maas.transport.local_broker import Mosquitto, free_port

USERS = {"registry": "reg-secret", "dev-a": "a-secret", "dev-b": "b-secret", "operator": "op-secret", "wk-1": "w-secret"}


@pytest.fixture
def secure_broker(tmp_path):
    ca, cert, key = make_ca_and_server(tmp_path)
    port = free_port()
    # started as root, mosquitto drops to its own user, which cannot read pytest's private tmp dir
    conf = write_config(tmp_path / "broker", port, USERS, tls=(ca, cert, key), run_as=getpass.getuser(), workers=("wk-1",))
    broker = Mosquitto(tmp_path, port=port, conf=conf, tls=True).start()
    yield broker, ca
    broker.stop()


def _client(broker, ca, user, password=None):
    return MqttClient(broker.url, user, username=user, password=password or USERS[user], ca_file=str(ca)).start()


def _collect(client, topic):
    got = []
    client.subscribe(topic, lambda t, p: got.append((t, p)))
    return got


def test_devices_see_only_their_own_desired_state(secure_broker):
    broker, ca = secure_broker
    reg, a, b = (_client(broker, ca, u) for u in ("registry", "dev-a", "dev-b"))
    own = _collect(a, topics.desired("dev-a"))
    spy = _collect(a, topics.desired("dev-b"))  # the broker silently denies this subscription
    reg_view = _collect(reg, f"{topics.PREFIX}/device/+/desired")
    reg.publish(topics.desired("dev-a"), b'{"for": "a"}', retain=True)
    reg.publish(topics.desired("dev-b"), b'{"for": "b"}', retain=True)
    b.publish(topics.desired("dev-a"), b'{"forged": true}', retain=True)  # a device may not write desired states
    time.sleep(1.0)
    assert [p for _, p in own] == [b'{"for": "a"}']
    assert spy == []
    assert all(b"forged" not in p for _, p in reg_view)
    for c in (reg, a, b):
        c.stop()


def test_blob_transfer_works_over_tls_with_acl(secure_broker, tmp_path):
    broker, ca = secure_broker
    store = BlobStore(tmp_path / "blobs")
    blob = bytes(range(256)) * 100
    sha = store.put(blob)
    reg, a = _client(broker, ca, "registry"), _client(broker, ca, "dev-a")
    BlobServer(reg, store.get)
    assert BlobFetcher(a, chunk_size=4096).fetch(sha, len(blob)) == blob
    reg.stop()
    a.stop()


def test_wrong_password_and_anonymous_are_refused(secure_broker):
    broker, ca = secure_broker
    with pytest.raises(TransportError, match="refused: Not authorized"):
        MqttClient(broker.url, "dev-a", username="dev-a", password="wrong", ca_file=str(ca)).start(timeout=3)
    with pytest.raises(TransportError, match="no connection"):
        MqttClient(broker.url, "anon", ca_file=str(ca)).start(timeout=3)


def test_offload_topics_under_the_acl(secure_broker):
    """A device sends offload requests and reads its replies and workers' status; the worker
    takes requests through its shared subscription and answers; a device can neither read
    other devices' offload requests nor forge a worker's status."""
    broker, ca = secure_broker
    a, b, w = (_client(broker, ca, u) for u in ("dev-a", "dev-b", "wk-1"))
    to_worker = _collect(w, topics.offload_shared("workers"))
    snoop = _collect(b, topics.offload("+"))  # denied: devices only write offload requests
    replies = _collect(a, topics.offload_reply("dev-a"))
    status = _collect(a, topics.worker_status("+"))
    a.publish(topics.offload("m"), b"request")
    w.publish(topics.offload_reply("dev-a"), b"reply")
    w.publish(topics.worker_status("wk-1"), b"online", retain=True)
    b.publish(topics.worker_status("wk-1"), b"forged", retain=True)
    time.sleep(1.0)
    assert [p for _, p in to_worker] == [b"request"] and snoop == []
    assert [p for _, p in replies] == [b"reply"]
    assert [p for _, p in status] == [b"online"]
    for c in (a, b, w):
        c.stop()
