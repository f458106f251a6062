"""sd_notify without a dependency: READY=1, STATUS=..., WATCHDOG=1 and STOPPING=1.

The unit is `Type=notify`: systemd counts the agent as started only when it says READY=1,
which it does once the first sync is applied and nginx serves it, so units ordered after
edgeagent (and keepalived's health checks) see a synced edge. Outside systemd (no
NOTIFY_SOCKET) every call is a no-op.
"""

from __future__ import annotations

import os
import socket


def notify(*states: str) -> bool:
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):  # abstract namespace socket
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall("\n".join(states).encode())
    except OSError:
        return False
    return True


def watchdog_interval() -> float | None:
    """Half of WatchdogSec when systemd expects pings from this process, else None."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    return int(usec) / 2_000_000
