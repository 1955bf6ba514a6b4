"""An in-process MQTT 3.1.1 broker (amqtt) for the demo when no broker URL is given.
Tests and deployments use Mosquitto."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading

from edge_maas.errors import TransportError

log = logging.getLogger(__name__)


class EmbeddedBroker:
    def __init__(self, port: int = 0):
        self.port = port or _free_port()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="embedded-broker", daemon=True)
        self._broker = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self, timeout: float = 10.0) -> EmbeddedBroker:
        try:
            from amqtt.broker import Broker
        except ImportError:
            raise TransportError("no broker URL given and amqtt is not installed: pip install amqtt, "
                                 "or pass --broker mqtt://host:port") from None  # fmt: skip
        for name in ("amqtt", "transitions"):  # their INFO chatter drowns the demo's report
            logging.getLogger(name).setLevel(logging.ERROR)
        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{self.port}", "max_connections": 64}},
            "auth": {"allow-anonymous": True},
            "topic-check": {"enabled": False},
        }
        self._thread.start()

        async def boot():
            self._broker = Broker(config, loop=self._loop)
            await self._broker.start()

        try:
            asyncio.run_coroutine_threadsafe(boot(), self._loop).result(timeout)
        except Exception as exc:
            raise TransportError(f"the embedded broker did not start: {exc}") from None
        log.info("embedded amqtt broker on %s", self.url)
        return self

    def stop(self) -> None:
        if self._broker is not None:
            try:
                asyncio.run_coroutine_threadsafe(self._broker.shutdown(), self._loop).result(10)
            except Exception:  # shutting down anyway
                log.debug("embedded broker shutdown raised", exc_info=True)
        self._loop.call_soon_threadsafe(self._loop.stop)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
