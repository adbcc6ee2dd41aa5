"""Comms for the built-in Python kernel through the ``comm`` package, so ipywidgets works.

ipywidgets (and other comm users) open comms with ``comm.create_comm`` and look targets up in
``comm.get_comm_manager()``; a kernel is expected to replace both, as ipykernel does. Left
alone they give a comm that sends nothing. When ``comm`` is first imported (see
import_hooks.py), both are replaced: comms publish on the kernel's iopub, as children of the
request being handled, and the frontend's comm messages reach the ``comm`` package's manager
(the kernel runs its handlers in the main thread, where the user's code runs).
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any, Protocol

from ..messages import CommClose, CommMsg, CommOpen, Content, Message
from .import_hooks import when_imported

__all__ = ["CommHost", "install_comms", "message_dict"]


class CommHost(Protocol):
    """What the kernel offers the comms: publishing, and a record of the open ones."""

    comms: dict[str, str]

    def publish_now(
        self,
        content: Content,
        parent: Message[Any] | None = None,
        *,
        metadata: dict[str, Any] | None = None,
        buffers: tuple[bytes, ...] = (),
    ) -> None: ...

    def comm_parent(self) -> Message[Any] | None: ...


def message_dict(message: Message[Any]) -> dict[str, Any]:
    """A received message as the ``comm`` package (and ipykernel) hands it to handlers."""
    import msgspec

    header = msgspec.to_builtins(message.header)
    parent = msgspec.to_builtins(message.parent_header) if message.parent_header else {}
    return {
        "header": header,
        "parent_header": parent,
        "msg_id": message.msg_id,
        "msg_type": message.msg_type,
        "metadata": message.metadata,
        "content": message.raw_content,
        "buffers": [memoryview(bytes(buffer)) for buffer in message.buffers],
    }


def _publish(
    host: CommHost,
    msg_type: str,
    comm_id: str,
    data: dict[str, Any] | None,
    metadata: dict[str, Any] | None,
    buffers: list[Any] | None,
    keys: dict[str, Any],
) -> None:
    content: Content
    if msg_type == "comm_open":
        target = str(keys.get("target_name") or "")
        content = CommOpen(
            comm_id=comm_id,
            target_name=target,
            data=data or {},
            target_module=keys.get("target_module"),
        )
        host.comms[comm_id] = target
    elif msg_type == "comm_close":
        content = CommClose(comm_id=comm_id, data=data or {})
        host.comms.pop(comm_id, None)
    else:
        content = CommMsg(comm_id=comm_id, data=data or {})
    host.publish_now(
        content,
        host.comm_parent(),
        metadata=metadata,
        buffers=tuple(bytes(buffer) for buffer in buffers or ()),
    )


def _patch(module: ModuleType, host: CommHost, ready: Callable[[Any], None]) -> None:
    base = module.base_comm

    class KernelView:
        """What ipywidgets asks a comm's ``kernel`` for: the request being handled (an
        Output widget captures the outputs of that request's msg_id)."""

        def get_parent(self) -> dict[str, Any]:
            parent = host.comm_parent()
            return message_dict(parent) if parent is not None else {}

    view = KernelView()

    class KernelComm(base.BaseComm):  # type: ignore[misc,name-defined]
        """A comm whose messages go out on the kernel's iopub."""

        kernel = view

        def publish_msg(
            self,
            msg_type: str,
            data: dict[str, Any] | None = None,
            metadata: dict[str, Any] | None = None,
            buffers: list[Any] | None = None,
            **keys: Any,
        ) -> None:
            _publish(host, msg_type, self.comm_id, data, metadata, buffers, keys)

    manager = base.CommManager()
    setattr(module, "create_comm", KernelComm)  # noqa: B010 - a module's function, replaced
    setattr(module, "get_comm_manager", lambda: manager)  # noqa: B010
    ready(manager)


def install_comms(host: CommHost, ready: Callable[[Any], None]) -> None:
    """Bind the ``comm`` package to ``host`` when it is imported; ``ready(manager)`` then gets
    its comm manager, to hand the frontend's comm messages to."""
    when_imported("comm", lambda module: _patch(module, host, ready))
