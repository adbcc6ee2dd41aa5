"""Comms, frontend side: open, send, close, answer the kernel's (spec, "Custom Messages")."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import Any, Protocol

from ..messages import CommClose, CommMsg, CommOpen, Content, Message

__all__ = ["Comm", "CommManager", "SendComm"]

log = logging.getLogger("runtimelib.client")

#: Called with the comm and the comm_open message when the kernel opens a comm to a target.
TargetHandler = Callable[["Comm", Message[CommOpen]], None]
#: Called with each comm_msg (or the comm_close) message of a comm.
MessageHandler = Callable[[Message[Content]], None]


class SendComm(Protocol):
    """Sends a comm message to the kernel (on shell) at once, without waiting: the client's."""

    def __call__(
        self, content: Content, *, metadata: dict[str, Any] | None, buffers: list[bytes] | None
    ) -> object: ...


class Comm:
    """One comm: a two-way channel with an object on the kernel side (a widget, say).

    ``send`` and ``close`` never wait, on either client, so handlers can call them.
    """

    def __init__(self, manager: CommManager, comm_id: str, target_name: str) -> None:
        self.manager = manager
        self.comm_id = comm_id
        self.target_name = target_name
        self.closed = False
        self.messages: list[Message[Content]] = []
        self._on_msg: list[MessageHandler] = []
        self._on_close: list[MessageHandler] = []

    def on_msg(self, handler: MessageHandler) -> None:
        """Call ``handler`` with each comm_msg from the kernel."""
        self._on_msg.append(handler)

    def on_close(self, handler: MessageHandler) -> None:
        """Call ``handler`` when the kernel closes the comm."""
        self._on_close.append(handler)

    def send(
        self,
        data: dict[str, Any],
        *,
        metadata: dict[str, Any] | None = None,
        buffers: list[bytes] | None = None,
    ) -> None:
        """Send a comm_msg to the kernel side."""
        self.manager.send(
            CommMsg(comm_id=self.comm_id, data=data), metadata=metadata, buffers=buffers
        )

    def close(self, data: dict[str, Any] | None = None) -> None:
        """Close the comm on both sides."""
        self.closed = True
        self.manager.comms.pop(self.comm_id, None)
        self.manager.send(
            CommClose(comm_id=self.comm_id, data=data or {}), metadata=None, buffers=None
        )

    def _receive(self, message: Message[Content]) -> None:
        self.messages.append(message)
        handlers = self._on_close if isinstance(message.content, CommClose) else self._on_msg
        for handler in handlers:
            try:
                handler(message)
            except Exception:
                log.exception("comm handler failed for %s", self.comm_id)


class CommManager:
    """The comms of one client, and the targets the kernel may open comms to."""

    def __init__(self, send: SendComm) -> None:
        self.send = send
        self.comms: dict[str, Comm] = {}
        self.targets: dict[str, TargetHandler] = {}
        #: Answer a comm the kernel opens to a target nobody registered with comm_close, as
        #: the spec asks. A runner that only records what comms do (notebook execution, as
        #: nbclient) leaves them open instead: a closed widget's comm ignores the frontend.
        self.close_unknown = True

    def register_target(self, target_name: str, handler: TargetHandler) -> None:
        """Accept comms the kernel opens to ``target_name``; ``handler`` gets each new one."""
        self.targets[target_name] = handler

    def open(
        self,
        target_name: str,
        data: dict[str, Any] | None = None,
        *,
        metadata: dict[str, Any] | None = None,
        buffers: list[bytes] | None = None,
    ) -> Comm:
        """Open a comm to a target in the kernel."""
        comm = Comm(self, uuid.uuid4().hex, target_name)
        self.comms[comm.comm_id] = comm
        self.send(
            CommOpen(comm_id=comm.comm_id, target_name=target_name, data=data or {}),
            metadata=metadata,
            buffers=buffers,
        )
        return comm

    def handle(self, message: Message[Content]) -> None:
        """Router listener: deliver comm messages that come from the kernel (iopub)."""
        if message.channel != "iopub":
            return
        content = message.content
        if isinstance(content, CommOpen):
            comm = Comm(self, content.comm_id, content.target_name)
            handler = self.targets.get(content.target_name)
            if handler is None:
                if self.close_unknown:
                    # Spec: an unknown target is answered with comm_close.
                    self.send(CommClose(comm_id=content.comm_id), metadata=None, buffers=None)
                return
            self.comms[comm.comm_id] = comm
            handler(comm, message)  # type: ignore[arg-type]
        elif isinstance(content, (CommMsg, CommClose)):
            comm_or_none = self.comms.get(content.comm_id)
            if comm_or_none is None:
                return
            if isinstance(content, CommClose):
                comm_or_none.closed = True
                self.comms.pop(content.comm_id, None)
            comm_or_none._receive(message)
