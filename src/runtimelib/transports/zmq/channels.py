"""One channel of a kernel as a socket that sends and receives typed messages, async
(anyio) and blocking; the heartbeat; the farewell a restart sends to the old kernel alone;
and what both transports share (their settings, the handling of a message that cannot be
read). Nothing here reads in the background: the transports (asynchronous.py, blocking.py)
do.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel
import zmq

from ...connection import ConnectionInfo
from ...errors import KernelDiedError, KernelTimeoutError, RemoteProtocolError, TransportError
from ...messages import Content, Message
from ...protocol import Session
from ..base import Deliver
from .sockets import (
    POLLIN,
    RECONNECT_MS,
    HandshakeWatch,
    client_socket,
    recv_parts,
    send_now,
    send_parts,
    watched_socket,
    zmq_events,
    zmq_fd,
)

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = [
    "AsyncChannel",
    "AsyncHeartbeat",
    "Beats",
    "Channel",
    "Farewell",
    "Heartbeat",
    "ZmqSettings",
    "unreadable",
]

log = logging.getLogger("runtimelib.transport")


class _ChannelBase:
    """What both channel twins share: the socket, the codec and the channel name."""

    def __init__(self, socket: zmq.Socket[Any], session: Session, channel: str) -> None:
        self.socket = socket
        self.session = session
        self.channel = channel
        self._waits: list[anyio.CancelScope] = []

    @classmethod
    def connect(
        cls,
        info: ConnectionInfo,
        channel: str,
        *,
        session: Session | None = None,
        context: zmq.Context[Any] | None = None,
        reconnect_ms: int = RECONNECT_MS,
    ) -> Self:
        """Connect to ``channel`` of the kernel described by ``info``."""
        session = session if session is not None else Session(info.key_bytes, info.signature_scheme)
        sock = client_socket(
            info, channel, session_id=session.session_id, context=context, reconnect_ms=reconnect_ms
        )
        return cls(sock, session, channel)

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

    async def _readable(self) -> None:
        # The socket's file descriptor is edge-triggered and signals "something changed";
        # only ZMQ_EVENTS tells what, and reading it re-arms the descriptor.
        sock = self.socket
        fd = zmq_fd(sock)
        try:
            while not zmq_events(sock) & POLLIN:
                with anyio.CancelScope() as scope:
                    self._waits.append(scope)
                    try:
                        await anyio.wait_readable(fd)
                    finally:
                        self._waits.remove(scope)
        except zmq.ZMQError as exc:
            raise TransportError(f"{self.channel} channel failed: {exc}") from exc

    async def send(self, message: Message[Any]) -> None:
        """Sign and send a message (waiting while the socket's send queue is full)."""
        frames = self.session.serialize(message)
        delay = 0.0005
        while not self._send_frames(frames):
            # The queue to the kernel is full (a thousand messages it has not read): rare, so
            # look again after a growing pause rather than compete with readers for the
            # socket's descriptor.
            await anyio.sleep(delay)
            delay = min(delay * 2, 0.05)

    def _send_frames(self, frames: list[Any]) -> bool:
        if not send_now(self.socket, frames, self.channel):
            return False
        self._nudge()
        return True

    def _nudge(self) -> None:
        # A send processes the socket's pending events and can swallow the edge of ZMQ_FD that
        # a waiting reader needs: if a message is ready, wake the waiters to look again.
        if self._waits and zmq_events(self.socket) & POLLIN:
            for scope in self._waits:
                scope.cancel()

    def send_nowait(self, message: Message[Any]) -> bool:
        """Send without waiting; False (nothing sent) if the socket cannot take it right now."""
        return self._send_frames(self.session.serialize(message))

    async def recv_frames(self) -> list[bytes]:
        """The next multipart message as raw frames, unverified."""
        while True:
            # Take what is queued at once; wait (which reads ZMQ_EVENTS, re-arming the
            # descriptor) only when nothing is.
            try:
                return recv_parts(self.socket, zmq.NOBLOCK)
            except zmq.Again:
                await self._readable()
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

    def send(self, message: Message[Any]) -> None:
        """Sign and send a message."""
        try:
            send_parts(self.socket, self.session.serialize(message))
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
            return recv_parts(self.socket)
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
    def __init__(
        self, info: ConnectionInfo, context: zmq.Context[Any] | None = None, *, watch: bool = False
    ) -> None:
        """``watch``: keep a HandshakeWatch of the connection (``handshake``)."""
        self.handshake: HandshakeWatch | None = None
        if watch:
            self.socket, self.handshake = watched_socket(info, "hb", session_id="", context=context)
        else:
            self.socket = client_socket(info, "hb", session_id="", context=context)

    def close(self) -> None:
        """Close the socket."""
        if self.handshake is not None:
            self.handshake.close()
        self.socket.close(linger=0)


class AsyncHeartbeat(_HeartbeatBase):
    """The heartbeat channel: the kernel echoes what we send while it is alive."""

    async def ping(self, timeout: float = 1.0) -> bool:
        """Whether the kernel echoed a beat within ``timeout`` seconds."""
        sock = self.socket
        payload = b"ping"
        fd = zmq_fd(sock)
        with anyio.move_on_after(timeout):
            sock.send(payload, zmq.NOBLOCK)
            while True:
                while not zmq_events(sock) & POLLIN:
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


class Beats:
    """The heartbeat rule, one for both transports: ``misses`` unanswered pings in a row mean
    the kernel is dead; an answer after that means it is back (sans-IO)."""

    def __init__(self, misses: int) -> None:
        self.limit = misses
        self.misses = 0

    def answered(self) -> bool:
        """A ping was answered; True if the kernel had been given up for dead."""
        back = self.misses >= self.limit
        self.misses = 0
        return back

    def missed(self) -> KernelDiedError | None:
        """A ping went unanswered; the error to fail with, when this miss is the one that
        makes the kernel dead."""
        self.misses += 1
        if self.misses == self.limit:
            return KernelDiedError(f"the kernel missed {self.misses} heartbeats in a row")
        return None


class Farewell:
    """Control messages for the kernel that listens on the control port now, and for no kernel
    started on that port after it.

    A restart starts the new kernel on the old one's ports while the old one stops. A plain
    socket keeps what it is given until some kernel listens, and reconnects when one goes away:
    a shutdown_request for the old kernel (gone already, killed by the interrupt sent before
    it, say) would wait for the new one and stop it instead. This socket queues nothing until
    it is connected (ZMQ_IMMEDIATE) and never reconnects; used before the new kernel is
    spawned, the only kernel it can reach is the old one.
    """

    def __init__(self, info: ConnectionInfo, session: Session) -> None:
        self.session = session
        self.socket = client_socket(
            info, "control", session_id=session.session_id, reconnect_ms=-1, immediate=True
        )

    def try_send(self, messages: list[Content]) -> int:
        """Send the messages in order; how many went (fewer while not yet connected)."""
        for sent, content in enumerate(messages):
            frames = self.session.serialize(self.session.message(content, channel="control"))
            if not send_now(self.socket, frames, "control"):
                return sent
        return len(messages)

    def send(self, messages: list[Content], alive: Callable[[], bool], timeout: float) -> bool:
        """Send them all once connected, while ``alive()``, for at most ``timeout`` seconds;
        whether they went. Then close the socket (what went still leaves, to that kernel)."""
        deadline = time.monotonic() + timeout
        try:
            while messages and alive() and time.monotonic() < deadline:
                messages = messages[self.try_send(messages) :]
                if messages:
                    time.sleep(0.002)  # not connected yet
        finally:
            self.close()
        return not messages

    async def send_async(
        self, messages: list[Content], alive: Callable[[], bool], timeout: float
    ) -> bool:
        """``send`` for async code."""
        deadline = anyio.current_time() + timeout
        try:
            while messages and alive() and anyio.current_time() < deadline:
                messages = messages[self.try_send(messages) :]
                if messages:
                    await anyio.sleep(0.002)
        finally:
            self.close()
        return not messages

    def close(self) -> None:
        """Close; what was sent still leaves (the socket lingers), to the old kernel only."""
        self.socket.close()


def unreadable(error: RemoteProtocolError, channel: str, deliver: Deliver) -> None:
    """A received message that cannot be read: the request it answers (when it names one, a
    message too large, say) fails with the error rather than missing an output; anything
    else is dropped and logged (forged, or not a message at all)."""
    if error.parent_id is None:
        log.warning("dropped a malformed message on %s: %s", channel, error)
    else:
        deliver(error)


class ZmqSettings:
    """What both ZeroMQ transports are made from: where, with which session, how to beat."""

    def __init__(
        self,
        info: ConnectionInfo,
        *,
        session: Session | None = None,
        heartbeat_interval: float | None = 1.0,
        heartbeat_misses: int = 5,
    ) -> None:
        self.info = info
        self.session = session or Session(info.key_bytes, info.signature_scheme)
        self.heartbeat_interval = heartbeat_interval
        self.heartbeat_misses = heartbeat_misses
