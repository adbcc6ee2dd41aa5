"""Both ends' sockets: which ZeroMQ socket each side opens for each channel, how it is
configured, and the few calls every reader and writer of them uses (a multipart message in
and out, ZMQ_FD and ZMQ_EVENTS). Clients connect (``client_socket``); kernels bind
(``bind_kernel_socket``) and echo heartbeats (``HeartbeatEcho``). ``HandshakeWatch`` tells
why a connection's handshake failed, which is how a CurveZMQ mismatch shows.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import threading
from typing import TYPE_CHECKING, Any

import zmq

from ...connection import ConnectionInfo
from ...errors import TransportError

if TYPE_CHECKING:
    pass

__all__ = [
    "CLIENT_SOCKET_TYPES",
    "KERNEL_SOCKET_TYPES",
    "MESSAGE_CHANNELS",
    "POLLIN",
    "RECONNECT_MS",
    "STARTUP_RECONNECT_MS",
    "HandshakeWatch",
    "HeartbeatEcho",
    "bind_kernel_socket",
    "client_socket",
    "recv_parts",
    "send_now",
    "send_parts",
    "watched_socket",
    "zmq_events",
    "zmq_fd",
]

log = logging.getLogger("runtimelib.transport")


#: The channels a client transport reads and writes (the heartbeat is separate).
MESSAGE_CHANNELS = ("shell", "control", "stdin", "iopub")

#: The socket a client opens for each channel (PROTOCOL.md, "Sockets and routing").
CLIENT_SOCKET_TYPES = {
    "shell": zmq.DEALER,
    "control": zmq.DEALER,
    "stdin": zmq.DEALER,
    "iopub": zmq.SUB,
    "hb": zmq.REQ,
}

# Bytes of TCP receive buffer asked for on iopub (the OS may cap it: net.core.rmem_max).
_IOPUB_RCVBUF = 8 * 1024 * 1024

# How long closing a socket may wait to flush what was sent (e.g. a last shutdown_request).
_LINGER_MS = 1000


# Plain ints: flag enums cost a call on every test in the hot paths.
POLLIN = int(zmq.POLLIN)
_EVENTS = int(zmq.EVENTS)

#: How soon a client socket retries a refused connection (libzmq's default is 100 ms).
RECONNECT_MS = 10

#: The same for the short-lived sockets that wait for a starting kernel to answer: each
#: millisecond they wait after the kernel binds is start-up time, and they are closed as soon
#: as it is ready, so they never keep retrying against a dead kernel.
STARTUP_RECONNECT_MS = 2


def client_socket(
    info: ConnectionInfo,
    channel: str,
    *,
    session_id: str,
    context: zmq.Context[Any] | None = None,
    reconnect_ms: int = RECONNECT_MS,
    immediate: bool = False,
    connect: bool = True,
) -> zmq.Socket[Any]:
    """A connected client socket for ``channel``, configured as the protocol needs.

    ``immediate`` queues messages only once connected (ZMQ_IMMEDIATE); a negative
    ``reconnect_ms`` never reconnects. ``connect=False`` leaves the connecting to the caller.
    """
    if channel == "heartbeat":
        channel = "hb"
    kind = CLIENT_SOCKET_TYPES.get(channel)
    if kind is None:
        raise ValueError(f"unknown channel {channel!r}")
    ctx = context if context is not None else zmq.Context.instance()
    try:
        sock: zmq.Socket[Any] = ctx.socket(kind)
        sock.linger = _LINGER_MS
        # Clients usually connect before a starting (or restarting) kernel has bound its ports;
        # libzmq's default retry of 100 ms plus up to 100 ms of jitter would then be most of
        # the time to ready. Refused connects on a local port cost next to nothing.
        sock.setsockopt(zmq.RECONNECT_IVL, reconnect_ms)
        if immediate:
            sock.setsockopt(zmq.IMMEDIATE, 1)
        if channel in ("shell", "stdin"):
            # The kernel sends input_request to the identity the execute_request came from;
            # shell and stdin must share one (the session id) or input() cannot be answered.
            sock.identity = session_id.encode()
        if channel == "iopub":
            sock.setsockopt(zmq.SUBSCRIBE, b"")
            # Unlimited receive queue: the I/O thread takes everything the kernel publishes off
            # the wire at once, so the kernel's PUB socket never reaches its high-water mark
            # and never drops output, however slowly the application reads.
            sock.rcvhwm = 0
            # And a deep kernel socket buffer: should this process's I/O thread be starved of
            # CPU for a moment, TCP keeps absorbing output instead of pushing back until the
            # kernel's own send queue fills and drops messages.
            sock.rcvbuf = _IOPUB_RCVBUF
        if channel == "hb":
            # After a missed beat a plain REQ socket refuses to send again; relaxed, it may.
            sock.setsockopt(zmq.REQ_RELAXED, 1)
            sock.setsockopt(zmq.REQ_CORRELATE, 1)
        if info.curve_public_key:
            public, secret = zmq.curve_keypair()
            sock.curve_serverkey = info.curve_public_key.encode("ascii")
            sock.curve_publickey = public
            sock.curve_secretkey = secret
        if connect:
            sock.connect(info.endpoint(channel))
    except zmq.ZMQError as exc:
        raise TransportError(f"cannot connect to the {channel} channel: {exc}") from exc
    return sock


def watched_socket(
    info: ConnectionInfo, channel: str, **options: Any
) -> tuple[zmq.Socket[Any], HandshakeWatch]:
    """``client_socket``, with a HandshakeWatch attached before it connects: a mismatch of
    mechanisms ends a connection for good (libzmq does not retry it), so a watch attached
    after the connect could miss the one failure there will ever be."""
    sock = client_socket(info, channel, **options, connect=False)
    endpoint = info.endpoint(channel)
    watch = HandshakeWatch(sock, endpoint, encrypted=info.encrypted)
    try:
        sock.connect(endpoint)
    except zmq.ZMQError as exc:
        watch.close()
        sock.close(0)
        raise TransportError(f"cannot connect to the {channel} channel: {exc}") from exc
    return sock, watch


def zmq_fd(sock: zmq.Socket[Any]) -> int:
    """The socket's edge-triggered notification descriptor (ZMQ_FD)."""
    fd: int = sock.getsockopt(zmq.FD)  # type: ignore[assignment]
    return fd


