"""Shells of a kernel: the main shell and its subshells (protocol 5.5).

Every shell request goes to the shell its header names (``subshell_id``; none is the main
shell) and each shell handles its own in the order they came, at the same time as the
others: a subshell answers while the main shell runs a long cell. A kernel creates, lists and
deletes subshells on the control channel. A deleted subshell takes no new request, but what
it was already sent is still handled and answered.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from ..messages import Content, Message

__all__ = ["Shell", "Shells", "unknown_subshell"]


class Shell:
    """One shell: the requests sent to it, handled one at a time, in order."""

    def __init__(self, subshell_id: str | None) -> None:
        self.subshell_id = subshell_id
        self._send: MemoryObjectSendStream[Message[Content]]
        self._receive: MemoryObjectReceiveStream[Message[Content]]
        self._send, self._receive = anyio.create_memory_object_stream(math.inf)
        #: The running execution, cancelled by an interrupt (kernels whose code runs on the
        #: event loop).
        self.execute_scope: anyio.CancelScope | None = None
        #: Requests to answer as aborted once the current reply is out (stop_on_error).
        self.to_abort: list[Message[Content]] = []
        #: Whether requests are being aborted now.
        self.aborting = False

    def put(self, request: Message[Content]) -> None:
        self._send.send_nowait(request)

    def take_queued(self) -> list[Message[Content]]:
        """The requests sent to this shell and not handled yet, taken from it."""
        queued = []
        while True:
            try:
                queued.append(self._receive.receive_nowait())
            except (anyio.WouldBlock, anyio.EndOfStream):
                return queued

    def close(self) -> None:
        """Take no more requests; the ones sent already are still handled."""
        self._send.close()

    async def serve(
        self,
        handle: Callable[[Shell, Message[Content]], Awaitable[None]],
        ended: Callable[[str], None],
    ) -> None:
        async with self._receive:
            async for request in self._receive:
                await handle(self, request)
        if self.subshell_id is not None:
            ended(self.subshell_id)


class Shells:
    """The main shell and the subshells, each served by a task of ``group``."""

    def __init__(
        self,
        group: TaskGroup,
        handle: Callable[[Shell, Message[Content]], Awaitable[None]],
        ended: Callable[[str], None],
    ) -> None:
        """``handle(shell, request)`` handles a request; ``ended(subshell_id)`` is called
        when a deleted subshell has handled all it was sent."""
        self._group = group
        self._handle = handle
        self._ended = ended
        self.main = self._start(None)
        self._subshells: dict[str, Shell] = {}

    def _start(self, subshell_id: str | None) -> Shell:
        shell = Shell(subshell_id)
        name = f"shell {subshell_id or 'main'}"
        self._group.start_soon(shell.serve, self._handle, self._ended, name=name)
        return shell

    def find(self, subshell_id: str | None) -> Shell | None:
        """The shell a request with this ``subshell_id`` goes to; None if there is none."""
        if subshell_id is None:
            return self.main
        return self._subshells.get(subshell_id)

    def create(self) -> str:
        subshell_id = str(uuid.uuid4())
        self._subshells[subshell_id] = self._start(subshell_id)
        return subshell_id

    def delete(self, subshell_id: str) -> bool:
        """Delete a subshell; False if there is no such subshell."""
        shell = self._subshells.pop(subshell_id, None)
        if shell is None:
            return False
        shell.close()
        return True

    def ids(self) -> list[str]:
        return list(self._subshells)

    def all(self) -> list[Shell]:
        return [self.main, *self._subshells.values()]

    def __repr__(self) -> str:
        return f"Shells(subshells={self.ids()!r})"


def unknown_subshell(subshell_id: Any) -> tuple[str, str]:
    """The error a request to a subshell that does not exist is answered with."""
    return "SubshellNotFound", f"there is no subshell {subshell_id!r}"
