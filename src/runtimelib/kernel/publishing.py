"""What a kernel says to its frontends: outputs on iopub, input() on stdin, and the welcome
each new iopub subscriber gets. The Kernel class (base.py) is built on this."""

from __future__ import annotations

import contextvars
import threading
from typing import Any

import anyio
import zmq

from ..messages import (
    END_OF_INPUT,
    ClearOutput,
    Content,
    DisplayData,
    Error,
    ExecuteResult,
    InputReply,
    InputRequest,
    IopubWelcome,
    Message,
    Status,
    Stream,
    UpdateDisplayData,
)
from ..protocol import Session
from ..transports.zmq import AsyncChannel, recv_parts, zmq_events, zmq_fd

__all__ = ["Publisher", "StdinNotAllowedError", "current_request"]

#: The request being handled, so that outputs and input() find their parent.
_current: contextvars.ContextVar[Message[Any] | None] = contextvars.ContextVar(
    "runtimelib_kernel_request", default=None
)


def current_request() -> Message[Any] | None:
    """The request the kernel is handling in this task (or thread it started), if any."""
    return _current.get()


class StdinNotAllowedError(RuntimeError):
    """input() was called but the frontend did not allow stdin for this request."""


class Publisher:
    """Outputs, input() and iopub welcomes, on the sockets of a running kernel."""

    session: Session
    execution_count: int
    _sockets: dict[str, AsyncChannel]
    _iopub_lock: threading.Lock
    _inputs: dict[str, anyio.Event]
    _input_values: dict[str, str]
    _served: bool

    async def _receive(self, channel: AsyncChannel) -> Message[Content] | None:
        raise NotImplementedError

    def publish_now(
        self,
        content: Content,
        parent: Message[Any] | None = None,
        *,
        metadata: dict[str, Any] | None = None,
        buffers: tuple[bytes, ...] = (),
    ) -> None:
        """Publish on iopub at once, from any thread (kernels running code synchronously)."""
        parent = parent if parent is not None else _current.get()
        message = self.session.message(
            content, parent, channel="iopub", metadata=metadata, buffers=buffers
        )
        topic = f"kernel.{self.session.session_id}.{content.msg_type}".encode()
        frames = self.session.serialize(message, identities=(topic,))
        # The XPUB has no send limit, so this never blocks; the lock lets other threads
        # (an output flusher) share the socket with the event loop.
        with self._iopub_lock:
            sock = self._sockets["iopub"].socket
            sock.send_multipart(frames, copy=False)

    async def publish(
        self,
        content: Content,
        parent: Message[Any] | None = None,
        *,
        metadata: dict[str, Any] | None = None,
        buffers: tuple[bytes, ...] = (),
    ) -> None:
        """Publish on iopub, as a child of ``parent`` (default: the request being handled)."""
        self.publish_now(content, parent, metadata=metadata, buffers=buffers)

    async def stream(self, text: str, name: str = "stdout") -> None:
        """Write text to the frontend's stdout or stderr."""
        await self.publish(Stream(name=name, text=text))

    async def display(
        self,
        data: dict[str, Any],
        metadata: dict[str, Any] | None = None,
        *,
        display_id: str | None = None,
        update: bool = False,
    ) -> None:
        """Show rich output; ``update`` replaces the earlier output with the same display_id."""
        transient = {"display_id": display_id} if display_id else {}
        cls = UpdateDisplayData if update else DisplayData
        await self.publish(cls(data=data, metadata=metadata or {}, transient=transient))

    async def clear_output(self, wait: bool = False) -> None:
        """Clear the outputs of the current cell (with ``wait``: when the next output comes)."""
        await self.publish(ClearOutput(wait=wait))

    async def execute_result(
        self, data: dict[str, Any], metadata: dict[str, Any] | None = None
    ) -> None:
        """Publish the value of the executed code (``Out[n]``)."""
        await self.publish(
            ExecuteResult(data=data, metadata=metadata or {}, execution_count=self.execution_count)
        )

    async def error(self, ename: str, evalue: str, traceback: list[str]) -> None:
        """Publish an error output."""
        await self.publish(Error(ename=ename, evalue=evalue, traceback=traceback))

    async def input(
        self, prompt: str = "", *, password: bool = False, parent: Message[Any] | None = None
    ) -> str:
        """Ask the frontend for a line (input_request on stdin) and wait for it.

        ``parent`` is the execute_request asking (default: the request being handled).
        """
        request = parent if parent is not None else _current.get()
        if request is None or not getattr(request.content, "allow_stdin", False):
            raise StdinNotAllowedError("the frontend does not support input requests")
        message = self.session.message(
            InputRequest(prompt=prompt, password=password),
            request,
            channel="stdin",
            identities=request.identities,
        )
        done = self._inputs[message.msg_id] = anyio.Event()
        try:
            await self._sockets["stdin"].send(message)
            await done.wait()
            value = self._input_values.pop(message.msg_id)
        finally:
            self._inputs.pop(message.msg_id, None)
        if value == END_OF_INPUT:
            # The frontend has no more input (its stdin ended): as Python at the end of a file.
            raise EOFError("EOF when reading a line")
        return value

    async def _read_stdin(self) -> None:
        channel = self._sockets["stdin"]
        while True:
            message = await self._receive(channel)
            if message is None or not isinstance(message.content, InputReply):
                continue
            parent = message.parent_id
            if parent is None and len(self._inputs) == 1:
                # jupyter_client's input() replies with an empty parent header.
                parent = next(iter(self._inputs))
            event = self._inputs.get(parent or "")
            if event is not None and parent is not None:
                self._input_values[parent] = message.content.value
                event.set()

    async def _welcome_subscribers(self) -> None:
        # XPUB delivers b"\x01" + topic for each subscription (JEP 65): welcome the subscriber.
        sock = self._sockets["iopub"].socket
        fd = zmq_fd(sock)
        while True:
            with self._iopub_lock:
                frames = None
                if zmq_events(sock) & zmq.POLLIN:
                    frames = recv_parts(sock, zmq.NOBLOCK)
            if frames is None:
                # Sends on this socket (from any thread) can swallow the descriptor's edge, so
                # look again now and then rather than trust it alone.
                with anyio.move_on_after(0.2):
                    await anyio.wait_readable(fd)
            elif frames[0][:1] == b"\x01":
                topic = frames[0][1:].decode("utf-8", "replace")
                self.publish_now(IopubWelcome(subscription=topic), parent=None)
                if not self._served:
                    # The "starting" status went out as the socket was bound, before anyone
                    # could hear it: a subscriber that joins before the first request hears
                    # it now (a server watching a restarted kernel then shows it starting).
                    self.publish_now(Status(execution_state="starting"), parent=None)
