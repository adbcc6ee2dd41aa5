"""ZeroMQ connections to one channel of a kernel, async (anyio) and blocking.

The raw layer: a channel sends and receives typed ``Message``s on one socket of the right
type (spec, "Introduction": DEALER for shell/control/stdin, SUB for iopub, REQ for the
heartbeat), signing and verifying with a shared ``Session``. Clients and proxies are built
on it; nothing here reads in the background.
"""

from __future__ import annotations

import contextlib
from typing import Any

import anyio
import zmq

from ..connection import ConnectionInfo
from ..errors import KernelTimeoutError, TransportError
from ..messages import Content, Message
from ..protocol import Session

__all__ = [
    "CLIENT_SOCKET_TYPES",
    "AsyncChannel",
    "AsyncHeartbeat",
    "Channel",
    "Heartbeat",
    "client_socket",
]

#: The socket a client opens for each channel (PROTOCOL.md, "Sockets and routing").
CLIENT_SOCKET_TYPES = {
    "shell": zmq.DEALER,
    "control": zmq.DEALER,
    "stdin": zmq.DEALER,
    "iopub": zmq.SUB,
    "hb": zmq.REQ,
}

# How long closing a socket may wait to flush what was sent (e.g. a last shutdown_request).
_LINGER_MS = 1000


def client_socket(
    info: ConnectionInfo,
    channel: str,
    *,
    session_id: str,
    context: zmq.Context[Any] | None = None,
) -> zmq.Socket[Any]:
    """A connected client socket for ``channel``, configured as the protocol needs."""
    if channel == "heartbeat":
        channel = "hb"
    kind = CLIENT_SOCKET_TYPES.get(channel)
    if kind is None:
        raise ValueError(f"unknown channel {channel!r}")
    ctx = context if context is not None else zmq.Context.instance()
    try:
        sock: zmq.Socket[Any] = ctx.socket(kind)
        sock.linger = _LINGER_MS
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
        if channel == "hb":
            # After a missed beat a plain REQ socket refuses to send again; relaxed, it may.
            sock.setsockopt(zmq.REQ_RELAXED, 1)
            sock.setsockopt(zmq.REQ_CORRELATE, 1)
        if info.curve_public_key:
            public, secret = zmq.curve_keypair()
            sock.curve_serverkey = info.curve_public_key.encode("ascii")
            sock.curve_publickey = public
            sock.curve_secretkey = secret
        sock.connect(info.endpoint(channel))
    except zmq.ZMQError as exc:
        raise TransportError(f"cannot connect to the {channel} channel: {exc}") from exc
    return sock


def _fd(sock: zmq.Socket[Any]) -> int:
    fd: int = sock.getsockopt(zmq.FD)  # type: ignore[assignment]
    return fd


def _events(sock: zmq.Socket[Any]) -> int:
    events: int = sock.getsockopt(zmq.EVENTS)  # type: ignore[assignment]
    return events


class _ChannelBase:
    """What both channel twins share: the socket, the codec and the channel name."""

    def __init__(self, socket: zmq.Socket[Any], session: Session, channel: str) -> None:
        self.socket = socket
        self.session = session
        self.channel = channel

    @property
    def closed(self) -> bool:
        """Whether the socket is closed."""
        return bool(self.socket.closed)

    def message(
        self, content: Content, parent: Message[Any] | None = None, **kw: Any
    ) -> Message[Any]:
        """A new message from this channel's session, sent on this channel by default."""
        kw.setdefault("channel", self.channel)
        return self.session.message(content, parent, **kw)


