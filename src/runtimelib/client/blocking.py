"""KernelClient: the blocking twin of AsyncKernelClient; no event loop, works inside one."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from ..connection import ConnectionInfo
from ..deadlines import deadline_after, time_left
from ..errors import KernelDiedError, RuntimelibError, TransportError
from ..messages import Content, KernelInfoReply, Message
from ..protocol import DEFAULT_MAX_FRAME_SIZE, Session
from ..transports.base import Transport
from ..transports.zmq import ZmqTransport
from . import requests
from .comms import CommManager
from .execution import ExecuteOptions, Execution
from .inboxes import ExecutionSink, ThreadInbox
from .outputs import ExecutionResult, Output
from .requests import expect, iterate_now, run_now
from .routing import RECONNECT_WAIT, Router

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from ..processes import WatchedProcess as KernelProcess

__all__ = ["KernelClient"]

log = logging.getLogger("runtimelib.client")

R = TypeVar("R", bound=Content)

InputHandler = Callable[[str, bool], str]
OutputCallback = Callable[[Output], None]


class _ClientClosedError(TransportError):
    """A request was still waiting when its client was closed."""


class KernelClient:
    """A blocking client of one kernel; use it as a context manager.

    Safe to call from inside a running event loop (a notebook cell): it never runs one. The
    sockets are read all the time, by the transport's thread, or by a caller while it waits
    for its reply (no thread switch between the reply and the caller). Input handlers and
    output callbacks run in the caller's thread. ``max_frame_size`` is as for
    AsyncKernelClient.
    """

    def __init__(
        self,
        connection: ConnectionInfo | Transport,
        *,
        session: Session | None = None,
        heartbeat_interval: float | None = 1.0,
        heartbeat_misses: int = 5,
        ready_timeout: float | None = 60.0,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
    ) -> None:
        self._heartbeat = (heartbeat_interval, heartbeat_misses)
        self._connection = connection
        self.transport: Transport | None = None
        if isinstance(connection, Transport):
            self.transport = connection
            self.session = connection.session
        else:
            self.session = session or Session(
                connection.key_bytes, connection.signature_scheme, max_frame_size=max_frame_size
            )
        #: On entering, wait this long for the kernel to be ready (None: do not wait). Until
        #: iopub is subscribed the kernel's output is lost, so requests wait for it.
        self.ready_timeout = ready_timeout
        self.router = Router()
        self.comms = CommManager(self._send_comm)
        self.router.listeners.append(self.comms.handle)
        self._process: Callable[[], KernelProcess | None] | None = None
        self._watcher: threading.Thread | None = None
        # The process our sockets are known to be connected to (see _reconnect).
        self._seen: KernelProcess | None = None
        self._closed = threading.Event()
        self._started = False

    # -- life cycle -----------------------------------------------------------------------------

    def start(self) -> None:
        """Connect and start reading in the background."""
        if self._started:
            return
        if self.transport is None:
            interval, misses = self._heartbeat
            assert isinstance(self._connection, ConnectionInfo)
            self.transport = ZmqTransport(
                self._connection,
                session=self.session,
                # A watched process tells death better than the heartbeat.
                heartbeat_interval=None if self._process is not None else interval,
                heartbeat_misses=misses,
            )
        self._closed.clear()
        if isinstance(self.router.failure, _ClientClosedError):
            self.router.recover()
        self.transport.start(self.router.dispatch, self.router.fail, self.router.recover)
        self._started = True
        if self._process is not None:
            self._seen = self._process()
            self._watcher = threading.Thread(
                target=self._watch_process, name="runtimelib-client-watch", daemon=True
            )
            self._watcher.start()
        if self.ready_timeout is not None:
            try:
                self.wait_for_ready(self.ready_timeout)
            except BaseException:
                self.close()
                raise

    def close(self) -> None:
        """Stop reading and close the transport."""
        if not self._started:
            return
        self._started = False
        self._closed.set()
        # Requests waiting in other threads end now rather than never.
        self._fail(_ClientClosedError("the client was closed while waiting for the kernel"))
        if self.transport is not None:
            self.transport.close()

    def __enter__(self) -> KernelClient:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def watch_process(self, current: Callable[[], KernelProcess | None]) -> None:
        """Watch the kernel process instead of the heartbeat (before ``start``).

        ``current()`` gives the kernel's process (a manager's, which a restart replaces); when
        it exits, pending requests fail with KernelDiedError.
        """
        self._process = current

    def _watch_process(self) -> None:
        assert self._process is not None
        reported: KernelProcess | None = None
        while not self._closed.is_set():
            process = self._process()
            if process is None or not process.is_alive():
                if process is not None and process is not reported:
                    reported = process
                    code = process.wait(1.0)
                    self._fail_in_order(
                        process, KernelDiedError(f"the kernel exited with code {code}")
                    )
                self._closed.wait(0.05)
                continue
            if process is not self._seen:
                if self._seen is not None:
                    self._reconnect(process)
                self._seen = process
            # Poll rather than block in waitid: closing the client must not wait for the kernel.
            self._closed.wait(0.05)

    def _reconnect(self, process: KernelProcess) -> None:
        """A restart replaced the kernel (maybe faster than a poll could see it die): end what
        waited on the old one, and let requests through again once the new one answers and
        our iopub hears it (requests wait meanwhile, see _settle): a request sent before the
        subscription reached the new kernel would lose the idle status that ends it.
        """
        if self.router.failure is None:
            self._fail(KernelDiedError("the kernel was restarted"))
        self.router.recover()
        with contextlib.suppress(RuntimelibError):
            self._ready(time.monotonic() + RECONNECT_WAIT, new_kernel=True)

    def _settle(self, deadline: float) -> None:
        """A request made just after a restart waits (briefly) for the client to reconnect
        instead of failing with the old process's death or losing its idle status.
        """
        if self._process is None:
            return
        limit = min(deadline, time.monotonic() + RECONNECT_WAIT + 0.5)
        while time.monotonic() < limit:
            process = self._process()
            if process is None or not process.is_alive():
                return
            if process is self._seen and self.router.failure is None:
                return
            time.sleep(0.02)

    def _wait(self, event: threading.Event, timeout: float | None) -> bool:
        transport = self.transport
        if transport is None or not self._started:
            return event.wait(timeout)
        return transport.wait(event, timeout)

    def _fail_in_order(self, process: KernelProcess, error: BaseException) -> None:
        """Fail pending requests because ``process`` died, once every message received
        from it has been delivered; not if a restart has replaced it meanwhile."""

        def fail(error: BaseException) -> None:
            if self._process is not None and self._process() is process:
                self._fail(error)

        if self.transport is None:
            fail(error)
        else:
            self.transport.fail_after_delivery(error, fail)

    def _fail(self, error: BaseException) -> None:
        """End every pending request with ``error`` (from a thread of ours, not a delivery)."""
        self.router.fail(error)
        if self.transport is not None:
            self.transport.wakeup()

    def _send(self, message: Message[Any]) -> None:
        if not self._started or self.transport is None:
            raise RuntimeError("use the client inside 'with client:' (or call start())")
        self.transport.send(message)

    # -- requests -------------------------------------------------------------------------------

    def send(self, message: Message[Any]) -> None:
        """Send a message as it is, on its channel (the raw layer)."""
        self._send(message)

    def _send_comm(
        self, content: Content, *, metadata: dict[str, Any] | None, buffers: list[bytes] | None
    ) -> Message[Content]:
        message = self.session.message(
            content, channel="shell", metadata=metadata, buffers=tuple(buffers or ())
        )
        self.send(message)
        return message

    def request(
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
        inbox = ThreadInbox(self._wait, name)
        deadline = deadline_after(timeout, time.monotonic())
        self._settle(deadline)
        self.router.open(message.msg_id, inbox)
        try:
            self.send(message)
            return inbox.get(deadline)
        finally:
            self.router.close(message.msg_id)

    async def _reply(self, content: Content, reply_type: type[R], timeout: float | None) -> R:
        # A coroutine that never suspends: it blocks, for run_now (see requests.py).
        return expect(self.request(content, timeout=timeout).content, reply_type)

    # The typed requests, shared with AsyncKernelClient (see requests.py).
    kernel_info = run_now(requests.kernel_info)
    complete = run_now(requests.complete)
    inspect = run_now(requests.inspect)
    history = run_now(requests.history)
    is_complete = run_now(requests.is_complete)
    comm_info = run_now(requests.comm_info)
    shutdown = run_now(requests.shutdown)
    interrupt = run_now(requests.interrupt)
    debug_request = run_now(requests.debug_request)
    create_subshell = run_now(requests.create_subshell)
    list_subshells = run_now(requests.list_subshells)
    delete_subshell = run_now(requests.delete_subshell)

    def wait_for_ready(self, timeout: float | None = 60.0) -> KernelInfoReply:
        """Wait until the kernel answers and its iopub is live; returns its kernel_info."""
        deadline = deadline_after(timeout, time.monotonic())
        self._settle(deadline)
        return self._ready(deadline)

    # The shared loops' primitives (see requests.py): they block instead of suspending.
    _ready = run_now(requests.ready)

    def _clock(self) -> float:
        return time.monotonic()

    def _inbox(self) -> ThreadInbox:
        return ThreadInbox(self._wait)

    async def _post(self, message: Message[Any]) -> None:
        self.send(message)

    # -- execution ------------------------------------------------------------------------------

    def stream(
        self,
        code: str,
        *,
        timeout: float | None = None,
        input: InputHandler | None = None,
        **options: Unpack[ExecuteOptions],
    ) -> Iterator[Message[Content]]:
        """Run ``code`` and yield its messages as they arrive, as AsyncKernelClient.stream."""
        execution = Execution(self.session, code, answers_input=input is not None, **options)
        return self._run(execution, timeout, input)

    _run = iterate_now(requests.run)
    _answer_input = run_now(requests.answer_input)

    async def _settled(self, deadline: float) -> None:
        self._settle(deadline)

    async def _post_request(self, message: Message[Any], inbox: Any, deadline: float) -> None:
        self.send(message)

    def execute(
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
        if on_output is None:
            self._collect(execution, timeout, input)
        else:
            for message in self._run(execution, timeout, input):
                output = execution.collect(message)
                if output is not None:
                    on_output(output)
        result = execution.result()
        return result.raise_for_error() if raise_on_error else result

    def _collect(
        self, execution: Execution, timeout: float | None, input: InputHandler | None
    ) -> None:
        """Run an execution whose outputs are collected as they are read.

        Without a callback nothing else happens per message: the outputs go into the
        execution in the reading thread (usually this one, waiting), and this thread only
        wakes for input requests, errors and the end.
        """
        sink = ExecutionSink(execution)
        deadline = deadline_after(timeout, time.monotonic())
        self._settle(deadline)
        self.router.open(execution.msg_id, sink)
        try:
            self._send(execution.request)
            while True:
                wait = time_left(deadline, time.monotonic())
                if not self._wait(sink.wake, wait):
                    raise execution.timed_out(timeout)
                sink.wake.clear()
                if sink.error is not None:
                    raise sink.error
                while sink.inputs:
                    self._answer_input(execution, sink.inputs.popleft(), input)
                if sink.done.is_set():
                    break
        finally:
            self.router.close(execution.msg_id)
        execution.raise_input_error()
