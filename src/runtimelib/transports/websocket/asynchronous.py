"""The async websocket transport: every channel of a remote kernel over one websocket, for
asyncio and trio (anyio's sockets).

Three tasks run while a client reads (``receive_forever``): the reader, the writer and the
pinger. Sends never touch the socket: they queue a frame (bounded), and the writer sends the
queue in order. While the websocket is down the queue waits, so a request made meanwhile is
sent once the client is back, not dropped; a caller whose queue is full waits or (without
waiting) is told so. When the websocket drops, the reader reconnects: it asks the server for
the kernel's model (gone or dead: pending requests fail with KernelDiedError), then opens a
new websocket with the same session id, on a jittered backoff, until ``reconnect_timeout``.
The server replays what the kernel sent meanwhile; where it could not have, pending requests
learn so (OutputGap).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import Any, NoReturn

import anyio
from anyio.abc import ByteStream, SocketAttribute, TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from ...errors import RuntimelibError, ServerError, TransportError
from ...messages import Message
from ...protocol import Session
from ..base import AsyncTransport, Deliver, OutputGap
from .connection import (
    SETTLE,
    Endpoint,
    KernelWebsocket,
    Opened,
    Probe,
    Reconnection,
    WebsocketCore,
    quick_ack,
    refusal_is_final,
)

__all__ = ["WebsocketAsyncTransport"]

log = logging.getLogger("runtimelib.transport")

_DROPPED: tuple[type[Exception], ...] = (
    anyio.BrokenResourceError,
    anyio.ClosedResourceError,
    anyio.EndOfStream,
    OSError,
)
_SEND_FAILED: tuple[type[Exception], ...] = (*_DROPPED, TransportError)


class WebsocketAsyncTransport(WebsocketCore, AsyncTransport):
    """All channels of a remote kernel over a websocket, for async code.

    ``probe`` asks the server for the kernel's model (reconnecting and liveness use it; None
    leaves both to the websocket alone). ``ping_interval``: how often to ping; no pong within
    ``ping_timeout`` counts as a drop. ``poll_interval``: how often the kernel's model is
    checked while connected (a kernel shut down by another client fails pending requests).
    ``queue_size`` bounds the messages waiting to be sent.
    """

    def __init__(
        self,
        endpoint: Endpoint,
        session: Session,
        *,
        probe: Probe | None = None,
        queue_size: int = 10_000,
        **settings: Any,
    ) -> None:
        super().__init__(endpoint, session, **settings)
        self.probe = probe
        self._queue: tuple[MemoryObjectSendStream[Any], MemoryObjectReceiveStream[Any]] = (
            anyio.create_memory_object_stream[Any](queue_size)
        )
        self._stream: ByteStream | None = None
        self._early: list[Any] = []
        # Made on connecting: anyio's primitives belong to the running event loop.
        self._back: anyio.Event
        self._sending: anyio.Lock
        self._tasks: TaskGroup

    # -- opening -------------------------------------------------------------------------------

    async def connect(self) -> None:
        """Open the websocket; a refusal is a typed ServerError, no answer a TransportError."""
        self._back = anyio.Event()
        self._sending = anyio.Lock()
        await self._open()

    async def _open(self) -> None:
        endpoint = self.endpoint
        ws = KernelWebsocket(self.session, endpoint)
        try:
            with anyio.fail_after(self.open_timeout):
                stream: ByteStream
                if endpoint.ssl_context is None:
                    stream = await anyio.connect_tcp(endpoint.host, endpoint.port)
                else:
                    stream = await anyio.connect_tcp(
                        endpoint.host,
                        endpoint.port,
                        ssl_context=endpoint.ssl_context,
                        tls_standard_compatible=False,
                    )
                try:
                    await stream.send(ws.handshake())
                    events: list[Any] = []
                    while not ws.open:
                        if ws.closed:
                            raise TransportError("the server closed the websocket at once")
                        try:
                            data = await stream.receive(65536)
                        except anyio.EndOfStream:
                            data = b""
                        events = ws.receive_data(data)
                except BaseException:
                    await anyio.aclose_forcefully(stream)
                    raise
        except TimeoutError:
            raise TransportError(
                f"no websocket from {endpoint.authority} within {self.open_timeout:g} s"
            ) from None
        except (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
            raise TransportError(
                f"cannot reach {endpoint.authority} for the kernel's websocket: {exc!r}"
            ) from None
        self._ws, self._stream = ws, stream
        # What came in the same read as the handshake's answer.
        self._early = [event for event in events if not isinstance(event, Opened)]
        self._last_pong = anyio.current_time()
        self._back.set()

    # -- sending -------------------------------------------------------------------------------

    async def send(self, message: Message[Any]) -> None:
        """Queue a message for the writer; waits while the queue is full."""
        await self._queue[0].send(self._encode(message))

    def send_nowait(self, message: Message[Any]) -> bool:
        """Queue a message for the writer; False when the queue is full."""
        try:
            self._queue[0].send_nowait(self._encode(message))
        except anyio.WouldBlock:
            return False
        return True

    async def _write(self) -> None:
        """Send queued frames in order; while the websocket is down, wait for it to be back."""
        async for item in self._queue[1]:
            while True:
                ws, stream = self._ws, self._stream
                if ws is not None and stream is not None and ws.open:
                    try:
                        await self._transmit(stream, ws.frame(item.frame))
                        self._written(item, ws)
                        break
                    except _SEND_FAILED:
                        pass  # the reader sees the drop too, and reconnects
                await self._wait_back()

    async def _transmit(self, stream: ByteStream, data: bytes) -> None:
        """Send bytes; the writer, the reader (pongs) and the pinger take turns."""
        async with self._sending:
            await stream.send(data)

    async def _wait_back(self) -> None:
        back = self._back
        if back.is_set():
            await anyio.sleep(0.01)  # a send failed; the reader has yet to see the drop
        else:
            await back.wait()

    # -- reading -------------------------------------------------------------------------------

    async def receive_forever(self, deliver: Deliver) -> None:
        """Read and deliver until cancelled, reconnecting when the websocket drops. Ends
        (after telling ``watch``'s ``dead``) when the kernel is gone or the server cannot be
        had back in time."""
        async with anyio.create_task_group() as tasks:
            self._tasks = tasks
            tasks.start_soon(self._write)
            tasks.start_soon(self._ping)
            try:
                while not self._closing:
                    await self._read(deliver)
                    if self._closing:
                        break
                    await self._reconnect(deliver)
            except _Ended:
                pass
            tasks.cancel_scope.cancel()

    async def _read(self, deliver: Deliver) -> None:
        """Deliver what arrives until the websocket closes or drops."""
        ws, stream = self._ws, self._stream
        assert ws is not None
        assert stream is not None
        early, self._early = self._early, []
        if self._handle(early, deliver, anyio.current_time()):
            return
        raw = stream.extra(SocketAttribute.raw_socket, None)
        while True:
            try:
                data = await stream.receive(65536)
                quick_ack(raw)
            except anyio.EndOfStream:
                data = b""
            except _DROPPED:
                data = b""
            if self._handle(ws.receive_data(data), deliver, anyio.current_time()):
                return
            pending = ws.outgoing()
            if pending:
                try:
                    await self._transmit(stream, pending)
                except _DROPPED:
                    return

    async def _reconnect(self, deliver: Deliver) -> None:
        """Bring the websocket back (see the module's docstring), or end with the reason."""
        self._suspect()
        self._back = anyio.Event()
        if self._stream is not None:
            await anyio.aclose_forcefully(self._stream)
        plan = Reconnection(anyio.current_time(), self.reconnect_timeout)
        last: BaseException | str = "no attempt yet"
        while True:
            final = plan.judge(await self._kernel_state())
            if final is not None:
                self._end(final)
            # While other clients are counted connected, give the server a few waits to
            # notice this one is gone (and start keeping its output) before coming back.
            if plan.gap is None or plan.attempt >= 3:
                try:
                    await self._open()
                    break
                except (ServerError, TransportError) as exc:
                    if refusal_is_final(exc):
                        self._end(plan.judge(exc) or exc)
                    last = exc
            delay = plan.wait(anyio.current_time())
            if delay is None:
                self._end(plan.gave_up(last))
            await anyio.sleep(delay)
        self.reconnects += 1
        log.info("reconnected to the kernel's websocket")
        if plan.gap is not None:
            deliver(OutputGap(plan.gap))
        # Even with no suspect yet: a send that was under way when the drop came records
        # its request late.
        self._tasks.start_soon(self._judge_later, deliver, plan.gap)

    async def _judge_later(self, deliver: Deliver, gap: str | None) -> None:
        await anyio.sleep(SETTLE)
        if not self._suspected:
            return
        resend, lost = self._judge(await self._kernel_state(), gap)
        for item in resend:
            await self._queue[0].send(item)
        for request in lost:
            deliver(request)

    async def _kernel_state(self) -> Any:
        if self.probe is None:
            return RuntimelibError("no probe")
        try:
            return await self.probe()
        except RuntimelibError as exc:
            return exc

    def _end(self, error: BaseException) -> NoReturn:
        self._tell_dead(error)
        raise _Ended

    # -- liveness ------------------------------------------------------------------------------

    async def _ping(self) -> None:
        """Ping on schedule; a websocket without a pong for ``ping_timeout`` is dropped."""
        while True:
            await anyio.sleep(self.ping_interval)
            ws, stream = self._ws, self._stream
            if ws is None or stream is None or not ws.open:
                continue
            if self._pong_overdue(anyio.current_time()):
                log.warning("no pong from the server in %g s: reconnecting", self.ping_timeout)
                await anyio.aclose_forcefully(stream)
                continue
            with contextlib.suppress(*_DROPPED):
                await self._transmit(stream, ws.ping())

    async def watch(self, dead: Callable[[BaseException], None], alive: Callable[[], None]) -> None:
        """Tell ``dead`` when the kernel ends (the server's word, its model, or a connection
        that cannot be had back), ``alive`` when the server restarted it; and check the
        kernel's model every ``poll_interval`` meanwhile."""
        self._dead, self._alive = dead, alive
        if self._failure is not None:
            dead(self._failure)
        if self.probe is None:
            await anyio.sleep_forever()
        while self._failure is None:
            await anyio.sleep(self.poll_interval)
            if self._ws is None or not self._ws.open:
                continue  # the reader is reconnecting and asks itself
            self._polled(await self._kernel_state())
        await anyio.sleep_forever()

    # -- closing -------------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Close the websocket politely and stop."""
        self._closing = True
        ws, stream = self._ws, self._stream
        if stream is None:
            return
        if ws is not None:
            with anyio.move_on_after(1, shield=True):
                with contextlib.suppress(*_DROPPED):
                    await self._transmit(stream, ws.close())
        await anyio.aclose_forcefully(stream)
        self._back.set()


class _Ended(Exception):
    """The kernel is gone, or the server could not be had back: the reader stops."""
