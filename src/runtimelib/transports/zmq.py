"""ZeroMQ connections to one channel of a kernel, async (anyio) and blocking.

The raw layer: a channel sends and receives typed ``Message``s on one socket of the right
type (spec, "Introduction": DEALER for shell/control/stdin, SUB for iopub, REQ for the
heartbeat), signing and verifying with a shared ``Session``. Clients and proxies are built
on it; nothing here reads in the background.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import select
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from types import FrameType
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel
import zmq

from ..connection import ConnectionInfo
from ..errors import KernelDiedError, KernelTimeoutError, RemoteProtocolError, TransportError
from ..messages import Content, Message
from ..protocol import Session
from .base import AsyncTransport, Deliver, Transport

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = [
    "CLIENT_SOCKET_TYPES",
    "STARTUP_RECONNECT_MS",
    "AsyncChannel",
    "AsyncHeartbeat",
    "Channel",
    "Farewell",
    "Heartbeat",
    "ZmqAsyncTransport",
    "ZmqTransport",
    "client_socket",
    "recv_parts",
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


#: Messages the async reader delivers before it lets other tasks run (a flood must not
#: starve the task that collects it).
_ASYNC_BATCH = 256

# Plain ints: flag enums cost a call on every test in the hot paths.
POLLIN = int(zmq.POLLIN)
_EVENTS = int(zmq.EVENTS)

#: How soon a client socket retries a refused connection (libzmq's default is 100 ms).
_RECONNECT_MS = 10

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
    reconnect_ms: int = _RECONNECT_MS,
    immediate: bool = False,
) -> zmq.Socket[Any]:
    """A connected client socket for ``channel``, configured as the protocol needs.

    ``immediate`` queues messages only once connected (ZMQ_IMMEDIATE); a negative
    ``reconnect_ms`` never reconnects.
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
        sock.connect(info.endpoint(channel))
    except zmq.ZMQError as exc:
        raise TransportError(f"cannot connect to the {channel} channel: {exc}") from exc
    return sock


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
        reconnect_ms: int = _RECONNECT_MS,
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
        try:
            send_parts(self.socket, frames, zmq.NOBLOCK)
        except zmq.Again:
            return False
        except zmq.ZMQError as exc:
            raise TransportError(f"cannot send on the {self.channel} channel: {exc}") from exc
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
            try:
                send_parts(self.socket, frames, zmq.NOBLOCK)
            except zmq.Again:
                return sent
            except zmq.ZMQError as exc:
                raise TransportError(f"cannot send on the control channel: {exc}") from exc
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


# -- transports: every channel of one kernel ------------------------------------------------------


#: epoll, where there is one: a descriptor that is readable when any registered one is.
_epoll = getattr(select, "epoll", None)
_EPOLLIN = getattr(select, "EPOLLIN", 1)


def _unreadable(error: RemoteProtocolError, channel: str, deliver: Deliver) -> None:
    """A received message that cannot be read: the request it answers (when it names one, a
    message too large, say) fails with the error rather than missing an output; anything
    else is dropped and logged (forged, or not a message at all)."""
    if error.parent_id is None:
        log.warning("dropped a malformed message on %s: %s", channel, error)
    else:
        deliver(error)