def recv_parts(sock: zmq.Socket[Any], flags: int = 0) -> list[bytes]:
    """One multipart message as bytes (``recv_multipart``, without its per-frame RCVMORE
    option lookups, which cost more than the frame during a flood).
    """
    frame = sock.recv(flags, copy=False)
    parts = [frame.bytes]
    while frame.more:
        frame = sock.recv(flags, copy=False)
        parts.append(frame.bytes)
    return parts


def zmq_events(sock: zmq.Socket[Any]) -> int:
    """What the socket can do now (ZMQ_EVENTS); reading it re-arms ZMQ_FD."""
    events: int = sock.get(_EVENTS)  # type: ignore[assignment]
    return events


#: Frames at least this big are sent without a copy; smaller ones are cheaper to copy than to
#: wrap in a zero-copy frame (pyzmq's own default threshold).
_ZERO_COPY_BYTES = 65536


def send_parts(sock: zmq.Socket[Any], frames: list[Any], flags: int = 0) -> None:
    """Send one multipart message, copying small frames (a message of only small frames,
    the usual request, goes out about a third faster than with ``copy=False``)."""
    copy = max(map(len, frames)) < _ZERO_COPY_BYTES
    sock.send_multipart(frames, flags, copy=copy)


def send_now(sock: zmq.Socket[Any], frames: list[Any], channel: str) -> bool:
    """Send without waiting; False (nothing sent) if the socket cannot take it now, and
    TransportError if it cannot send at all."""
    try:
        send_parts(sock, frames, zmq.NOBLOCK)
    except zmq.Again:
        return False
    except zmq.ZMQError as exc:
        raise TransportError(f"cannot send on the {channel} channel: {exc}") from exc
    return True


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

    def __init__(self, socket: zmq.Socket[Any]) -> None:
        """``socket``: the bound hb socket (``bind_kernel_socket(info, "hb")``)."""
        super().__init__(name="runtimelib-heartbeat", daemon=True)
        self.socket = socket

    def run(self) -> None:
        # A ROUTER that is both ends of a queue device sends every message back to its sender.
        # It runs until the context is terminated (the kernel's close).
        try:
            with contextlib.suppress(zmq.ZMQError):
                zmq.proxy(self.socket, self.socket)
        finally:
            self.socket.close(linger=0)


