"""Control channel messages: shutdown, interrupt, debugging, subshells, usage (spec, "Control")."""

from __future__ import annotations

from typing import Any, ClassVar

import msgspec

from .base import Content, Reply

__all__ = [
    "CreateSubshellReply",
    "CreateSubshellRequest",
    "DebugReply",
    "DebugRequest",
    "DeleteSubshellReply",
    "DeleteSubshellRequest",
    "InterruptReply",
    "InterruptRequest",
    "ListSubshellReply",
    "ListSubshellRequest",
    "ShutdownReply",
    "ShutdownRequest",
    "UsageReply",
    "UsageRequest",
]

_UNSET = msgspec.UNSET


class _Control(Content, kw_only=True, frozen=True):
    channel: ClassVar[str] = "control"


class _ControlReply(Reply, kw_only=True, frozen=True):
    channel: ClassVar[str] = "control"


class ShutdownRequest(_Control, kw_only=True, frozen=True):
    """Stop the kernel; with ``restart`` the manager will start it again."""

    msg_type: ClassVar[str] = "shutdown_request"
    restart: bool = False


class ShutdownReply(_ControlReply, kw_only=True, frozen=True):
    """Acknowledges a shutdown_request (ipykernel also publishes it on iopub)."""

    msg_type: ClassVar[str] = "shutdown_reply"
    restart: bool = False


class InterruptRequest(_Control, kw_only=True, frozen=True):
    """Interrupt the running execution, for kernels whose ``interrupt_mode`` is ``"message"``."""

    msg_type: ClassVar[str] = "interrupt_request"


class InterruptReply(_ControlReply, kw_only=True, frozen=True):
    """Acknowledges an interrupt_request."""

    msg_type: ClassVar[str] = "interrupt_reply"


class DebugRequest(_Control, kw_only=True, frozen=True):
    """A Debug Adapter Protocol request; ``arguments`` is free JSON."""

    msg_type: ClassVar[str] = "debug_request"
    seq: int = 0
    type: str = "request"
    command: str = ""
    arguments: dict[str, Any] | msgspec.UnsetType = _UNSET


class DebugReply(_Control, kw_only=True, frozen=True):
    """A Debug Adapter Protocol response; ``body`` is free JSON.

    Kernels without a debugger answer with an empty object, which decodes to the defaults.
    """

    msg_type: ClassVar[str] = "debug_reply"
    seq: int = 0
    type: str = "response"
    request_seq: int = 0
    success: bool = False
    command: str = ""
    message: str | msgspec.UnsetType = _UNSET
    body: dict[str, Any] | msgspec.UnsetType = _UNSET


class CreateSubshellRequest(_Control, kw_only=True, frozen=True):
    """Create a subshell: a thread that runs shell requests concurrently (protocol 5.5)."""

    msg_type: ClassVar[str] = "create_subshell_request"


class CreateSubshellReply(_ControlReply, kw_only=True, frozen=True):
    """The id of the new subshell, for ``subshell_id`` in later headers."""

    msg_type: ClassVar[str] = "create_subshell_reply"
    subshell_id: str = ""


class DeleteSubshellRequest(_Control, kw_only=True, frozen=True):
    """Delete a subshell."""

    msg_type: ClassVar[str] = "delete_subshell_request"
    subshell_id: str


class DeleteSubshellReply(_ControlReply, kw_only=True, frozen=True):
    """Acknowledges a delete_subshell_request."""

    msg_type: ClassVar[str] = "delete_subshell_reply"


class ListSubshellRequest(_Control, kw_only=True, frozen=True):
    """List the kernel's subshells."""

    msg_type: ClassVar[str] = "list_subshell_request"


class ListSubshellReply(_ControlReply, kw_only=True, frozen=True):
    """The ids of the kernel's subshells (the spec names the list ``subshell_id``)."""

    msg_type: ClassVar[str] = "list_subshell_reply"
    subshell_id: list[str] = []


class UsageRequest(_Control, kw_only=True, frozen=True):
    """Ask for resource usage (an ipykernel extension of the protocol)."""

    msg_type: ClassVar[str] = "usage_request"


class UsageReply(_ControlReply, kw_only=True, frozen=True):
    """Resource usage as ipykernel reports it; fields it leaves out stay unset."""

    msg_type: ClassVar[str] = "usage_reply"
    hostname: str | msgspec.UnsetType = _UNSET
    pid: int | msgspec.UnsetType = _UNSET
    kernel_cpu: float | msgspec.UnsetType = _UNSET
    kernel_memory: int | msgspec.UnsetType = _UNSET
    host_cpu_percent: float | msgspec.UnsetType = _UNSET
    cpu_count: int | msgspec.UnsetType | None = _UNSET
    host_virtual_memory: dict[str, Any] | msgspec.UnsetType = _UNSET
