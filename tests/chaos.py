"""Fault injection for the soak test: a TCP proxy on loopback whose links can be cut."""

from __future__ import annotations

import socket
import threading

from edge_maas.transport.local_broker import free_port


class CuttableProxy:
    """127.0.0.1:<port> -> 127.0.0.1:<target>; cut() drops every open connection at once (the
    clients see a dead link and reconnect through the proxy)."""

    def __init__(self, target_port: int):
        self.target = target_port
        self.port = free_port()
        self.cuts = 0
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._srv = socket.create_server(("127.0.0.1", self.port))
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def _accept(self):
        while not self._closed:
            try:
                c, _ = self._srv.accept()
            except OSError:
                return
            try:
                u = socket.create_connection(("127.0.0.1", self.target), timeout=2)
            except OSError:  # broker down: the client retries
                c.close()
                continue
            # the connect timeout stays on the socket: a broker quiet for 2 s would read as a dead link and the
            # proxy would cut links on its own, outside the test's plan (an idle MQTT link is quiet for up to
            # its keepalive)
            u.settimeout(None)
            with self._lock:
                self._conns += [c, u]
            for a, b in ((c, u), (u, c)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket):
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        _drop(src, dst)

    def cut(self):
        with self._lock:
            conns, self._conns = self._conns, []
            self.cuts += 1
        _drop(*conns)

    def close(self):
        self._closed = True
        self._srv.close()
        self.cut()


def _drop(*socks: socket.socket) -> None:
    """Close now, both directions (the peer sees the link die, not a polite FIN after a drain)."""
    for s in socks:
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        s.close()
