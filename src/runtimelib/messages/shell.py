"""Shell channel requests and replies (messaging spec, "Messages on the shell channel")."""

from __future__ import annotations

from typing import Any, ClassVar

import msgspec

from .base import Content, Reply

__all__ = [
    "CommInfoReply",
    "CommInfoRequest",
    "CompleteReply",
    "CompleteRequest",
    "ConnectReply",
    "ConnectRequest",
    "ExecuteReply",
    "ExecuteRequest",
    "HelpLink",
    "HistoryEntry",
    "HistoryReply",
    "HistoryRequest",
    "InspectReply",
    "InspectRequest",
    "IsCompleteReply",
    "IsCompleteRequest",
    "KernelInfoReply",
    "KernelInfoRequest",
    "LanguageInfo",
]

_UNSET = msgspec.UNSET


class ExecuteRequest(Content, kw_only=True, frozen=True):
    """Run ``code``; ``stop_on_error`` aborts the queued executes after an error."""

    msg_type: ClassVar[str] = "execute_request"
    code: str
    silent: bool = False
    store_history: bool = True
    user_expressions: dict[str, str] = {}
    allow_stdin: bool = True
    stop_on_error: bool = True


class ExecuteReply(Reply, kw_only=True, frozen=True):
    """The outcome of an execute_request; its outputs travel on iopub.

    ``execution_count`` is None when a kernel sends null (some do for silent requests).
    """

    msg_type: ClassVar[str] = "execute_reply"
    execution_count: int | None = None
    payload: list[dict[str, Any]] = []
    user_expressions: dict[str, Any] = {}


class InspectRequest(Content, kw_only=True, frozen=True):
    """Ask for information about the object at ``cursor_pos`` (help, signature, docstring)."""

    msg_type: ClassVar[str] = "inspect_request"
    code: str
    cursor_pos: int
    detail_level: int = 0


class InspectReply(Reply, kw_only=True, frozen=True):
    """What the kernel knows about the inspected object, as a MIME bundle."""

    msg_type: ClassVar[str] = "inspect_reply"
    found: bool = False
    data: dict[str, Any] = {}
    metadata: dict[str, Any] = {}


class CompleteRequest(Content, kw_only=True, frozen=True):
    """Ask for completions of ``code`` at ``cursor_pos``."""

    msg_type: ClassVar[str] = "complete_request"
    code: str
    cursor_pos: int


class CompleteReply(Reply, kw_only=True, frozen=True):
    """Completions replacing ``code[cursor_start:cursor_end]``."""

    msg_type: ClassVar[str] = "complete_reply"
    matches: list[str] = []
    cursor_start: int = 0
    cursor_end: int = 0
    metadata: dict[str, Any] = {}


class HistoryRequest(Content, kw_only=True, frozen=True):
    """Ask for input history by ``"tail"``, ``"range"`` or ``"search"``.

    The fields for the other access types stay off the wire: kernels treat a present key
    as a request for that filter.
    """

    msg_type: ClassVar[str] = "history_request"
    output: bool = False
    raw: bool = True
    hist_access_type: str = "tail"
    session: int | msgspec.UnsetType = _UNSET
    start: int | msgspec.UnsetType = _UNSET
    stop: int | msgspec.UnsetType = _UNSET
    n: int | msgspec.UnsetType = _UNSET
    pattern: str | msgspec.UnsetType = _UNSET
    unique: bool | msgspec.UnsetType = _UNSET


#: One history entry: ``(session, line_number, input)``, or with ``output=True``
#: ``(session, line_number, (input, output))``. metakernel's kernels send null for the session
#: and line number: kept, as the kernel sent them.
HistoryEntry = tuple[int | None, int | None, str | tuple[str, str | None]]


class HistoryReply(Reply, kw_only=True, frozen=True):
    """History entries in either shape (see ``HistoryEntry``)."""

    msg_type: ClassVar[str] = "history_reply"
    history: list[HistoryEntry] = []


class IsCompleteRequest(Content, kw_only=True, frozen=True):
    """Ask whether ``code`` is ready to run or needs more lines."""

    msg_type: ClassVar[str] = "is_complete_request"
    code: str


class IsCompleteReply(Content, kw_only=True, frozen=True):
    """``status`` is complete, incomplete, invalid or unknown; ``indent`` for incomplete code."""

    msg_type: ClassVar[str] = "is_complete_reply"
    status: str = "unknown"
    indent: str = ""


class ConnectRequest(Content, kw_only=True, frozen=True):
    """Ask the kernel for its ports (deprecated by the spec, still answered by ipykernel)."""

    msg_type: ClassVar[str] = "connect_request"


class ConnectReply(Reply, kw_only=True, frozen=True):
    """The kernel's ports."""

    msg_type: ClassVar[str] = "connect_reply"
    shell_port: int = 0
    iopub_port: int = 0
    stdin_port: int = 0
    hb_port: int = 0
    control_port: int = 0


class CommInfoRequest(Content, kw_only=True, frozen=True):
    """List the open comms, optionally only those of one target."""

    msg_type: ClassVar[str] = "comm_info_request"
    target_name: str | msgspec.UnsetType = _UNSET


class CommInfoReply(Reply, kw_only=True, frozen=True):
    """Open comms: ``{comm_id: {"target_name": name}}``."""

    msg_type: ClassVar[str] = "comm_info_reply"
    comms: dict[str, dict[str, Any]] = {}


class KernelInfoRequest(Content, kw_only=True, frozen=True):
    """Ask the kernel who it is; answering it is also how a kernel shows it is ready."""

    msg_type: ClassVar[str] = "kernel_info_request"


class LanguageInfo(msgspec.Struct, kw_only=True, frozen=True):
    """The language a kernel runs (kernel_info_reply's ``language_info``)."""

    name: str
    version: str = ""
    mimetype: str = ""
    file_extension: str = ""
    pygments_lexer: str | msgspec.UnsetType = _UNSET
    codemirror_mode: str | dict[str, Any] | msgspec.UnsetType = _UNSET
    nbconvert_exporter: str | msgspec.UnsetType = _UNSET


class HelpLink(msgspec.Struct, kw_only=True, frozen=True):
    """A link for a frontend's help menu."""

    text: str
    url: str


class KernelInfoReply(Reply, kw_only=True, frozen=True):
    """Who the kernel is: implementation, protocol version, language and features.

    ``supported_features`` (JEP 92) lists optional protocol features such as
    ``"kernel subshells"`` and ``"debugger"``.
    """

    msg_type: ClassVar[str] = "kernel_info_reply"
    protocol_version: str = ""
    implementation: str = ""
    implementation_version: str = ""
    language_info: LanguageInfo = LanguageInfo(name="")
    banner: str = ""
    debugger: bool = False
    help_links: list[HelpLink] = []
    supported_features: list[str] = []