class AsyncChannel(_ChannelBase):
    """One kernel channel for asyncio or trio code (through anyio)."""

    @classmethod
    def connect(
        cls,
        info: ConnectionInfo,
        channel: str,
        *,
        session: Session | None = None,
        context: zmq.Context[Any] | None = None,
    ) -> AsyncChannel:
        """Connect to ``channel`` of the kernel described by ``info``."""
        session = session if session is not None else Session(info.key_bytes, info.signature_scheme)
        sock = client_socket(info, channel, session_id=session.session_id, context=context)
        return cls(sock, session, channel)

    async def _wait(self, event: int) -> None:
        # The socket's file descriptor is edge-triggered and signals "something changed";
        # only ZMQ_EVENTS tells what, and reading it re-arms the descriptor.
        sock = self.socket
        fd = _fd(sock)
        try:
            while not _events(sock) & event:
                await anyio.wait_readable(fd)
        except zmq.ZMQError as exc:
            raise TransportError(f"{self.channel} channel failed: {exc}") from exc

    async def send(self, message: Message[Any]) -> None:
        """Sign and send a message."""
        frames = self.session.serialize(message)
        await self._wait(zmq.POLLOUT)
        try:
            self.socket.send_multipart(frames, zmq.NOBLOCK, copy=False)
        except zmq.ZMQError as exc:
            raise TransportError(f"cannot send on the {self.channel} channel: {exc}") from exc

    def send_nowait(self, message: Message[Any]) -> bool:
        """Send without waiting; False (nothing sent) if the socket cannot take it right now."""
        try:
            self.socket.send_multipart(self.session.serialize(message), zmq.NOBLOCK, copy=False)
        except zmq.Again:
            return False
        except zmq.ZMQError as exc:
            raise TransportError(f"cannot send on the {self.channel} channel: {exc}") from exc
        return True

    async def recv_frames(self) -> list[bytes]:
        """The next multipart message as raw frames, unverified."""
        while True:
            await self._wait(zmq.POLLIN)
            try:
                return self.socket.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                continue  # another reader took it first
            except zmq.ZMQError as exc:
                raise TransportError(
                    f"cannot receive on the {self.channel} channel: {exc}"
                ) from exc

    async def recv(self) -> Message[Content]:
        """The next message; a malformed one raises RemoteProtocolError and is dropped."""
        return self.session.deserialize(await self.recv_frames(), channel=self.channel)

    def close(self) -> None:
        """Close the socket (pending sends get up to a second to leave)."""
        self.socket.close()

    async def aclose(self) -> None:
        """Close the socket."""
        self.close()

    async def __aenter__(self) -> AsyncChannel:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()


class Channel(_ChannelBase):
    """One kernel channel for blocking code; no event loop involved."""

    @classmethod
    def connect(
        cls,
        info: ConnectionInfo,
        channel: str,
        *,
        session: Session | None = None,
        context: zmq.Context[Any] | None = None,
    ) -> Channel:
        """Connect to ``channel`` of the kernel described by ``info``."""
        session = session if session is not None else Session(info.key_bytes, info.signature_scheme)
        sock = client_socket(info, channel, session_id=session.session_id, context=context)
        return cls(sock, session, channel)

    def send(self, message: Message[Any]) -> None:
        """Sign and send a message."""
        try:
            self.socket.send_multipart(self.session.serialize(message), copy=False)
        except zmq.ZMQError as exc:
            raise TransportError(f"cannot send on the {self.channel} channel: {exc}") from exc

    def poll(self, timeout: float | None = None) -> bool:
        """Whether a message is ready within ``timeout`` seconds (None: wait for ever)."""
        try:
            return bool(self.socket.poll(None if timeout is None else int(timeout * 1000)))
        except zmq.ZMQError as exc:
            raise TransportError(f"{self.channel} channel failed: {exc}") from exc

    def recv_frames(self, timeout: float | None = None) -> list[bytes]:
        """The next multipart message as raw frames; KernelTimeoutError after ``timeout`` s."""
        if not self.poll(timeout):
            raise KernelTimeoutError(f"no message on the {self.channel} channel in {timeout} s")
        try:
            return self.socket.recv_multipart()
        except zmq.ZMQError as exc:
            raise TransportError(f"cannot receive on the {self.channel} channel: {exc}") from exc

    def recv(self, timeout: float | None = None) -> Message[Content]:
        """The next message; a malformed one raises RemoteProtocolError and is dropped."""
        return self.session.deserialize(self.recv_frames(timeout), channel=self.channel)

    def close(self) -> None:
        """Close the socket (pending sends get up to a second to leave)."""
        self.socket.close()

    def __enter__(self) -> Channel:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class _HeartbeatBase:
    def __init__(self, info: ConnectionInfo, context: zmq.Context[Any] | None = None) -> None:
        self.socket = client_socket(info, "hb", session_id="", context=context)

    def close(self) -> None:
        """Close the socket."""
        self.socket.close(linger=0)


class AsyncHeartbeat(_HeartbeatBase):
    """The heartbeat channel: the kernel echoes what we send while it is alive."""

    async def ping(self, timeout: float = 1.0) -> bool:
        """Whether the kernel echoed a beat within ``timeout`` seconds."""
        sock = self.socket
        payload = b"ping"
        fd = _fd(sock)
        with anyio.move_on_after(timeout):
            sock.send(payload, zmq.NOBLOCK)
            while True:
                while not _events(sock) & zmq.POLLIN:
                    await anyio.wait_readable(fd)
                with contextlib.suppress(zmq.Again):
                    if sock.recv(zmq.NOBLOCK) == payload:
                        return True
        return False

    async def __aenter__(self) -> AsyncHeartbeat:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()


class Heartbeat(_HeartbeatBase):
    """The heartbeat channel for blocking code."""

    def ping(self, timeout: float = 1.0) -> bool:
        """Whether the kernel echoed a beat within ``timeout`` seconds."""
        sock = self.socket
        sock.send(b"ping")
        return bool(sock.poll(int(timeout * 1000))) and sock.recv() == b"ping"

    def __enter__(self) -> Heartbeat:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
