"""The startup handshake's sockets (JEP 66): the launcher's registration socket, and the
kernel's report of the ports it bound. The messages themselves are in
``protocol/registration.py``.

Why a launcher asks for it: with ports picked for it, a kernel binds them a moment after they
were found free, and anything on the machine can take one in between ("Address already in
use"). A kernel that binds ports of its own choosing cannot lose them.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

import zmq

from ...connection import CHANNELS, ConnectionInfo, zmq_endpoint
from ...errors import RemoteProtocolError, TransportError
from ...protocol.registration import (
    acknowledgement,
    check_acknowledgement,
    read_registration,
    registration,
)
from ...protocol.signing import Signer
from .sockets import bind_kernel_socket

__all__ = [
    "REGISTRATION_ACK_SECONDS",
    "RegistrationSocket",
    "bind_own_ports",
    "bound_port",
    "register",
]

log = logging.getLogger("runtimelib.transport")

#: How long a kernel waits for the launcher's acknowledgement before it gives up (and exits:
#: a launcher that does not answer is gone, and nobody would ever connect).
REGISTRATION_ACK_SECONDS = 30.0


class RegistrationSocket:
    """The launcher's side: a ROUTER on a port of the OS's choosing, for one kernel.

    ``receive`` reads what arrived and returns the kernel's ports once a valid registration
    came (answering it); anything else (a bad signature, another kernel's id, garbage) is
    logged and dropped, and the wait goes on: only the kernel that has the key can register.
    """

    def __init__(self, info: ConnectionInfo, kernel_id: str, context: zmq.Context[Any]) -> None:
        self.kernel_id = kernel_id
        self._signer = Signer(info.key_bytes, info.signature_scheme)
        self.socket: zmq.Socket[Any] = context.socket(zmq.ROUTER)
        self.socket.linger = 1000  # the acknowledgement must leave before the close
        try:
            self.socket.bind(zmq_endpoint("tcp", info.ip, 0))  # the OS picks the port
            self.port = bound_port(self.socket)
        except zmq.ZMQError as exc:
            self.socket.close(0)
            raise TransportError(f"cannot open the registration socket: {exc}") from exc

    def receive(self) -> dict[str, int] | None:
        """The ports of the kernel, if its registration has arrived (never waits)."""
        while True:
            try:
                frames = self.socket.recv_multipart(zmq.NOBLOCK, copy=True)
            except zmq.Again:
                return None
            if len(frames) < 2:
                continue
            identity, rest = frames[0], frames[1:]
            try:
                ports = read_registration(rest, self._signer, self.kernel_id)
            except RemoteProtocolError as exc:
                log.warning("kernel %s: ignored a registration: %s", self.kernel_id, exc)
                continue
            with contextlib.suppress(zmq.ZMQError):
                self.socket.send_multipart([identity, *acknowledgement(self._signer)])
            return ports

    def close(self) -> None:
        self.socket.close()


def bound_port(sock: zmq.Socket[Any]) -> int:
    """The port a socket bound (for ipc, its path's numeric suffix)."""
    endpoint = sock.getsockopt_string(zmq.LAST_ENDPOINT)
    return int(endpoint.rsplit("-" if endpoint.startswith("ipc://") else ":", 1)[1])


def bind_own_ports(
    info: ConnectionInfo, context: zmq.Context[Any]
) -> tuple[ConnectionInfo, dict[str, zmq.Socket[Any]]]:
    """The kernel's side, first step: bind the five channels on ports of its own (tcp: the
    OS picks; ipc: suffixes 1 to 5 of the launcher's path prefix, which is the kernel's own).
    Returns the connection info with those ports, and the sockets."""
    if info.transport == "ipc":
        info = info.registered({channel: n for n, channel in enumerate(CHANNELS, 1)})
    sockets: dict[str, zmq.Socket[Any]] = {}
    ports: dict[str, int] = {}
    try:
        for channel in CHANNELS:
            sock = bind_kernel_socket(info, channel, context)
            sockets[channel] = sock
            ports[channel] = bound_port(sock)
    except BaseException:
        for sock in sockets.values():
            sock.close(0)
        raise
    return info.registered(ports), sockets


def register(
    info: ConnectionInfo,
    kernel_id: str,
    endpoint: str,
    context: zmq.Context[Any],
    timeout: float = REGISTRATION_ACK_SECONDS,
) -> None:
    """The kernel's side, second step: report the bound ports to the launcher and wait for
    its acknowledgement. TransportError if none comes in ``timeout`` seconds or it is not
    signed with the kernel's key."""
    signer = Signer(info.key_bytes, info.signature_scheme)
    sock: zmq.Socket[Any] = context.socket(zmq.DEALER)
    sock.linger = 0
    try:
        sock.connect(endpoint)
        sock.send_multipart(registration(signer, kernel_id, info.ports))
        if not sock.poll(int(timeout * 1000)):
            raise TransportError(f"no acknowledgement from {endpoint} in {timeout:g} s")
        try:
            check_acknowledgement(sock.recv_multipart(), signer)
        except RemoteProtocolError as exc:
            raise TransportError(f"registration at {endpoint}: {exc}") from exc
    finally:
        sock.close()
