"""Collecting the outputs of one execution, and the result an execute call returns (sans-IO)."""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec

from ..errors import KernelReplyError, RuntimelibError
from ..messages import (
    ClearOutput,
    Content,
    CreateSubshellReply,
    DisplayData,
    Error,
    ExecuteReply,
    ExecuteResult,
    Reply,
    Stream,
    UpdateDisplayData,
)

__all__ = [
    "ExecutionError",
    "ExecutionResult",
    "Output",
    "OutputCollector",
    "subshell_id",
    "to_nbformat",
]

#: An output of an execution, as the message content that produced it.
Output = Stream | DisplayData | ExecuteResult | Error

R = TypeVar("R", bound=Reply)


class ExecutionError(RuntimelibError):
    """The executed code raised (only when the caller asked for raising)."""

    def __init__(self, result: ExecutionResult) -> None:
        error = result.error
        summary = f"{error.ename}: {error.evalue}" if error is not None else result.status
        super().__init__(summary)
        self.result = result

    @property
    def traceback(self) -> list[str]:
        """The kernel's traceback lines (with ANSI colours, as kernels send them)."""
        return self.result.error.traceback if self.result.error is not None else []


class OutputCollector:
    """Builds the output list of one execution the way a notebook frontend does.

    Consecutive stream outputs of the same name are merged (``merge_streams``); an
    ``update_display_data`` or a new output with a ``display_id`` rewrites every earlier output
    with that id; ``clear_output`` empties the list at once, or with ``wait`` just before the
    next output arrives.
    """

    def __init__(self, *, merge_streams: bool = True) -> None:
        self._outputs: list[Output] = []
        self.merge_streams = merge_streams
        self._clear_pending = False
        # display_id -> indices into the outputs
        self._displays: dict[str, list[int]] = {}
        # Text of the last stream output not yet joined: joining each piece as it came would
        # copy the whole text again for every message of a flood.
        self._pending: list[str] = []

    @property
    def outputs(self) -> list[Output]:
        """The outputs so far."""
        self._join()
        return self._outputs

    def _join(self) -> None:
        if self._pending:
            last = self._outputs[-1]
            assert isinstance(last, Stream)
            self._outputs[-1] = Stream(name=last.name, text=last.text + "".join(self._pending))
            self._pending.clear()

    def add(self, content: Content) -> bool:
        """Take one iopub content; return True if it changed the outputs."""
        if isinstance(content, ClearOutput):
            if content.wait:
                self._clear_pending = True
            else:
                self._clear()
            return not content.wait
        if isinstance(content, UpdateDisplayData):
            return self._update(content.display_id, content)
        if not isinstance(content, (Stream, DisplayData, ExecuteResult, Error)):
            return False
        if self._clear_pending:
            self._clear()
        if isinstance(content, (DisplayData, ExecuteResult)) and content.display_id:
            self._update(content.display_id, content)
            self._join()
            self._displays.setdefault(content.display_id, []).append(len(self._outputs))
        last = self._outputs[-1] if self._outputs else None
        if (
            self.merge_streams
            and isinstance(content, Stream)
            and isinstance(last, Stream)
            and last.name == content.name
        ):
            self._pending.append(content.text)
            return True
        self._join()
        self._outputs.append(content)
        return True

    def _clear(self) -> None:
        self._outputs.clear()
        self._pending.clear()
        self._displays.clear()
        self._clear_pending = False

    def _update(
        self, display_id: str | None, content: DisplayData | ExecuteResult | UpdateDisplayData
    ) -> bool:
        changed = False
        for index in self._displays.get(display_id or "", ()):
            old = self._outputs[index]
            if isinstance(old, (DisplayData, ExecuteResult)):
                self._outputs[index] = msgspec.structs.replace(
                    old, data=content.data, metadata=content.metadata
                )
                changed = True
        return changed


