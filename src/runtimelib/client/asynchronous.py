"""AsyncKernelClient: talk to a kernel from asyncio or trio code, never losing output."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from inspect import isawaitable
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import anyio.lowlevel
from anyio.abc import TaskGroup

from ..connection import ConnectionInfo
from ..deadlines import deadline_after
from ..errors import KernelDiedError, KernelTimeoutError, RuntimelibError, TransportError
from ..messages import Content, KernelInfoReply, Message
from ..protocol import DEFAULT_MAX_FRAME_SIZE, Session
from ..transports.base import AsyncTransport
from ..transports.zmq import ZmqAsyncTransport
from . import requests
from .comms import CommManager
from .execution import ExecuteOptions, Execution
from .inboxes import AsyncInbox
from .outputs import ExecutionResult, Output
from .requests import expect
from .routing import RECONNECT_WAIT, Router

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from ..processes import WatchedProcess as KernelProcess

__all__ = ["AsyncKernelClient", "InputHandler", "OutputCallback"]

log = logging.getLogger("runtimelib.client")

R = TypeVar("R", bound=Content)

#: Answers the kernel's ``input()``: called with the prompt and whether it is a password.
InputHandler = Callable[[str, bool], "str | Awaitable[str]"]
#: Called with each new output as it arrives (display updates and clears are not outputs).
OutputCallback = Callable[[Output], "Awaitable[None] | None"]


class AsyncKernelClient:
    """A client of one kernel, for asyncio or trio; use it as an async context manager.

    While open it reads every channel in the background, so a kernel publishing as fast as it
    can never outruns it, and any number of requests can be in flight at once. It talks
    through a transport: ZeroMQ when given a ConnectionInfo, or any ``AsyncTransport``.

    ``max_frame_size`` bounds one frame of a received message (256 MiB by default): a
    larger output fails its request with MessageTooLargeError instead of vanishing.
    """

    def __init__(
        self,
        connection: ConnectionInfo | AsyncTransport,
        *,
        session: Session | None = None,
        heartbeat_interval: float | None = 1.0,
        heartbeat_misses: int = 5,
        ready_timeout: float | None = 60.0,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
    ) -> None:
        if isinstance(connection, AsyncTransport):
            self.transport = connection
        else:
            self.transport = ZmqAsyncTransport(
                connection,
                session=session
                or Session(
                    connection.key_bytes,
                    connection.signature_scheme,
                    max_frame_size=max_frame_size,
                ),
                heartbeat_interval=heartbeat_interval,
                heartbeat_misses=heartbeat_misses,
            )
        self.session = self.transport.session
        #: On entering, wait this long for the kernel to be ready (None: do not wait). Until
        #: iopub is subscribed the kernel's output is lost, so requests wait for it.
        self.ready_timeout = ready_timeout
        self.router = Router()
        self.comms = CommManager(self._send_comm)
        self.router.listeners.append(self.comms.handle)
        self._task_group: TaskGroup | None = None
        self._process_watch: Callable[[], KernelProcess | None] | None = None
        # The process our sockets are known to be connected to.
        self._seen: KernelProcess | None = None

    # -- life cycle -----------------------------------------------------------------------------

    async def __aenter__(self) -> AsyncKernelClient:
        await self.transport.connect()
        task_group = anyio.create_task_group()
        await task_group.__aenter__()
        self._task_group = task_group
        task_group.start_soon(self._receive)
        if self._process_watch is not None:
            self._seen = self._process_watch()
            task_group.start_soon(self._watch_process, self._process_watch)
        else:
            task_group.start_soon(self.transport.watch, self.router.fail, self.router.recover)
        if self.ready_timeout is not None:
            try:
                await self.wait_for_ready(self.ready_timeout)
            except BaseException:
                # Straight from here: the task group's scope must be the innermost one when
                # it is exited (a shielding scope around this would nest the wrong way).
                await self.aclose()
                raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop reading and close the transport."""
        task_group, self._task_group = self._task_group, None
        if task_group is not None:
            task_group.cancel_scope.cancel()
            await task_group.__aexit__(None, None, None)
        await self.transport.aclose()

    def watch_process(self, current: Callable[[], KernelProcess | None]) -> None:
        """Watch the kernel process instead of the heartbeat (before entering the client).

        ``current()`` gives the kernel's process (a manager's, which a restart replaces); when
        it exits, pending requests fail with KernelDiedError.
        """
        self._process_watch = current

    async def _receive(self) -> None:
        try:
            await self.transport.receive_forever(self.router.dispatch)
        except TransportError as exc:
            self.router.fail(exc)

    async def _watch_process(self, current: Callable[[], KernelProcess | None]) -> None:
        while True:
            process = current()
            if process is None:
                await anyio.sleep(0.1)
                continue
            self._seen = process
            code = await process.wait_async()
            self._seen = None
            # All it sent before dying is delivered first.
            error = KernelDiedError(f"the kernel exited with code {code}")
            self.transport.fail_after_delivery(error, self.router.fail)
            while current() is process or current() is None:
                await anyio.sleep(0.05)  # until a restart replaces it
            # Requests wait (see _settle) until the new kernel answers and our iopub hears it
            # (see KernelClient._reconnect).
            self.router.recover()
            with contextlib.suppress(RuntimelibError):
                await self._ready(anyio.current_time() + RECONNECT_WAIT, new_kernel=True)

    async def _settle(self, deadline: float) -> None:
        """A request made just after a restart waits (briefly) for the client to reconnect
        instead of failing with the old process's death or losing its idle status.
        """
        if self.router.failure is not None:
            # About to fail without waiting for anything: still let other tasks run, so a
            # caller retrying in a loop cannot starve the restart it waits for.
            await anyio.lowlevel.checkpoint()
        if self._process_watch is None:
            return
        limit = min(deadline, anyio.current_time() + RECONNECT_WAIT + 0.5)
        while anyio.current_time() < limit:
            process = self._process_watch()
            if process is None or not process.is_alive():
                return
            if process is self._seen and self.router.failure is None:
                return
            await anyio.sleep(0.02)

    async def _send(self, message: Message[Any]) -> None:
        if self._task_group is None:
            raise RuntimeError("use the client inside 'async with client:'")
        await self.transport.send(message)

    async def _send_request(
        self, message: Message[Any], inbox: AsyncInbox, deadline: float
    ) -> None:
        """Send a request whose inbox is open. Should the kernel have stopped reading (its
        queue is full), wait for room only until the request fails (the kernel died) or
        its deadline passes: the send must not outlast the request."""
        if self._task_group is None:
            raise RuntimeError("use the client inside 'async with client:'")
        delay = 0.0005
        while not self.transport.send_nowait(message):
            inbox.raise_failure()
            left = deadline - anyio.current_time()
            if left <= 0:
                raise KernelTimeoutError("the kernel is not reading its requests")
            await anyio.sleep(min(delay, left))
            delay = min(delay * 2, 0.05)

    # -- requests -------------------------------------------------------------------------------

    def _send_comm(
        self, content: Content, *, metadata: dict[str, Any] | None, buffers: list[bytes] | None
    ) -> Message[Content]:
        # Comm handlers run inside the reader; sending must not wait, so try at once and only
        # hand the rare message the socket cannot take yet to a task.
        message = self.session.message(
            content, channel="shell", metadata=metadata, buffers=tuple(buffers or ())
        )
        if self._task_group is None:
            raise RuntimeError("use the client inside 'async with client:'")
        if not self.transport.send_nowait(message):
            self._task_group.start_soon(self.transport.send, message)
        return message

    async def send(self, message: Message[Any]) -> None:
        """Send a message as it is, on its channel (the raw layer)."""
        await self._send(message)

    async def request(
        self,
        content: Content,
        *,
        channel: str | None = None,
        timeout: float | None = None,
        subshell_id: str | None = None,
    ) -> Message[Content]:
        """Send a request and return the reply message (matched by msg_id)."""
        name = channel or content.channel
        message = self.session.message(content, channel=name, subshell_id=subshell_id)
        inbox = AsyncInbox(name)
        deadline = deadline_after(timeout, anyio.current_time())
        await self._settle(deadline)
        self.router.open(message.msg_id, inbox)
        try:
            await self._send_request(message, inbox, deadline)
            return await inbox.get(deadline)
        finally:
            self.router.close(message.msg_id)
            inbox.close()

    async def _reply(
        self, content: Content, reply_type: type[R], timeout: float | None, **kw: Any
    ) -> R:
        return expect((await self.request(content, timeout=timeout, **kw)).content, reply_type)

    # The typed requests, shared with KernelClient (see requests.py).
    kernel_info = requests.kernel_info
    complete = requests.complete
    inspect = requests.inspect
    history = requests.history
    is_complete = requests.is_complete
    comm_info = requests.comm_info
    shutdown = requests.shutdown
    interrupt = requests.interrupt
    debug_request = requests.debug_request
    create_subshell = requests.create_subshell
    list_subshells = requests.list_subshells
    delete_subshell = requests.delete_subshell

    async def wait_for_ready(self, timeout: float | None = 60.0) -> KernelInfoReply:
        """Wait until the kernel answers and its iopub is live; returns its kernel_info."""
        deadline = deadline_after(timeout, anyio.current_time())
        await self._settle(deadline)
        return await self._ready(deadline)

    # The shared loops' primitives (see requests.py).
    _ready = requests.ready
    _post = _send

    def _clock(self) -> float:
        return anyio.current_time()

    def _inbox(self) -> AsyncInbox:
        return AsyncInbox()

    # -- execution ------------------------------------------------------------------------------

    async def stream(
        self,
        code: str,
        *,
        timeout: float | None = None,
        input: InputHandler | None = None,
        **options: Unpack[ExecuteOptions],
    ) -> AsyncIterator[Message[Content]]:
        """Run ``code`` and yield its messages as they arrive: iopub outputs and status, and
        the execute_reply. Ends once both the reply and the ``idle`` status arrived.

        ``input`` answers ``input()`` in the kernel; without it the kernel is told stdin is not
        available (``allow_stdin`` defaults to whether there is a handler).
        """
        execution = Execution(self.session, code, answers_input=input is not None, **options)
        async for message in self._run(execution, timeout, input):
            yield message

    _run = requests.run
    _answer_input = requests.answer_input
    _settled = _settle
    _post_request = _send_request

    async def execute(
        self,
        code: str,
        *,
        timeout: float | None = None,
        input: InputHandler | None = None,
        on_output: OutputCallback | None = None,
        raise_on_error: bool = False,
        **options: Unpack[ExecuteOptions],
    ) -> ExecutionResult:
        """Run ``code`` and return everything it produced once the kernel is idle again.

        ``timeout`` bounds the whole execution (KernelTimeoutError; the kernel is not
        interrupted). ``raise_on_error`` raises ExecutionError when the code raised. The
        request's own fields (``silent``, ``store_history``, ``user_expressions``,
        ``stop_on_error``, ``allow_stdin``, ``subshell_id``) are ExecuteOptions.
        """
        execution = Execution(self.session, code, answers_input=input is not None, **options)
        async for message in self._run(execution, timeout, input):
            output = execution.collect(message)
            if output is not None and on_output is not None:
                outcome = on_output(output)
                if isawaitable(outcome):
                    await outcome
        result = execution.result()
        return result.raise_for_error() if raise_on_error else result
