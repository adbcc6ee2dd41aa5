"""The kernel's side of the wire: bound sockets, the JEP 65 iopub, the heartbeat echo."""

from __future__ import annotations

import contextlib
import threading
from typing import Any

import zmq

from ..connection import ConnectionInfo
from ..errors import TransportError

__all__ = ["KERNEL_SOCKET_TYPES", "HeartbeatEcho", "bind_kernel_socket"]

#: The socket a kernel binds for each channel (PROTOCOL.md, "Sockets and routing"). iopub is
#: an XPUB so that subscriptions reach the kernel, which answers each with iopub_welcome.
KERNEL_SOCKET_TYPES = {
    "shell": zmq.ROUTER,
    "control": zmq.ROUTER,
    "stdin": zmq.ROUTER,
    "iopub": zmq.XPUB,
    "hb": zmq.ROUTER,
}


def bind_kernel_socket(
    info: ConnectionInfo, channel: str, context: zmq.Context[Any] | None = None
) -> zmq.Socket[Any]:
    """A socket bound to ``channel``'s endpoint, configured for the kernel side."""
    ctx = context if context is not None else zmq.Context.instance()
    try:
        sock: zmq.Socket[Any] = ctx.socket(KERNEL_SOCKET_TYPES[channel])
        sock.linger = 1000
        if channel == "iopub":
            # Every subscription is reported, even a repeated one, so each new client is
            # welcomed; and output is never dropped for a slow client before the kernel's
            # memory is at stake.
            sock.setsockopt(zmq.XPUB_VERBOSE, 1)
            sock.sndhwm = 0
        if channel in ("shell", "control", "stdin"):
            # A client that reconnects with the same identity takes over its route.
            sock.setsockopt(zmq.ROUTER_HANDOVER, 1)
        if info.curve_secret_key:
            sock.curve_secretkey = info.curve_secret_key.encode("ascii")
            sock.curve_publickey = (info.curve_public_key or "").encode("ascii")
            sock.curve_server = True
        sock.bind(info.endpoint(channel))
    except zmq.ZMQError as exc:
        raise TransportError(f"cannot bind the {channel} channel: {exc}") from exc
    return sock


class HeartbeatEcho(threading.Thread):
    """Echoes heartbeats from a thread of its own, in C, so a busy kernel still answers."""

    def __init__(self, info: ConnectionInfo, context: zmq.Context[Any] | None = None) -> None:
        super().__init__(name="runtimelib-heartbeat", daemon=True)
        self.socket = bind_kernel_socket(info, "hb", context)

    def run(self) -> None:
        # A ROUTER that is both ends of a queue device sends every message back to its sender.
        # It runs until the context is terminated (the kernel's close).
        try:
            with contextlib.suppress(zmq.ZMQError):
                zmq.proxy(self.socket, self.socket)
        finally:
            self.socket.close(linger=0)
