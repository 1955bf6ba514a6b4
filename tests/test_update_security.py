"""The attacker has write access to the broker (a leaked device password, a broker without
ACLs): every replay, downgrade, freeze, forgery, expired or revoked-key message is refused and
reported, and the device keeps serving what it runs.  Real Mosquitto, real registry and device,
root of trust on python-tuf's Metadata API."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
from test_registry_device import Reports, _split_v1, _variant

from edge_maas.device.agent import DeviceAgent
from edge_maas.registry import signing
from edge_maas.registry.blobs import BlobStore
from edge_maas.registry.service import Registry
from edge_maas.transport import topics
from edge_maas.transport.client import MqttClient
from edge_maas.transport.messages import DesiredState, SignedDesired
from edge_maas.trust import keys
from edge_maas.trust.root import TrustedRoot, TrustError, new_root, rotate, sign_root


class World:
    def __init__(self, tmp_path, url):
        self.tmp, self.url = tmp_path, url
        self.root_keys = [keys.load_private(_key(tmp_path / f"root{i}.key")) for i in range(3)]
        self.k1 = _key(tmp_path / "release1.key")
        root = new_root([k.public_key() for k in self.root_keys], [keys.load_public(self.k1.with_suffix(".pub"))],
                        root_threshold=2)  # fmt: skip
        self.root_v1 = sign_root(root, [keys.signer(k) for k in self.root_keys[:2]])
        (tmp_path / "root.json").write_bytes(self.root_v1)
        self.reg = Registry(tmp_path / "registry", self.k1, desired_ttl_s=3600)
        self.reg.add_root(self.root_v1)
        self.reg_client = MqttClient(url, "registry").start()
        self.reg.serve(self.reg_client)
        self.attacker = MqttClient(url, "attacker").start()
        self.reports = Reports(url)
        self.agents: dict[str, DeviceAgent] = {}
        v1 = _split_v1(tmp_path)
        for d in (v1, _variant(v1, tmp_path / "v2", "2"), _variant(v1, tmp_path / "v3", "3")):
            self.reg.publish(d)

    def device(self, name="dev-a", allow_rollback=True) -> DeviceAgent:
        cache = BlobStore(self.tmp / name / "cache")
        trust = TrustedRoot.load(self.tmp / "root.json", cache.root / "root.json")
        agent = DeviceAgent(name, MqttClient(self.url, name).start(), cache, trust, chunk_size=2048,
                            allow_rollback=allow_rollback)  # fmt: skip
        self.agents[name] = agent
        return agent

    def stop_device(self, name="dev-a"):
        a = self.agents.pop(name)
        a.close()
        a.client.stop()

    def running(self, version, device="dev-a"):
        self.reports.wait(lambda s: s.get(device) and s[device].version == version)

    def refused(self, text, device="dev-a"):
        """The device reports a refusal containing `text` (and still runs what it ran)."""
        self.reports.wait(lambda s: s.get(device) and s[device].last_error and text in s[device].last_error)
        return self.reports.latest[device]

    def captured_desired(self, device="dev-a") -> bytes:
        got = []
        c = MqttClient(self.url, f"sniffer-{time.monotonic_ns()}").start()
        c.subscribe(topics.desired(device), lambda t, p: got.append(p))
        deadline = time.monotonic() + 5
        while not got and time.monotonic() < deadline:
            time.sleep(0.02)
        c.stop()
        assert got, "no retained desired state"
        return got[-1]

    def close(self):
        for name in list(self.agents):
            self.stop_device(name)
        for c in (self.reports.client, self.attacker, self.reg_client):
            c.stop()


def _key(path):
    keys.new_key(path)
    return path


@pytest.fixture
def world(mosquitto, tmp_path):
    w = World(tmp_path, mosquitto.url)
    yield w
    w.close()


def _state(w, version, release, **kw) -> DesiredState:
    rec = w.reg.catalog.version("mlp_digits", version)
    base = dict(device_id="dev-a", model="mlp_digits", version=version, release=release,
                manifest_sha256=rec.manifest_sha256, manifest_size=rec.manifest_size,
                seq=w.reg.catalog.next_seq("dev-a"), expires=signing.expiry(600))  # fmt: skip
    return DesiredState(**{**base, **kw})


def _inject(w, payload: bytes, device="dev-a"):
    w.attacker.publish(topics.desired(device), payload, retain=True)


def test_replayed_desired_state_cannot_downgrade(world):
    """v1's genuine signed desired state, replayed after v2 was deployed: refused (seq), also
    after a restart (the seq is persisted)."""
    w = world
    w.device()
    w.reg.deploy(w.reg_client, "mlp_digits", "1", ["dev-a"])
    w.running("1")
    old = w.captured_desired()
    w.reg.deploy(w.reg_client, "mlp_digits", "2", ["dev-a"])
    w.running("2")
    _inject(w, old)
    assert w.refused("replay refused").version == "2"
    w.stop_device()
    w.device()  # restart: the replay is still the retained message
    w.running("2")
    assert w.refused("replay refused").version == "2"
    assert w.agents["dev-a"].active.version == "2"


def test_fresh_downgrade_needs_a_signed_rollback_and_policy(world):
    w = world
    w.device()
    w.reg.deploy(w.reg_client, "mlp_digits", "1", ["dev-a"])
    w.running("1")
    w.reg.deploy(w.reg_client, "mlp_digits", "2", ["dev-a"])
    w.running("2")
    # correctly signed, fresh seq, but an older release without the rollback flag
    _inject(w, signing.sign_desired(_state(w, "1", 1), w.reg.key).model_dump_json().encode())
    assert w.refused("downgrade refused").version == "2"
    w.reg.rollback(w.reg_client, "dev-a")  # the operator's explicit, signed rollback
    w.running("1")
    assert w.reports.latest["dev-a"].previous_version == "2"


def test_profile_can_forbid_rollbacks(world):
    w = world
    w.device(allow_rollback=False)
    w.reg.deploy(w.reg_client, "mlp_digits", "1", ["dev-a"])
    w.running("1")
    w.reg.deploy(w.reg_client, "mlp_digits", "2", ["dev-a"])
    w.running("2")
    w.reg.rollback(w.reg_client, "dev-a")
    assert w.refused("forbids rollbacks").version == "2"


def test_forged_tampered_unsigned_and_misaddressed_states_are_refused(world):
    w = world
    w.device()
    w.reg.deploy(w.reg_client, "mlp_digits", "1", ["dev-a"])
    w.running("1")
    mallory = keys.load_private(_key(w.tmp / "mallory.key"))
    cases = {
        "unsigned": (_state(w, "3", 3).model_dump_json().encode(), "malformed or unsigned"),
        "forged": (signing.sign_desired(_state(w, "3", 3), mallory).model_dump_json().encode(), "does not trust"),
        "misaddressed": (signing.sign_desired(_state(w, "3", 3, device_id="dev-b"), w.reg.key).model_dump_json()
                         .encode(), "addressed to device 'dev-b'"),  # fmt: skip
        "garbage": (b"\xff" * 100, "malformed or unsigned"),
    }
    genuine = signing.sign_desired(_state(w, "3", 3), w.reg.key)
    doc = json.loads(genuine.model_dump_json())
    doc["signed"]["version"] = "2"  # same signature, other content
    cases["tampered"] = (json.dumps(doc).encode(), "0 valid signature")
    for name, (payload, why) in cases.items():
        _inject(w, payload)
        st = w.refused(why)
        assert st.version == "1", name
        _inject(w, b"")  # clear, so the next refusal is a new report
        time.sleep(0.05)


def test_expired_desired_state_is_refused_and_refresh_keeps_it_fresh(world):
    """Freeze: an attacker withholds updates by replaying a still-genuine old state; it expires.
    The registry re-signs states at half their lifetime, so a live registry never lets one lapse."""
    w = world
    w.device()
    expired = _state(w, "2", 2, expires=signing.expiry(-1))
    _inject(w, signing.sign_desired(expired, w.reg.key).model_dump_json().encode())
    st = w.refused("expired at")
    assert st.version is None
    w.reg.desired_ttl_s = 2.0
    w.reg.deploy(w.reg_client, "mlp_digits", "2", ["dev-a"])
    w.running("2")
    first = SignedDesired.model_validate_json(w.captured_desired()).signed
    time.sleep(1.2)
    assert w.reg.refresh(w.reg_client) == 1  # past half of 2 s
    fresh = SignedDesired.model_validate_json(w.captured_desired()).signed
    assert fresh.seq > first.seq and fresh.expires > first.expires and fresh.version == "2"
    time.sleep(1.5)  # the first state has expired by now; the refreshed one has not
    assert w.agents["dev-a"].gate.state.seq == fresh.seq
    assert w.agents["dev-a"].active.version == "2"


def test_key_rotation_threshold_and_revocation(world):
    """Root v2 (signed by 2 of 3 old root keys and 2 of its own) adds release key k2 and revokes
    k1: the device follows it; k1's signatures are refused from then on, k2's accepted.  A root
    signed by too few keys, by an attacker, or skipping a version is refused."""
    w = world
    w.device()
    w.reg.publish_roots(w.reg_client)
    w.reg.deploy(w.reg_client, "mlp_digits", "1", ["dev-a"])
    w.running("1")
    agent = w.agents["dev-a"]
    k2 = _key(w.tmp / "release2.key")
    trusted = TrustedRoot.from_trusted_bytes(w.root_v1)
    k1_id = keys.tuf_key(keys.load_public(w.k1.with_suffix(".pub"))).keyid
    v2 = rotate(trusted.root, release_keys=[keys.load_public(k2.with_suffix(".pub"))])
    assert k1_id not in v2.roles["targets"].keyids
    # too few root signatures: refused, device stays on root v1
    w.attacker.publish(topics.trust_root(2), sign_root(v2, [keys.signer(w.root_keys[0])]), retain=True)
    w.refused("signed by 1 of the 2 root keys of trusted v1")
    # an attacker's own root keys
    evil = [keys.load_private(_key(w.tmp / f"evil{i}.key")) for i in range(2)]
    ev = rotate(trusted.root, root_keys=[k.public_key() for k in evil], root_threshold=2)
    w.attacker.publish(topics.trust_root(2), sign_root(ev, [keys.signer(k) for k in evil]), retain=True)
    w.refused("signed by 0 of the 2 root keys of trusted v1")
    assert agent.key.version == 1
    # the genuine rotation, through the registry
    w.reg.add_root(sign_root(v2, [keys.signer(k) for k in w.root_keys[1:]]))
    w.reg.publish_roots(w.reg_client)
    deadline = time.monotonic() + 10
    while agent.key.version != 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert agent.key.version == 2
    # the revoked key still signs a fresh, well-formed state: refused
    with pytest.raises(TrustError, match="not a release key of root v2"):
        Registry(w.tmp / "registry", w.k1)
    _inject(w, signing.sign_desired(_state(w, "2", 2), keys.load_private(w.k1)).model_dump_json().encode())
    assert w.refused("does not trust").version == "1"
    reg2 = Registry(w.tmp / "registry", k2)
    reg2.deploy(w.reg_client, "mlp_digits", "2", ["dev-a"])
    # v2's manifest was signed by k1, now revoked: refused until the registry re-signs it
    assert w.refused("tampered, or signed by an untrusted key").version == "1"
    assert reg2.resign() == 3
    reg2.deploy(w.reg_client, "mlp_digits", "2", ["dev-a"])
    w.running("2")
    k2_id = keys.tuf_key(keys.load_public(k2.with_suffix(".pub"))).keyid
    assert [s.keyid for s in agent.active.manifest.signatures] == [k2_id]


def test_expired_root_refuses_everything(world, tmp_path):
    w = world
    r = new_root([w.root_keys[0].public_key()], [keys.load_public(w.k1.with_suffix(".pub"))], expires_days=-1)
    (tmp_path / "old-root.json").write_bytes(sign_root(r, [keys.signer(w.root_keys[0])]))
    trust = TrustedRoot.load(tmp_path / "old-root.json")
    d = DeviceAgent("dev-x", MqttClient(w.url, "dev-x").start(), BlobStore(tmp_path / "x"), trust)
    try:
        w.reg.deploy(w.reg_client, "mlp_digits", "1", ["dev-x"])
        w.refused("trusted root v1 expired", device="dev-x")
        assert d.active is None
    finally:
        d.close()
        d.client.stop()


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "edge_maas.cli", *map(str, args)], capture_output=True, text=True)


def test_key_files_are_never_overwritten_and_misuse_is_one_line(tmp_path):
    key = tmp_path / "registry.key"
    assert _cli("keys", "new", "--out", key).returncode == 0
    before = key.read_bytes()
    r = _cli("keys", "new", "--out", key)
    assert r.returncode == 2 and r.stderr.startswith("edge-maas: error:") and "--force" in r.stderr
    assert key.read_bytes() == before
    assert _cli("keys", "new", "--out", key, "--force").returncode == 0 and key.read_bytes() != before
    (tmp_path / "split").mkdir()
    for bad, why in ((tmp_path / "missing.key", "cannot read private key"),
                     (key.with_suffix(".pub"), "is a public key")):  # fmt: skip
        r = _cli("registry", "publish", tmp_path / "split", "--root", tmp_path / "reg", "--key", bad)
        assert r.returncode == 2 and why in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_trust_cli_init_rotate_and_registry_refuses_untrusted_key(tmp_path):
    for n in ("r1", "r2", "rel1", "rel2"):
        assert _cli("keys", "new", "--out", tmp_path / f"{n}.key").returncode == 0
    r = _cli("trust", "init", "--root-key", tmp_path / "r1.key", "--root-key", tmp_path / "r2.key",
             "--root-threshold", "2", "--release-key", tmp_path / "rel1.pub", "--out", tmp_path / "root.json")
    assert r.returncode == 0, r.stderr
    r = _cli("trust", "rotate", tmp_path / "root.json", "--sign-with", tmp_path / "r1.key",
             "--release-key", tmp_path / "rel2.pub", "--out", tmp_path / "root2.json")
    assert r.returncode == 2 and "signed by 1 of the 2 root keys" in r.stderr, r.stderr
    r = _cli("trust", "rotate", tmp_path / "root.json", "--sign-with", tmp_path / "r1.key", "--sign-with",
             tmp_path / "r2.key", "--release-key", tmp_path / "rel2.pub", "--out", tmp_path / "root2.json")
    assert r.returncode == 0, r.stderr
    reg = tmp_path / "reg"
    for f in ("root.json", "root2.json"):
        r = _cli("registry", "root", tmp_path / f, "--root", reg, "--no-publish")
        assert r.returncode == 0, r.stderr
    (tmp_path / "rel1.key").unlink()  # e.g. regenerated by mistake: the registry must not sign with it
    _cli("keys", "new", "--out", tmp_path / "rel1.key", "--force")
    r = _cli("registry", "publish", tmp_path, "--root", reg, "--key", tmp_path / "rel1.key")
    assert r.returncode == 2 and "not a release key of root v2" in r.stderr, r.stderr
