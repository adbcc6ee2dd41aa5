"""Typed Jupyter messages: one content class per msg_type, the header and the envelope."""

from __future__ import annotations

from .base import Content, Reply, UnknownContent, content_class, registered_types
from .comm import CommClose, CommMsg, CommOpen
from .control import (
    CreateSubshellReply,
    CreateSubshellRequest,
    DebugReply,
    DebugRequest,
    DeleteSubshellReply,
    DeleteSubshellRequest,
    InterruptReply,
    InterruptRequest,
    ListSubshellReply,
    ListSubshellRequest,
    ShutdownReply,
    ShutdownRequest,
    UsageReply,
    UsageRequest,
)
from .envelope import DEFAULT_SESSION, Buffer, Message, RawParts
from .header import PROTOCOL_VERSION, SUBSHELL_PROTOCOL_VERSION, Header, new_id
from .iopub import (
    ClearOutput,
    DebugEvent,
    DisplayData,
    Error,
    ExecuteInput,
    ExecuteResult,
    IopubWelcome,
    Status,
    Stream,
    UpdateDisplayData,
)
from .shell import (
    CommInfoReply,
    CommInfoRequest,
    CompleteReply,
    CompleteRequest,
    ConnectReply,
    ConnectRequest,
    ExecuteReply,
    ExecuteRequest,
    HelpLink,
    HistoryEntry,
    HistoryReply,
    HistoryRequest,
    InspectReply,
    InspectRequest,
    IsCompleteReply,
    IsCompleteRequest,
    KernelInfoReply,
    KernelInfoRequest,
    LanguageInfo,
)
from .stdin import END_OF_INPUT, InputReply, InputRequest

__all__ = [
    "DEFAULT_SESSION",
    "END_OF_INPUT",
    "PROTOCOL_VERSION",
    "SUBSHELL_PROTOCOL_VERSION",
    "Buffer",
    "ClearOutput",
    "CommClose",
    "CommInfoReply",
    "CommInfoRequest",
    "CommMsg",
    "CommOpen",
    "CompleteReply",
    "CompleteRequest",
    "ConnectReply",
    "ConnectRequest",
    "Content",
    "CreateSubshellReply",
    "CreateSubshellRequest",
    "DebugEvent",
    "DebugReply",
    "DebugRequest",
    "DeleteSubshellReply",
    "DeleteSubshellRequest",
    "DisplayData",
    "Error",
    "ExecuteInput",
    "ExecuteReply",
    "ExecuteRequest",
    "ExecuteResult",
    "Header",
    "HelpLink",
    "HistoryEntry",
    "HistoryReply",
    "HistoryRequest",
    "InputReply",
    "InputRequest",
    "InspectReply",
    "InspectRequest",
    "InterruptReply",
    "InterruptRequest",
    "IopubWelcome",
    "IsCompleteReply",
    "IsCompleteRequest",
    "KernelInfoReply",
    "KernelInfoRequest",
    "LanguageInfo",
    "ListSubshellReply",
    "ListSubshellRequest",
    "Message",
    "RawParts",
    "Reply",
    "ShutdownReply",
    "ShutdownRequest",
    "Status",
    "Stream",
    "UnknownContent",
    "UpdateDisplayData",
    "UsageReply",
    "UsageRequest",
    "content_class",
    "new_id",
    "registered_types",
    "reply_type",
]


def reply_type(request: type[Content] | str) -> type[Content] | None:
    """The content class answering a request type (``x_request`` is answered by ``x_reply``)."""
    msg_type = request if isinstance(request, str) else request.msg_type
    if not msg_type.endswith("_request"):
        return None
    return content_class(msg_type[: -len("_request")] + "_reply")
