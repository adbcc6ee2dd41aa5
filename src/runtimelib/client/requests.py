"""What both clients do, written once: the typed requests, the wait for readiness, and the
loop of one execution.

A typed request builds its content, asks the kernel through the client's ``_reply`` and
shapes the answer. Each one is a coroutine function here, as are ``ready`` and
``answer_input``; ``run`` is an async generator. AsyncKernelClient takes them as they are: its
primitives (``_reply``, ``_post``, an inbox's ``take``...) await the kernel. KernelClient takes
them through ``run_now`` and ``iterate_now``: its primitives block in the calling thread
instead of suspending, so each step finishes at once, and the wrappers hand back values and
items as plain calls and generators would.

Why not two copies, or a generated twin: the copies drifted (defaults, error checks) before
they were merged; a generator would be one more tool for the reader to trust. Why not a
mixin: a class cannot be async in one subclass and blocking in the other and still type-check.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncGenerator, Awaitable, Callable, Coroutine, Generator, Iterator
from inspect import isawaitable
from typing import Any, ParamSpec, Protocol, TypeVar

from ..deadlines import deadline_after
from ..errors import KernelTimeoutError, RemoteProtocolError
from ..messages import (
    CommInfoReply,
    CommInfoRequest,
    CompleteReply,
    CompleteRequest,
    Content,
    CreateSubshellReply,
    CreateSubshellRequest,
    DebugReply,
    DebugRequest,
    DeleteSubshellReply,
    DeleteSubshellRequest,
    HistoryReply,
    HistoryRequest,
    InputRequest,
    InspectReply,
    InspectRequest,
    InterruptReply,
    InterruptRequest,
    IsCompleteReply,
    IsCompleteRequest,
    KernelInfoReply,
    KernelInfoRequest,
    ListSubshellReply,
    ListSubshellRequest,
    Message,
    ShutdownReply,
    ShutdownRequest,
)
from ..protocol import Session
from .execution import Execution
from .outputs import subshell_id, succeeded
from .readiness import Readiness
from .routing import Router

__all__ = ["Asker", "Engine", "answer_input", "expect", "iterate_now", "ready", "run", "run_now"]

R = TypeVar("R", bound=Content)
T = TypeVar("T")
P = ParamSpec("P")


class Asker(Protocol):
    """A client, as the typed requests see it: it sends a request and returns the reply's
    content, checked to be of ``reply_type``."""

    async def _reply(self, content: Content, reply_type: type[R], timeout: float | None) -> R:
        raise NotImplementedError


class Inbox(Protocol):
    """Where one request's messages wait for its caller."""

    def put(self, item: Message[Content] | BaseException) -> None: ...

    async def take(self, deadline: float) -> Message[Content]: ...

    def close(self) -> None: ...


class Engine(Asker, Protocol):
    """A client, as ``ready`` sees it: its router and session, and its I/O primitives."""

    router: Router
    session: Session

    def _clock(self) -> float:
        """Now, on the clock deadlines are on."""
        raise NotImplementedError

    def _inbox(self) -> Inbox:
        """A new inbox for one request's messages."""
        raise NotImplementedError

    async def _post(self, message: Message[Any]) -> None:
        """Send a message on its channel."""
        raise NotImplementedError

    async def _post_request(self, message: Message[Any], inbox: Any, deadline: float) -> None:
        """Send a request whose inbox is open, giving up by ``deadline``."""
        raise NotImplementedError

    async def _settled(self, deadline: float) -> None:
        """Return once a restart in progress has been reconnected to (or ``deadline``)."""
        raise NotImplementedError


def expect(content: Content, reply_type: type[R]) -> R:
    """``content`` if it is a ``reply_type``, else the RemoteProtocolError a client raises."""
    if not isinstance(content, reply_type):
        raise RemoteProtocolError(
            f"expected {reply_type.msg_type}, got {type(content).__name__} in reply"
        )
    return content


