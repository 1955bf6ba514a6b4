"""Topic names, in one place.  Version prefix so a protocol change can coexist."""

PREFIX = "em/v1"


def blob_request() -> str:
    """Devices publish chunk requests here; the registry subscribes."""
    return f"{PREFIX}/registry/blob/get"


def blob_reply(client_id: str) -> str:
    """The registry answers each request on the requester's own reply topic."""
    return f"{PREFIX}/client/{client_id}/blob"


def desired(device_id: str) -> str:
    """Retained: the version a device should run (written by the registry only)."""
    return f"{PREFIX}/device/{device_id}/desired"


def reported(device_id: str) -> str:
    """Retained: what the device runs, its health and last error (written by the device only)."""
    return f"{PREFIX}/device/{device_id}/reported"


def infer_request(device_id: str) -> str:
    return f"{PREFIX}/device/{device_id}/infer"


def infer_reply(client_id: str) -> str:
    return f"{PREFIX}/client/{client_id}/infer"


def offload(model: str) -> str:
    """Devices publish offload requests for a model's stages here."""
    return f"{PREFIX}/offload/{model}"


def offload_shared(group: str) -> str:
    """Workers subscribe through a shared subscription: each request goes to one worker of the group."""
    return f"$share/{group}/{PREFIX}/offload/+"


def offload_reply(client_id: str) -> str:
    return f"{PREFIX}/client/{client_id}/offload"


def worker_status(name: str) -> str:
    """Retained: a worker's load, batching and per-suffix latency (written by that worker only)."""
    return f"{PREFIX}/worker/{name}/status"


def trust_root(version: int | str) -> str:
    """Retained: root-of-trust metadata version N (written by the registry only); '+' to follow all."""
    return f"{PREFIX}/trust/root/{version}"
