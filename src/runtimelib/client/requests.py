"""What both clients do, written once: the typed requests and the wait for readiness.

A typed request builds its content, asks the kernel through the client's ``_reply`` and
shapes the answer. Each one is a coroutine function here, as is ``ready``. AsyncKernelClient
takes them as they are: its primitives (``_reply``, ``_post``, an inbox's ``take``) await the
kernel. KernelClient takes them through ``run_now``: its primitives block in the calling
thread instead of suspending, so the coroutine finishes on its first step, and ``run_now``
hands back the value as a plain call would.

Why not two copies, or a generated twin: the copies drifted (defaults, error checks) before
they were merged; a generator would be one more tool for the reader to trust. Why not a
mixin: a class cannot be async in one subclass and blocking in the other and still type-check.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, Protocol, TypeVar

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
from .outputs import subshell_id, succeeded
from .readiness import Readiness
from .routing import Router

__all__ = ["Asker", "Engine", "expect", "ready", "run_now"]

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


def expect(content: Content, reply_type: type[R]) -> R:
    """``content`` if it is a ``reply_type``, else the RemoteProtocolError a client raises."""
    if not isinstance(content, reply_type):
        raise RemoteProtocolError(
            f"expected {reply_type.msg_type}, got {type(content).__name__} in reply"
        )
    return content


def run_now(request: Callable[P, Coroutine[Any, Any, T]]) -> Callable[P, T]:
    """A typed request as a blocking method: run the coroutine through in one step."""

    @functools.wraps(request)
    def blocking(*args: P.args, **kwargs: P.kwargs) -> T:
        coroutine = request(*args, **kwargs)
        try:
            coroutine.send(None)
        except StopIteration as finished:
            return finished.value  # type: ignore[no-any-return]
        coroutine.close()
        raise RuntimeError(f"{request.__name__} suspended in a blocking client")

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
                await self._post(request)
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