class _Readable:
    """Waits for a descriptor to be readable. On asyncio it stays registered with the loop
    while in use: ``anyio.wait_readable`` registers and unregisters it on every wait, which
    costs two system calls and more Python than the rest of a reply's delivery."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._loop: Any = None
        self._flag: Any = None

    def __enter__(self) -> _Readable:
        import asyncio

        try:
            self._loop = asyncio.get_running_loop()
        except RuntimeError:
            return self  # not asyncio (trio)
        self._flag = asyncio.Event()
        self._loop.add_reader(self.fd, self._flag.set)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._loop is not None:
            self._loop.remove_reader(self.fd)

    async def wait(self) -> None:
        if self._flag is None:
            await anyio.wait_readable(self.fd)
            return
        await self._flag.wait()
        self._flag.clear()


class _Drain:
    """Takes the messages the sockets of an async transport hold and delivers them.

    ZMQ_FD only tells that a socket's state changed, and anything that touches the socket
    (reading ZMQ_EVENTS, a send) may consume that signal. A socket read until it has nothing
    left (``zmq.Again``) is clean: its descriptor will signal the next message. Any other
    socket the reader was told about is marked *dirty* and read before the reader sleeps: one
    whose descriptor signalled, one a send touched while a message was waiting on it
    (``after_send``), one left when a flood used up a batch.
    """

    def __init__(
        self, channels: dict[str, AsyncChannel], session: Session, deliver: Deliver
    ) -> None:
        # iopub first: a reply is delivered after the outputs its kernel sent before it, as
        # far as two sockets can tell.
        order = sorted(channels.items(), key=lambda item: item[0] != "iopub")
        self.names = [name for name, _ in order]
        self.sockets = [channel.socket for _, channel in order]
        self.index = {zmq_fd(sock): i for i, sock in enumerate(self.sockets)}
        self.dirty = [True] * len(order)  # messages may have come before the reader started
        self.session = session
        self.deliver = deliver
        self.running = False
        #: Wakes the reader from outside its loop (set by the loop that sleeps).
        self.wake: Callable[[], None] = lambda: None

    @property
    def pending(self) -> bool:
        """Whether some socket must be read before the reader may sleep."""
        return True in self.dirty

    def mark(self, fd: int) -> None:
        """The descriptor ``fd`` signalled."""
        index = self.index.get(fd)
        if index is not None:
            self.dirty[index] = True

    def run(self, budget: int = _ASYNC_BATCH) -> bool:
        """Deliver what the dirty sockets hold; True if ``budget`` messages ran out first."""
        if self.running:  # a delivery's handler sent a message: the pass in progress goes on
            return False
        self.running = True
        dirty = self.dirty
        try:
            while True in dirty:
                for index, flag in enumerate(dirty):
                    if flag:
                        budget = self._take(index, budget)
                        if budget <= 0:
                            return True
                        dirty[index] = False
            return False
        except zmq.ZMQError as exc:
            raise TransportError(f"cannot receive from the kernel: {exc}") from exc
        finally:
            self.running = False

    def _take(self, index: int, budget: int) -> int:
        """Receive and deliver from one socket until it is empty or ``budget`` runs out."""
        sock, name = self.sockets[index], self.names[index]
        deserialize, deliver = self.session.deserialize, self.deliver
        while budget > 0:
            try:
                frames = recv_parts(sock, zmq.NOBLOCK)
            except zmq.Again:
                return budget
            budget -= 1
            try:
                message = deserialize(frames, channel=name)
            except RemoteProtocolError as exc:
                _unreadable(exc, name, deliver)
                continue
            deliver(message)
        return budget

    def flush(self) -> None:
        """Deliver everything every socket holds, whatever the descriptors said."""
        self.dirty[:] = [True] * len(self.dirty)
        while self.run(budget=1 << 30):
            pass

    def after_send(self, sock: zmq.Socket[Any]) -> None:
        """A message was sent on ``sock``: deliver what arrived on it meanwhile."""
        index = self.sockets.index(sock)
        if self.running:
            self.dirty[index] = True  # the pass in progress reads it before it ends
            return
        self.running = True
        try:
            if not zmq_events(sock) & POLLIN:
                return
            emptied = self._take(index, _ASYNC_BATCH) > 0
        except zmq.ZMQError as exc:
            raise TransportError(f"cannot receive from the kernel: {exc}") from exc
        finally:
            self.running = False
        self.dirty[index] = not emptied
        if not emptied:  # a kernel flooding a reply channel: the reader takes the rest
            self.wake()


class _ZmqSettings:
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


class ZmqAsyncTransport(_ZmqSettings, AsyncTransport):
    """All channels of a kernel over ZeroMQ, for async code; heartbeats tell liveness.

    One task reads every socket (``receive_forever``): it sleeps on a single descriptor that
    stands for all four (an epoll set; elsewhere it waits on each socket in a task of its
    own) and, once woken, takes whatever every socket holds. A send that finds a message
    waiting on its socket delivers it on the spot, because sending can swallow the
    notification the reader sleeps on (see ``_Drain``).
    """

    #: The connected channels by name (empty until connect; replaced, never mutated).
    channels: dict[str, AsyncChannel] = {}  # noqa: RUF012
    _drain: _Drain | None = None

    async def connect(self) -> None:
        """Connect the shell, control, stdin and iopub sockets."""
        self.channels = {
            name: AsyncChannel.connect(self.info, name, session=self.session)
            for name in MESSAGE_CHANNELS
        }

    def _channel(self, message: Message[Any]) -> AsyncChannel:
        try:
            return self.channels[message.channel or "shell"]
        except KeyError:
            raise TransportError(
                f"not connected, or no channel {message.channel!r} to send on"
            ) from None

    async def send(self, message: Message[Any]) -> None:
        """Send a message on its channel."""
        channel = self._channel(message)
        await channel.send(message)
        if self._drain is not None:
            self._drain.after_send(channel.socket)

    def send_nowait(self, message: Message[Any]) -> bool:
        """Send at once if the socket can take it."""
        channel = self._channel(message)
        if not channel.send_nowait(message):
            return False
        if self._drain is not None:
            self._drain.after_send(channel.socket)
        return True

    async def receive_forever(self, deliver: Deliver) -> None:
        """Read every channel, delivering each valid message, until cancelled."""
        drain = _Drain(self.channels, self.session, deliver)
        self._drain = drain
        try:
            if _epoll is None:
                await self._read_each(drain)
                return
            wake_r, wake_w = os.pipe()
            os.set_blocking(wake_r, False)
            os.set_blocking(wake_w, False)

            def wake() -> None:
                with contextlib.suppress(BlockingIOError):
                    os.write(wake_w, b"x")

            drain.wake = wake
            try:
                with _epoll() as ready, _Readable(ready.fileno()) as readable:
                    for fd in (*drain.index, wake_r):
                        ready.register(fd, _EPOLLIN)
                    while True:
                        if not drain.pending:
                            await readable.wait()
                            for fd, _ in ready.poll(0):
                                if fd == wake_r:
                                    with contextlib.suppress(BlockingIOError):
                                        os.read(wake_r, 4096)
                                drain.mark(fd)
                        if drain.run():
                            await anyio.lowlevel.checkpoint()  # more is queued: let others run
            finally:
                os.close(wake_r)
                os.close(wake_w)
        finally:
            self._drain = None

    async def _read_each(self, drain: _Drain) -> None:
        """Without epoll: a task waits on each socket and marks it for the one reader."""
        signalled = anyio.Event()

        async def wait(fd: int, sock: zmq.Socket[Any]) -> None:
            while True:
                await anyio.wait_readable(fd)
                # Reading ZMQ_EVENTS clears the descriptor, so this task does not spin while
                # the reader has yet to run; the socket is marked, so nothing is missed.
                if zmq_events(sock) & POLLIN:
                    drain.mark(fd)
                    signalled.set()

        def wake() -> None:
            signalled.set()

        drain.wake = wake
        async with anyio.create_task_group() as tg:
            for fd, index in drain.index.items():
                tg.start_soon(wait, fd, drain.sockets[index])
            while True:
                if drain.run():
                    await anyio.lowlevel.checkpoint()
                    continue
                if not drain.pending:
                    await signalled.wait()
                    signalled = anyio.Event()

    def fail_after_delivery(
        self, error: BaseException, fail: Callable[[BaseException], None]
    ) -> None:
        """Deliver what the sockets hold now, then ``fail(error)`` (in the loop's thread)."""
        if self._drain is not None:
            self._drain.flush()
        fail(error)

    async def watch(self, dead: Callable[[BaseException], None], alive: Callable[[], None]) -> None:
        """Ping the heartbeat; ``heartbeat_misses`` misses in a row mean the kernel is dead."""
        interval = self.heartbeat_interval
        if not interval:
            await anyio.sleep_forever()
            return
        misses = 0
        async with AsyncHeartbeat(self.info) as heart:
            while True:
                if await heart.ping(interval):
                    if misses >= self.heartbeat_misses:
                        alive()
                    misses = 0
                    await anyio.sleep(interval)
                    continue
                misses += 1
                if misses == self.heartbeat_misses:
                    error = KernelDiedError(f"the kernel missed {misses} heartbeats in a row")
                    self.fail_after_delivery(error, dead)

    async def aclose(self) -> None:
        """Close every socket."""
        channels, self.channels = self.channels, {}
        for channel in channels.values():
            channel.close()


class ZmqTransport(_ZmqSettings, Transport):
    """All channels of a kernel over ZeroMQ, for blocking code.

    The sockets are read continuously, so the kernel never outruns the client: by a thread of
    the transport while nobody waits, and by the waiting caller itself while one does
    (``wait``). A reply then reaches the thread that asked for it without a thread switch,
    and a flood of output is taken off the wire by the thread that collects it. Sends go
    straight out from the caller's thread. The transport's thread also beats the heart.
    """

    _thread: _IOThread | None = None

    def start(
        self,
        deliver: Deliver,
        dead: Callable[[BaseException], None],
        alive: Callable[[], None],
    ) -> None:
        """Connect and start the transport's thread; returns once the sockets are connected."""
        if self._thread is not None:
            return
        thread = _IOThread(self, deliver, dead, alive)
        thread.start()
        thread.started.wait()
        if thread.error is not None:
            raise thread.error
        self._thread = thread

    def send(self, message: Message[Any]) -> None:
        """Sign and send a message on its channel, from the caller's thread."""
        thread = self._thread
        if thread is None:
            raise TransportError("the transport is not started")
        thread.send(message.channel or "shell", self.session.serialize(message))

    def wait(self, event: threading.Event, timeout: float | None) -> bool:
        """Wait for ``event``, reading the sockets meanwhile; False on timeout."""
        thread = self._thread
        if thread is None:
            return event.wait(timeout)
        return thread.wait(event, timeout)

    def fail_after_delivery(
        self, error: BaseException, fail: Callable[[BaseException], None]
    ) -> None:
        """Call ``fail(error)`` from the reader, once it has delivered all the sockets hold."""
        thread = self._thread
        if thread is None:
            fail(error)
        else:
            thread.fail_after_delivery(error, fail)

    def wakeup(self) -> None:
        """Make a waiting caller look at its event again (it was set from elsewhere)."""
        thread = self._thread
        if thread is not None:
            thread.wake_reader()

    def close(self) -> None:
        """Stop the thread, which closes the sockets."""
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.stop()
            thread.join(5)


#: Messages read per batch before delivering them (and letting a deferred Ctrl-C through).
_BATCH = 256

#: How long a waiting reader sleeps at most before looking at its event again.
_WAIT_SLICE = 0.1

#: The transport's thread goes back to reading only once no caller has waited for this long:
#: callers making one request after another read their own replies, and the thread, which
#: would wake for each message just to leave it to them, stays away (it looks again this
#: often while callers read).
_QUIET = 0.01


def _min_ms(poll_ms: int | None, seconds: float) -> int:
    limit = int(seconds * 1000)
    return limit if poll_ms is None else min(poll_ms, limit)


class _HeldSigint:
    """Holds a Ctrl-C back while the main thread reads and delivers a batch.

    A KeyboardInterrupt raised between the frames of a message, or between reading a message
    and delivering it, would lose that message; the handler runs right after the batch
    instead. The holding handler is installed once per wait (``installed``), not per batch:
    setting a signal handler costs more than a small message.
    """

    def __init__(self) -> None:
        self.original: Callable[[int, FrameType | None], Any] | None = None
        self.holding = False
        self.caught: list[FrameType | None] = []

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        """Around a wait: Ctrl-C acts at once, except inside ``held``."""
        original = signal.getsignal(signal.SIGINT)
        if (
            self.original is not None  # nested: already installed
            or threading.current_thread() is not threading.main_thread()
            or not callable(original)  # SIG_DFL or SIG_IGN: nothing runs in Python
        ):
            yield
            return

        def handler(signum: int, frame: FrameType | None) -> None:
            if self.holding:
                self.caught.append(frame)
            else:
                original(signum, frame)

        signal.signal(signal.SIGINT, handler)
        self.original = original
        try:
            yield
        finally:
            self.original = None
            signal.signal(signal.SIGINT, original)

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """Hold Ctrl-C back until the block is done (in the main thread, while installed)."""
        original = self.original
        if original is None or threading.current_thread() is not threading.main_thread():
            yield
            return
        self.holding = True
        try:
            yield
        finally:
            self.holding = False
            if self.caught:
                frame = self.caught[0]
                self.caught.clear()
                original(signal.SIGINT, frame)


class _IOThread(threading.Thread):
    """Owns a ZmqTransport's sockets and decides who reads them.

    One reader at a time (``owner``) drains the message sockets and delivers: a caller
    waiting for its reply, or else this thread. This thread holds the role only while it
    drains, never while it sleeps, so a caller that starts waiting becomes the reader at
    once, with no hand-over; and while callers wait, and for a moment after (``_QUIET``),
    this thread sleeps away from the sockets, on its pipe and the heartbeat only.

    Any thread may send: ``_lock`` serialises every call into the message sockets, and
    readers poll the sockets' descriptors, not the sockets, so they hold no lock while they
    sleep. Deliveries happen outside the lock, so a handler may send (a comm's reply), and
    from one queue, so a handler that waits for a reply (and reads meanwhile) still sees
    the messages in the order they arrived.
    """

    def __init__(
        self,
        transport: ZmqTransport,
        deliver: Deliver,
        dead: Callable[[BaseException], None],
        alive: Callable[[], None],
    ) -> None:
        super().__init__(name="runtimelib-zmq-io", daemon=True)
        self.transport = transport
        self.deliver, self.dead, self.alive = deliver, dead, alive
        # Two pipes: one tells this thread to look at the roles again (or stop), one wakes
        # whoever reads (a send consumed the socket's signal, or an event was set elsewhere).
        # Writing to a pipe is thread-safe, unlike touching a zmq socket from two threads.
        self._wake_r, self._wake_w = os.pipe()
        self._read_r, self._read_w = os.pipe()
        for fd in (self._wake_r, self._read_r):
            os.set_blocking(fd, False)
        self._stopping = False
        self._lock = threading.Lock()
        self._roles = threading.Condition()
        self._owner: int | None = None  # the reading thread's ident
        self._waiting = 0  # callers in wait()
        self._wait_ended = 0.0  # when the last caller stopped waiting (time.monotonic())
        self._sigint = _HeldSigint()
        # Read but not yet delivered: a handler that reads in its delivery takes these first.
        self._undelivered: deque[tuple[str, list[bytes]]] = deque()
        # A failure to deliver once the sockets are empty (see fail_after_delivery).
        self._failure: tuple[BaseException, Callable[[BaseException], None]] | None = None
        # A context of its own: its I/O thread serves only this client, and nothing another
        # client left in a shared context can affect it.
        self.context: zmq.Context[Any] = zmq.Context()
        self.sockets: dict[str, zmq.Socket[Any]] = {}
        self._readers = zmq.Poller()  # the sockets' descriptors, and the reader's pipe
        self.started = threading.Event()
        self.error: BaseException | None = None

    # -- any thread ---------------------------------------------------------------------------

    def wake(self) -> None:
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")

    def wake_reader(self) -> None:
        with contextlib.suppress(OSError):
            os.write(self._read_w, b"x")

    def stop(self) -> None:
        self._stopping = True
        self.wake()
        self.wake_reader()

    def send(self, channel: str, frames: list[Any]) -> None:
        with self._lock:
            sock = self.sockets.get(channel)
            if sock is None or self._stopping:
                raise TransportError(f"no channel {channel!r} to send on")
            try:
                # Never block with the lock held: a full queue means the kernel has not read
                # its channel for a thousand messages.
                send_parts(sock, frames, zmq.NOBLOCK)
            except zmq.Again:
                raise TransportError(f"the kernel is not reading its {channel} channel") from None
            except zmq.ZMQError as exc:
                raise TransportError(f"cannot send on {channel}: {exc}") from exc
            # Sending may consume the signal that a message arrived on this socket; the
            # reader sleeping on the descriptor would then not see it.
            if zmq_events(sock) & POLLIN:
                self.wake_reader()

    def wait(self, event: threading.Event, timeout: float | None) -> bool:
        """Wait for ``event``, as the reader when no other caller reads."""
        if event.is_set():
            return True
        deadline = math.inf if timeout is None else time.monotonic() + timeout
        me = threading.get_ident()
        with self._roles:
            nested = self._owner == me  # a delivery's handler waits for a reply
            if not nested:
                self._waiting += 1
        try:
            with self._sigint.installed():
                return self._wait_for(event, deadline, nested)
        finally:
            if not nested:
                with self._roles:
                    self._waiting -= 1
                    self._wait_ended = time.monotonic()

    def _wait_for(self, event: threading.Event, deadline: float, nested: bool) -> bool:
        while not event.is_set():
            if self._stopping:  # the sockets are going: only the event is left
                left = None if deadline == math.inf else max(deadline - time.monotonic(), 0)
                return event.wait(left)
            if time.monotonic() >= deadline:
                return False
            if nested:
                self._read_until(event.is_set, deadline)
            elif self._take_reading(event, deadline):
                try:
                    self._read_until(event.is_set, deadline)
                finally:
                    self._let_go()
        return True

    def fail_after_delivery(
        self, error: BaseException, fail: Callable[[BaseException], None]
    ) -> None:
        """Leave ``fail(error)`` to whoever reads: it runs once a drain finds the sockets
        empty, so everything received before it is delivered first."""
        if self._stopping or not self.is_alive():
            fail(error)
            return
        self._failure = (error, fail)
        self.wake()
        self.wake_reader()

    # -- readers ------------------------------------------------------------------------------

    def _take_reading(self, event: threading.Event, deadline: float) -> bool:
        """Become the reader (another waiting caller, or this thread for one drain, may be);
        False if ``event`` was set, the time ran out or the transport stops first."""
        me = threading.get_ident()
        with self._roles:
            while self._owner not in (None, me):
                if event.is_set() or self._stopping:
                    return False
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                # The reader notifies after each delivery; the slice bounds a missed one.
                self._roles.wait(min(left, _WAIT_SLICE))
            if event.is_set():
                return False
            self._owner = me
            return True

    def _let_go(self) -> None:
        with self._roles:
            self._owner = None
            if self._waiting:
                self._roles.notify_all()

    def _read_until(self, done: Callable[[], bool], deadline: float) -> None:
        """Drain and deliver until ``done()``, the deadline or a stop (as the reader)."""
        while not done() and not self._stopping:
            if self._drain():
                continue  # more may be queued: the descriptor will not signal it again
            if done():
                return
            left = deadline - time.monotonic()
            if left <= 0:
                return
            for item, _ in self._readers.poll(int(min(left, _WAIT_SLICE) * 1000) + 1):
                if item == self._read_r:
                    with contextlib.suppress(BlockingIOError):
                        os.read(self._read_r, 65536)

    def _drain(self) -> bool:
        """Read what the sockets hold (iopub first, so a reply follows the outputs sent
        before it, as far as two sockets allow) and deliver it; True if a batch filled."""
        pending = self._undelivered
        with self._lock:
            ready = [(n, sock) for n, sock in self.sockets.items() if zmq_events(sock) & POLLIN]
        if not ready and not pending:
            failure, self._failure = self._failure, None
            if failure is not None:
                failure[1](failure[0])  # everything received before it was delivered
            return False
        taken = 0
        with self._sigint.held():
            with self._lock:
                for name, sock in ready:
                    while taken < _BATCH:
                        try:
                            pending.append((name, recv_parts(sock, zmq.NOBLOCK)))
                        except zmq.Again:
                            break
                        except zmq.ZMQError as exc:  # closed under us: we are stopping
                            log.debug("cannot read %s: %s", name, exc)
                            return False
                        taken += 1
            session, deliver = self.transport.session, self.deliver
            while pending:
                name, frames = pending.popleft()
                try:
                    message = session.deserialize(frames, channel=name)
                except RemoteProtocolError as exc:
                    _unreadable(exc, name, deliver)
                    continue
                deliver(message)
        if self._waiting > 1:
            with self._roles:  # other waiting callers look at their events again
                self._roles.notify_all()
        return taken >= _BATCH

    # -- this thread --------------------------------------------------------------------------

    def run(self) -> None:
        transport = self.transport
        try:
            # iopub first: _drain reads in this order.
            sockets = {
                name: client_socket(
                    transport.info,
                    name,
                    session_id=transport.session.session_id,
                    context=self.context,
                )
                for name in ("iopub", "shell", "control", "stdin")
            }
        except TransportError as exc:
            self.error = exc
            self.started.set()
            return
        self.sockets = sockets
        for sock in sockets.values():
            self._readers.register(sock.getsockopt(zmq.FD), zmq.POLLIN)
        self._readers.register(self._read_r, zmq.POLLIN)
        away = zmq.Poller()  # while callers read: the heart and the wake pipe only
        away.register(self._wake_r, zmq.POLLIN)
        heart = _HeartWatch(self, away)
        reading = zmq.Poller()  # while this thread reads: the same, and the sockets
        for fd, _ in self._readers.sockets:
            reading.register(fd, zmq.POLLIN)
        reading.register(self._wake_r, zmq.POLLIN)
        if heart.socket is not None:
            reading.register(heart.socket, zmq.POLLIN)
        me = threading.get_ident()
        self.started.set()
        try:
            while not self._stopping:
                with self._roles:
                    mine = (
                        self._waiting == 0
                        and self._owner is None
                        and time.monotonic() - self._wait_ended >= _QUIET
                    )
                    if mine:
                        self._owner = me
                if mine:
                    try:
                        more = self._drain()
                    finally:
                        self._let_go()
                    if more:
                        continue
                    ready = reading.poll(heart.poll_ms())
                else:
                    ready = away.poll(_min_ms(heart.poll_ms(), _QUIET))
                for item, _ in ready:
                    if item == self._wake_r:
                        with contextlib.suppress(BlockingIOError):
                            os.read(self._wake_r, 65536)
                    elif item == self._read_r:
                        with contextlib.suppress(BlockingIOError):
                            os.read(self._read_r, 65536)
                    elif item is heart.socket:
                        heart.on_beat()
                heart.tick()
        finally:
            heart.close()
            with self._roles:  # a reading caller sees _stopping and lets go
                while self._owner not in (None, me):
                    self._roles.wait(_WAIT_SLICE)
                self._owner = me
            with self._lock:
                self.sockets = {}
                for sock in sockets.values():
                    sock.close(linger=500)
            self.context.term()
            for fd in (self._wake_r, self._wake_w, self._read_r, self._read_w):
                os.close(fd)


class _HeartWatch:
    """Heartbeats as seen from the I/O thread: ping every interval, count misses."""

    def __init__(self, thread: _IOThread, poller: zmq.Poller) -> None:
        transport = thread.transport
        self.thread = thread
        self.interval = transport.heartbeat_interval
        self.limit = transport.heartbeat_misses
        self.socket: zmq.Socket[Any] | None = None
        self.misses = 0
        self.waiting = False
        self.next_at = time.monotonic()
        if self.interval:
            self.socket = client_socket(transport.info, "hb", session_id="", context=thread.context)
            poller.register(self.socket, zmq.POLLIN)

    def poll_ms(self) -> int | None:
        if self.socket is None:
            return None
        return max(0, int((self.next_at - time.monotonic()) * 1000))

    def on_beat(self) -> None:
        assert self.socket is not None
        with contextlib.suppress(zmq.Again):
            self.socket.recv(zmq.NOBLOCK)
        if self.misses >= self.limit:
            self.thread.alive()
        self.misses = 0
        self.waiting = False

    def tick(self) -> None:
        if self.socket is None or self.interval is None:
            return
        now = time.monotonic()
        if now < self.next_at:
            return
        if self.waiting:  # the last beat was not answered within the interval
            self.misses += 1
            if self.misses == self.limit:
                # What it sent before falling silent goes first.
                self.thread.fail_after_delivery(
                    KernelDiedError(f"the kernel missed {self.misses} heartbeats in a row"),
                    self.thread.dead,
                )
        with contextlib.suppress(zmq.ZMQError):
            self.socket.send(b"ping", zmq.NOBLOCK)
        self.waiting = True
        self.next_at = now + self.interval

    def close(self) -> None:
        if self.socket is not None:
            self.socket.close(linger=0)
