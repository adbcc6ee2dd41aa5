"""IOPub messages: outputs, status and events a kernel broadcasts (messaging spec, "IOPub")."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import msgspec

from .base import Content

if TYPE_CHECKING:
    from ..media import MimeBundle

__all__ = [
    "ClearOutput",
    "DebugEvent",
    "DisplayData",
    "Error",
    "ExecuteInput",
    "ExecuteResult",
    "IopubWelcome",
    "Status",
    "Stream",
    "UpdateDisplayData",
]


class _IOPub(Content, kw_only=True, frozen=True):
    channel: ClassVar[str] = "iopub"


class Stream(_IOPub, kw_only=True, frozen=True):
    """Text written to ``stdout`` or ``stderr`` (``name``)."""

    msg_type: ClassVar[str] = "stream"
    name: str = "stdout"
    text: str


class _Rich(_IOPub, kw_only=True, frozen=True):
    """Content carrying a MIME bundle: ``data`` and per-type ``metadata``."""

    data: dict[str, Any] = {}
    metadata: dict[str, Any] = {}
    transient: dict[str, Any] = {}

    @property
    def bundle(self) -> MimeBundle:
        """``data`` and ``metadata`` as a MimeBundle."""
        from ..media import MimeBundle

        return MimeBundle(self.data, self.metadata)

    @property
    def display_id(self) -> str | None:
        """The ``transient.display_id`` that later updates refer to, if any."""
        value = self.transient.get("display_id")
        return value if isinstance(value, str) else None


class DisplayData(_Rich, kw_only=True, frozen=True):
    """Rich output; ``transient["display_id"]`` names it for later updates."""

    msg_type: ClassVar[str] = "display_data"


class UpdateDisplayData(_Rich, kw_only=True, frozen=True):
    """Replace every earlier output with the same ``transient["display_id"]``."""

    msg_type: ClassVar[str] = "update_display_data"


class ExecuteResult(_Rich, kw_only=True, frozen=True):
    """The value of the last expression of an execution (``Out[n]``)."""

    msg_type: ClassVar[str] = "execute_result"
    execution_count: int | None = None


class ExecuteInput(_IOPub, kw_only=True, frozen=True):
    """The code being run, rebroadcast so every frontend sees it."""

    msg_type: ClassVar[str] = "execute_input"
    code: str
    execution_count: int | None = None


class Error(_IOPub, kw_only=True, frozen=True):
    """An exception raised by the executed code, as an output."""

    msg_type: ClassVar[str] = "error"
    ename: str = ""
    evalue: str = ""
    traceback: list[str] = []


class Status(_IOPub, kw_only=True, frozen=True):
    """Kernel state: ``"starting"``, ``"busy"`` or ``"idle"``."""

    msg_type: ClassVar[str] = "status"
    execution_state: str


class ClearOutput(_IOPub, kw_only=True, frozen=True):
    """Clear the outputs of the parent request; with ``wait``, only when new output arrives."""

    msg_type: ClassVar[str] = "clear_output"
    wait: bool = False


class IopubWelcome(_IOPub, kw_only=True, frozen=True):
    """Sent by an XPUB iopub to a new subscriber (JEP 65): the kernel can now be heard."""

    msg_type: ClassVar[str] = "iopub_welcome"
    subscription: str = ""


class DebugEvent(_IOPub, kw_only=True, frozen=True):
    """A Debug Adapter Protocol event; ``body`` is free JSON."""

    msg_type: ClassVar[str] = "debug_event"
    seq: int = 0
    type: str = "event"
    event: str = ""
    body: dict[str, Any] | msgspec.UnsetType = msgspec.UNSET
