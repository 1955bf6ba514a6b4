"""edge_maas: model-as-a-service runtime for the edge."""

__version__ = "0.1.0"


def __getattr__(name: str):
    """``edge_maas.Client`` and ``edge_maas.AsyncClient`` (the SDK, docs/sdk.md), imported on first use: the CLI and
    the daemons start without loading the SDK's dependencies."""
    if name in ("Client", "AsyncClient"):
        from edge_maas import client

        return getattr(client, name)
    raise AttributeError(f"module 'edge_maas' has no attribute {name!r}")


__all__ = ["AsyncClient", "Client", "__version__"]