def _step(awaitable: Generator[Any, None, T] | Coroutine[Any, Any, T], name: str) -> T:
    """Run a coroutine that must not suspend to its end, and return its value."""
    try:
        awaitable.send(None)
    except StopIteration as finished:
        return finished.value  # type: ignore[no-any-return]
    awaitable.close()
    raise RuntimeError(f"{name} suspended in a blocking client")


def run_now(request: Callable[P, Coroutine[Any, Any, T]]) -> Callable[P, T]:
    """A shared coroutine as a blocking method: run it through in one step."""

    @functools.wraps(request)
    def blocking(*args: P.args, **kwargs: P.kwargs) -> T:
        return _step(request(*args, **kwargs), request.__name__)

    return blocking


def iterate_now(stream: Callable[P, AsyncGenerator[T, None]]) -> Callable[P, Iterator[T]]:
    """A shared async generator as a blocking generator: each item in one step."""

    @functools.wraps(stream)
    def blocking(*args: P.args, **kwargs: P.kwargs) -> Iterator[T]:
        items = stream(*args, **kwargs)
        try:
            while True:
                try:
                    item = _step(items.__anext__().__await__(), stream.__name__)
                except StopAsyncIteration:
                    return
                yield item
        finally:
            # A consumer that stops early closes the loop, whose cleanup runs now.
            _step(items.aclose().__await__(), stream.__name__)

    return blocking


async def kernel_info(self: Asker, *, timeout: float | None = None) -> KernelInfoReply:
    """Who the kernel is."""
    return await self._reply(KernelInfoRequest(), KernelInfoReply, timeout)


async def complete(
    self: Asker, code: str, cursor_pos: int | None = None, *, timeout: float | None = None
) -> CompleteReply:
    """Completions at ``cursor_pos`` (default: the end of ``code``)."""
    pos = len(code) if cursor_pos is None else cursor_pos
    return await self._reply(CompleteRequest(code=code, cursor_pos=pos), CompleteReply, timeout)


async def inspect(
    self: Asker,
    code: str,
    cursor_pos: int | None = None,
    detail_level: int = 0,
    *,
    timeout: float | None = None,
) -> InspectReply:
    """Help on the object at ``cursor_pos`` (default: the end of ``code``)."""
    pos = len(code) if cursor_pos is None else cursor_pos
    request = InspectRequest(code=code, cursor_pos=pos, detail_level=detail_level)
    return await self._reply(request, InspectReply, timeout)


async def history(self: Asker, *, timeout: float | None = None, **kwargs: Any) -> HistoryReply:
    """Input history; keyword arguments are those of HistoryRequest."""
    return await self._reply(HistoryRequest(**kwargs), HistoryReply, timeout)


async def is_complete(self: Asker, code: str, *, timeout: float | None = None) -> IsCompleteReply:
    """Whether ``code`` is ready to run."""
    return await self._reply(IsCompleteRequest(code=code), IsCompleteReply, timeout)


async def comm_info(
    self: Asker, target_name: str | None = None, *, timeout: float | None = None
) -> CommInfoReply:
    """The kernel's open comms."""
    request = CommInfoRequest() if target_name is None else CommInfoRequest(target_name=target_name)
    return await self._reply(request, CommInfoReply, timeout)


async def shutdown(
    self: Asker, *, restart: bool = False, timeout: float | None = None
) -> ShutdownReply:
    """Ask the kernel to shut down (control channel)."""
    return await self._reply(ShutdownRequest(restart=restart), ShutdownReply, timeout)


async def interrupt(self: Asker, *, timeout: float | None = None) -> InterruptReply:
    """Ask the kernel to interrupt (for kernels whose interrupt_mode is "message")."""
    return await self._reply(InterruptRequest(), InterruptReply, timeout)


async def debug_request(
    self: Asker,
    command: str,
    arguments: dict[str, Any] | None = None,
    *,
    seq: int = 1,
    timeout: float | None = None,
) -> DebugReply:
    """A Debug Adapter Protocol request on control."""
    request = DebugRequest(seq=seq, command=command, arguments=arguments or {})
    return await self._reply(request, DebugReply, timeout)