class ExecutionResult(msgspec.Struct, kw_only=True):
    """Everything one execute request produced.

    ``status`` is ``"ok"``, ``"error"`` or ``"aborted"`` (a queued execute skipped after an
    earlier error with ``stop_on_error``).
    """

    status: str
    execution_count: int | None = None
    outputs: list[Output] = []
    reply: ExecuteReply | None = None
    msg_id: str = ""
    #: Why some of this execution's output may be missing, None when none can be: a Jupyter
    #: Server's iopub rate limit dropped some (its notice is among the outputs), or the
    #: connection to the server dropped and it could not keep the output meanwhile.
    missing_output: str | None = None

    @property
    def ok(self) -> bool:
        """Whether the code ran without raising."""
        return self.status == "ok"

    @property
    def error(self) -> Error | None:
        """The exception the code raised: the error output, else the reply's error fields."""
        for output in reversed(self.outputs):
            if isinstance(output, Error):
                return output
        reply = self.reply
        if reply is not None and reply.status == "error":
            return Error(
                ename=_text(reply.ename),
                evalue=_text(reply.evalue),
                traceback=reply.traceback if isinstance(reply.traceback, list) else [],
            )
        return None

    @property
    def stdout(self) -> str:
        """All text written to stdout."""
        return "".join(o.text for o in self.outputs if isinstance(o, Stream) and o.name == "stdout")

    @property
    def stderr(self) -> str:
        """All text written to stderr."""
        return "".join(o.text for o in self.outputs if isinstance(o, Stream) and o.name == "stderr")

    @property
    def result(self) -> ExecuteResult | None:
        """The value of the last expression (``Out[n]``), if any."""
        for output in self.outputs:
            if isinstance(output, ExecuteResult):
                return output
        return None

    @property
    def payload(self) -> list[dict[str, Any]]:
        """The reply's payloads (e.g. ``set_next_input`` from ipykernel)."""
        return self.reply.payload if self.reply is not None else []

    @property
    def user_expressions(self) -> dict[str, Any]:
        """The evaluated ``user_expressions`` of the request."""
        return self.reply.user_expressions if self.reply is not None else {}

    def raise_for_error(self) -> ExecutionResult:
        """Raise ExecutionError unless the status is ok; return self otherwise."""
        if self.status != "ok":
            raise ExecutionError(self)
        return self


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def to_nbformat(output: Output) -> dict[str, Any]:
    """One output as an nbformat v4 output dict (as nbformat's ``output_from_msg`` builds)."""
    if isinstance(output, Stream):
        return {"output_type": "stream", "name": output.name, "text": output.text}
    if isinstance(output, Error):
        return {
            "output_type": "error",
            "ename": output.ename,
            "evalue": output.evalue,
            "traceback": list(output.traceback),
        }
    if isinstance(output, ExecuteResult):
        return {
            "output_type": "execute_result",
            "data": output.data,
            "metadata": output.metadata,
            "execution_count": output.execution_count,
        }
    return {"output_type": "display_data", "data": output.data, "metadata": output.metadata}


def succeeded(reply: R, what: str) -> R:
    """``reply`` if its status is ok; otherwise KernelReplyError: "the kernel did not
    <what> (ename: evalue)"."""
    if reply.status != "ok":
        ename = reply.ename if isinstance(reply.ename, str) else ""
        evalue = reply.evalue if isinstance(reply.evalue, str) else ""
        why = f"{ename}: {evalue}" if ename else f"status {reply.status!r}"
        raise KernelReplyError(f"the kernel did not {what} ({why})", ename=ename, evalue=evalue)
    return reply


def subshell_id(reply: CreateSubshellReply) -> str:
    """The new subshell's id, or KernelReplyError for a kernel that made none: an empty id
    would send later requests to the main shell without a word."""
    if not succeeded(reply, "create a subshell").subshell_id:
        raise KernelReplyError("the kernel did not create a subshell (an empty subshell id)")
    return reply.subshell_id