_WATCHES = itertools.count()
_MISMATCH = getattr(zmq, "PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH", None)
#: How many handshakes in a row must fail without detail before it counts as a refusal.
_REFUSALS = 3
#: How long the plain probe waits for the kernel's handshake.
_PROBE_MS = 1000
#: The first two bytes of a monitor event frame for a successful handshake (little endian).
_SUCCEEDED = zmq.EVENT_HANDSHAKE_SUCCEEDED.to_bytes(2, "little")


def _monitor(sock: zmq.Socket[Any], events: int) -> zmq.Socket[Any]:
    """A socket that receives ``sock``'s monitor events."""
    address = f"inproc://runtimelib-handshake-{next(_WATCHES)}"
    sock.monitor(address, events)
    receiver: zmq.Socket[Any] = sock.context.socket(zmq.PAIR)
    receiver.connect(address)
    return receiver


_HANDSHAKE_EVENTS = (
    zmq.EVENT_HANDSHAKE_SUCCEEDED
    | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
    | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
    | zmq.EVENT_HANDSHAKE_FAILED_AUTH
)


class HandshakeWatch:
    """Watches a client socket's ZMTP handshakes (socket monitor events) and says why one
    failed. A CurveZMQ mismatch never shows otherwise: the socket just retries, and a request
    waits until its timeout.

    - The kernel is plain and we encrypt (a spec that claims "curve" for a kernel that does
      not do it), or the other way round: the security mechanisms differ.
    - Both encrypt, with another server key (a stale connection file): the kernel cannot open
      our hello, and the handshake fails without detail.
    """

    def __init__(self, sock: zmq.Socket[Any], endpoint: str, *, encrypted: bool) -> None:
        """Watch ``sock``, about to connect to ``endpoint`` (see ``watched_socket``)."""
        self._sock = sock
        self._endpoint = endpoint
        self._encrypted = encrypted
        #: Whether a handshake succeeded (later failures are reconnections, not mismatches).
        self.succeeded = False
        self._unexplained = 0
        self._events = _monitor(sock, _HANDSHAKE_EVENTS)

    def failure(self) -> str | None:
        """Why the handshake failed, if it did (reads the events that arrived, never waits,
        except for a probe that tells a plain kernel from a key that does not match)."""
        from zmq.utils.monitor import parse_monitor_message

        while self._events.poll(0):
            event = parse_monitor_message(self._events.recv_multipart())
            kind, value = event["event"], event["value"]
            if kind == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                self.succeeded = True
            elif not self.succeeded:
                if kind == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL and value == _MISMATCH:
                    return self._explain(plain_kernel=self._encrypted)
                # A connection cut during a kernel's start fails without detail too: only a
                # failure that repeats is a refusal.
                self._unexplained += 1
                if self._unexplained >= _REFUSALS:
                    return self._explain(plain_kernel=self._encrypted and self._plain_answers())
        return None

    def _plain_answers(self) -> bool:
        """Whether the kernel completes a handshake without encryption (a short probe)."""
        probe: zmq.Socket[Any] = self._sock.context.socket(zmq.DEALER)
        probe.linger = 0
        events = _monitor(probe, _HANDSHAKE_EVENTS)
        try:
            probe.connect(self._endpoint)
            if events.poll(_PROBE_MS):
                return bool(events.recv_multipart()[0][:2] == _SUCCEEDED)
            return False
        finally:
            with contextlib.suppress(zmq.ZMQError):
                probe.disable_monitor()
            events.close(0)
            probe.close(0)

    def _explain(self, *, plain_kernel: bool) -> str:
        if plain_kernel:
            return (
                "the kernel does not speak CurveZMQ, though its connection info has keys"
                " (its kernelspec claims 'curve' in metadata.supported_encryption?)"
            )
        if not self._encrypted:
            return "the kernel is encrypted (CurveZMQ) and this connection info has no keys"
        return (
            "the kernel refused the CurveZMQ handshake: its key is not the one in the"
            " connection info (a stale connection file?)"
        )

    def close(self) -> None:
        with contextlib.suppress(zmq.ZMQError):
            self._sock.disable_monitor()
        self._events.close(0)