async def create_subshell(self: Asker, *, timeout: float | None = None) -> str:
    """Create a subshell; returns its id, for ``subshell_id=`` on later requests."""
    return subshell_id(await self._reply(CreateSubshellRequest(), CreateSubshellReply, timeout))


async def list_subshells(self: Asker, *, timeout: float | None = None) -> list[str]:
    """The kernel's subshell ids."""
    reply = await self._reply(ListSubshellRequest(), ListSubshellReply, timeout)
    return succeeded(reply, "list its subshells").subshell_id


async def delete_subshell(self: Asker, subshell_id: str, *, timeout: float | None = None) -> None:
    """Delete a subshell."""
    request = DeleteSubshellRequest(subshell_id=subshell_id)
    reply = await self._reply(request, DeleteSubshellReply, timeout)
    succeeded(reply, f"delete subshell {subshell_id}")


async def ready(self: Engine, deadline: float, *, new_kernel: bool = False) -> KernelInfoReply:
    """kernel_info until a reply comes and iopub is heard (Readiness decides). For a
    ``new_kernel`` (after a restart) only its own iopub counts: a late message of the old one
    proves nothing."""
    readiness = Readiness(self.session, new_kernel=new_kernel, received=list(self.router.backlog))
    current: list[Inbox] = []

    def watch(message: Message[Content]) -> None:
        if readiness.heard_unasked(message):
            for inbox in current:
                inbox.put(message)

    self.router.listeners.append(watch)
    try:
        while not readiness.ready:
            request = readiness.request()
            inbox = self._inbox()
            self.router.open(request.msg_id, inbox)
            current.append(inbox)
            try:
                # Bounded, and ended by a failure: before the first handshake a send waits.
                await self._post_request(request, inbox, deadline)
                # Ask again every so often: a kernel without iopub_welcome shows that iopub
                # is live only by the status messages each request makes it publish.
                resend = min(deadline, self._clock() + readiness.resend_after)
                while not readiness.ready:
                    try:
                        message = await inbox.take(resend)
                    except KernelTimeoutError:
                        if self._clock() >= deadline:
                            raise
                        break
                    readiness.feed(message)
            finally:
                current.clear()
                self.router.close(request.msg_id)
                inbox.close()
    finally:
        self.router.listeners.remove(watch)
    assert readiness.reply is not None
    return readiness.reply


async def answer_input(
    self: Engine,
    execution: Execution,
    message: Message[Content],
    handler: Callable[[str, bool], str | Awaitable[str]] | None,
) -> None:
    """Answer the kernel's input_request with what the handler says (an error it raises
    becomes end of input, and the caller gets it once the kernel is done)."""
    content = message.content
    assert isinstance(content, InputRequest)
    answer: object = ""
    if handler is not None:
        try:
            answer = handler(content.prompt, content.password)
            if isawaitable(answer):
                answer = await answer
        except Exception as exc:
            answer = exc
    await self._post(execution.input_reply(self.session, message, answer))


async def run(
    self: Engine,
    execution: Execution,
    timeout: float | None,
    input: Callable[[str, bool], str | Awaitable[str]] | None,
) -> AsyncGenerator[Message[Content], None]:
    """Send an execution and yield its messages until it is complete (Execution decides
    what each one means), answering input requests on the way."""
    inbox = self._inbox()
    deadline = deadline_after(timeout, self._clock())
    await self._settled(deadline)
    self.router.open(execution.msg_id, inbox)
    try:
        await self._post_request(execution.request, inbox, deadline)
        while not execution.done:
            try:
                message = await inbox.take(deadline)
            except KernelTimeoutError:
                raise execution.timed_out(timeout) from None
            action = execution.classify(message)
            if action == "input":
                await answer_input(self, execution, message, input)
            elif action == "yield":
                yield message
    finally:
        execution.note_gap(self.router.gaps.get(execution.msg_id))
        self.router.close(execution.msg_id)
        inbox.close()
    execution.raise_input_error()
