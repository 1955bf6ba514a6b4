"""Topic names, in one place.  Version prefix so a protocol change can coexist."""

PREFIX = "em/v1"


def blob_request() -> str:
    """Devices publish chunk requests here; the registry subscribes."""
    return f"{PREFIX}/registry/blob/get"


def blob_reply(client_id: str) -> str:
    """The registry answers each request on the requester's own reply topic."""
    return f"{PREFIX}/client/{client_id}/blob"
