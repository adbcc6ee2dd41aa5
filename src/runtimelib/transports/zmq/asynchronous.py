"""The async transport: every channel of one kernel, read by one task of the caller's event
loop (asyncio or trio, through anyio). See ``_Drain`` for why a send can swallow the signal
of a message waiting on a socket, and what is done about it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel
import zmq

from ...errors import EncryptionError, RemoteProtocolError, TransportError
from ...messages import Message
from ...protocol import Session
from ..base import AsyncTransport, Deliver
from .channels import AsyncChannel, AsyncHeartbeat, Beats, ZmqSettings, unreadable
from .sockets import MESSAGE_CHANNELS, POLLIN, recv_parts, zmq_events, zmq_fd

if TYPE_CHECKING:
    pass

__all__ = ["ZmqAsyncTransport"]

log = logging.getLogger("runtimelib.transport")


#: Messages the async reader delivers before it lets other tasks run (a flood must not
#: starve the task that collects it).
_ASYNC_BATCH = 256

#: epoll, where there is one: a descriptor that is readable when any registered one is.
_epoll = getattr(select, "epoll", None)
_EPOLLIN = getattr(select, "EPOLLIN", 1)


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
                unreadable(exc, name, deliver)
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


class ZmqAsyncTransport(ZmqSettings, AsyncTransport):
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
        beats = Beats(self.heartbeat_misses)
        async with AsyncHeartbeat(self.info, watch=True) as heart:
            handshake = heart.handshake
            assert handshake is not None
            while True:
                if await heart.ping(interval):
                    if beats.answered():
                        alive()
                    await anyio.sleep(interval)
                    continue
                if not handshake.succeeded:
                    # Never connected: a CurveZMQ mismatch fails at once, with its reason.
                    refused = await anyio.to_thread.run_sync(handshake.failure)
                    if refused is not None:
                        self.fail_after_delivery(EncryptionError(refused), dead)
                        await anyio.sleep_forever()
                death = beats.missed()
                if death is not None:
                    self.fail_after_delivery(death, dead)

    async def aclose(self) -> None:
        """Close every socket."""
        channels, self.channels = self.channels, {}
        for channel in channels.values():
            channel.close()
