"""systemd's notify protocol (sd_notify(3)) with the standard library: readiness, watchdog, stopping.

Under a unit with ``Type=notify`` systemd sets ``$NOTIFY_SOCKET`` (a path, or ``@name`` for Linux's
abstract namespace) and, with ``WatchdogSec=``, ``$WATCHDOG_USEC`` (and ``$WATCHDOG_PID``).  Outside
systemd, or on platforms without AF_UNIX, every call here does nothing.  No dependency: the protocol is
one datagram of ``KEY=VALUE`` lines, which the ``sdnotify`` package would wrap no better.
"""

from __future__ import annotations

import os
import socket

READY = "READY=1"
WATCHDOG = "WATCHDOG=1"
STOPPING = "STOPPING=1"


def notify(state: str) -> bool:
    """Send ``state`` (e.g. READY, WATCHDOG, STOPPING, or "STATUS=...") to the service manager.

    Returns True when a datagram was sent, False when there is no $NOTIFY_SOCKET or sending failed:
    a daemon keeps running without its supervisor's ear (systemd then restarts it on a missed
    watchdog, which is the point), so errors are never raised."""
    addr = os.environ.get("NOTIFY_SOCKET")
    if not addr or not hasattr(socket, "AF_UNIX"):
        return False
    if addr[0] == "@":  # abstract namespace: the name starts with a NUL byte, not '@'
        addr = "\0" + addr[1:]
    elif addr[0] != "/":  # sd_notify accepts only absolute paths and abstract names (vsock is not supported here)
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | getattr(socket, "SOCK_CLOEXEC", 0)) as sock:
            sock.sendto(state.encode(), addr)
        return True
    except OSError:
        return False


def watchdog_interval() -> float | None:
    """Seconds between WATCHDOG pings: half of $WATCHDOG_USEC (as sd_watchdog_enabled(3) advises), or
    None when no watchdog is asked for this process ($WATCHDOG_PID names another one, or a bad value)."""
    pid = os.environ.get("WATCHDOG_PID")
    if pid and pid != str(os.getpid()):  # inherited from a parent that systemd watches: not ours
        return None
    try:
        usec = int(os.environ.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    return usec / 2e6 if usec > 0 else None
