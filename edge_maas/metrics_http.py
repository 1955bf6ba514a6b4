"""Serving a Prometheus CollectorRegistry over HTTP (GET /metrics), shared by the device, the worker and the registry.

Each daemon keeps its own CollectorRegistry (several daemons in one process, as in tests and the demo, do not clash)
and serves it only when asked (``--metrics-port N``); the device binds 127.0.0.1 by default, the worker and the
registry all interfaces (a Prometheus server or an autoscaler scrapes them from elsewhere)."""

from __future__ import annotations

import logging

from prometheus_client import CollectorRegistry, start_http_server

from edge_maas.errors import TransportError

log = logging.getLogger(__name__)

# seconds: a local stage runs in ~1..100 ms, a device's offload deadline is ~0.5 s (offload.deadline_ms)
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class MetricsServer:
    """GET /metrics of ``registry`` on ``addr:port`` (port 0: any free port; ``port`` is then the one bound), from a
    daemon thread.  ``what`` names the daemon in errors and logs ("worker", "device", "registry").
    TransportError when the port cannot be bound (taken, or privileged)."""

    def __init__(self, registry: CollectorRegistry, port: int, addr: str, what: str):
        try:
            self._server, self._thread = start_http_server(port, addr, registry=registry)
        except OSError as exc:
            raise TransportError(f"cannot serve {what} metrics on {addr}:{port}: {exc.strerror or exc}") from None
        self.addr = addr
        self.port: int = self._server.server_port
        log.info("%s metrics on http://%s:%d/metrics", what, addr, self.port)

    def close(self) -> None:
        """Stop serving and free the port (idempotent)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=5)
            self._server = None


class Endpoint:
    """Base of a daemon's metrics: ``registry`` (a CollectorRegistry, set by the subclass), served on request."""

    what = "edge_maas"  # the daemon, in errors and logs
    default_addr = "127.0.0.1"  # metrics list the fleet: nothing off the host sees them unless asked
    registry: CollectorRegistry
    _server: MetricsServer | None = None

    def serve(self, port: int, addr: str | None = None) -> int:
        """Serve GET /metrics on ``addr:port`` (default_addr; port 0: any free one); returns the port bound.
        TransportError when the port cannot be bound (taken, or privileged)."""
        self._server = MetricsServer(self.registry, port, addr or self.default_addr, self.what)
        return self._server.port

    @property
    def port(self) -> int | None:
        """The port served on, or None when not served."""
        return self._server.port if self._server is not None else None

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
