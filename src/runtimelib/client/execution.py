"""The life of one execute request, shared by both client twins (sans-IO)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, TypedDict

from ..errors import KernelTimeoutError
from ..messages import (
    END_OF_INPUT,
    Content,
    DisplayData,
    Error,
    ExecuteReply,
    ExecuteRequest,
    ExecuteResult,
    InputReply,
    InputRequest,
    Message,
    Status,
    Stream,
)
from ..protocol import Session
from .outputs import ExecutionResult, Output, OutputCollector

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["RATE_LIMIT_NOTICES", "ExecuteOptions", "Execution"]

#: How a Jupyter Server's stderr notice begins when its iopub rate limit drops outputs.
RATE_LIMIT_NOTICES = ("IOPub message rate exceeded.", "IOPub data rate exceeded.")

Action = Literal["input", "skip", "yield"]


class ExecuteOptions(TypedDict, total=False):
    """What an execute request asks besides its code, as both clients' ``execute`` and
    ``stream`` take it."""

    #: Run without outputs on iopub and without a history entry (default False).
    silent: bool
    #: Add the code to the kernel's history (default True).
    store_history: bool
    #: Expressions to evaluate after the code, returned in the reply (default none).
    user_expressions: dict[str, str] | None
    #: Abort the requests queued behind this one if it fails (default True).
    stop_on_error: bool
    #: Whether the code may ask for input (default: whether an input handler was given).
    allow_stdin: bool | None
    #: The subshell to run in (default: the main shell).
    subshell_id: str | None


class Execution:
    """Tracks one execute request: what each message means, and when it is complete.

    Complete means both the execute_reply and the ``idle`` status for this request arrived,
    in either order (PROTOCOL.md, "Requests").
    """

    def __init__(
        self,
        session: Session,
        code: str,
        *,
        answers_input: bool = False,
        **options: Unpack[ExecuteOptions],
    ) -> None:
        """``answers_input``: whether the caller has an input handler (the default for
        ``allow_stdin``)."""
        unknown = sorted(options.keys() - ExecuteOptions.__optional_keys__)
        if unknown:
            raise TypeError(f"unexpected execute option {unknown[0]!r}")
        allow_stdin = options.get("allow_stdin")
        self.request: Message[ExecuteRequest] = session.message(
            ExecuteRequest(
                code=code,
                silent=options.get("silent", False),
                store_history=options.get("store_history", True),
                user_expressions=options.get("user_expressions") or {},
                allow_stdin=answers_input if allow_stdin is None else allow_stdin,
                stop_on_error=options.get("stop_on_error", True),
            ),
            channel="shell",
            subshell_id=options.get("subshell_id"),
        )
        self.reply: ExecuteReply | None = None
        #: Whether the kernel said it was busy with this request (it started running it).
        self.started = False
        self.idle = False
        self.collector = OutputCollector()
        #: What the input handler raised: the kernel got END_OF_INPUT instead, and the caller
        #: gets this once the kernel is done with the request.
        self.input_error: BaseException | None = None
        #: Why some output may be missing (see ExecutionResult.missing_output).
        self.missing_output: str | None = None

    @property
    def msg_id(self) -> str:
        """The request's msg_id."""
        return self.request.msg_id

    @property
    def done(self) -> bool:
        """Whether the reply and the idle status have both arrived."""
        return self.reply is not None and self.idle

    def classify(self, message: Message[Content]) -> Action:
        """What to do with a message of this request: answer input, skip it, or pass it on."""
        content = message.content
        if message.channel == "stdin":
            return "input" if isinstance(content, InputRequest) else "skip"
        if message.channel == "shell":
            if not isinstance(content, ExecuteReply):
                return "skip"
            self.reply = content
            return "yield"
        if isinstance(content, Status):
            if content.execution_state == "idle":
                self.idle = True
            elif content.execution_state == "busy":
                self.started = True
        elif isinstance(content, Stream) and content.text.startswith(RATE_LIMIT_NOTICES):
            # A Jupyter Server dropped outputs at its iopub rate limit, and said so.
            self.missing_output = self.missing_output or content.text.split("\n", 1)[0]
        return "yield"

    def note_gap(self, reason: str | None) -> None:
        """Messages may have been lost while this request was pending (the transport said
        so): the result tells why."""
        if reason is not None and self.missing_output is None:
            self.missing_output = reason

    def timed_out(self, timeout: float | None) -> KernelTimeoutError:
        """The error for an execution that ran out of time, saying what was waited for: the
        code itself, or a kernel that never started on it (busy with something else, or gone).
        """
        limit = f"{timeout:g} s" if timeout is not None else "the time allowed"
        if self.reply is not None:
            return KernelTimeoutError(
                f"the kernel answered, but its idle status had not come after {limit}"
                " (the outputs may be incomplete)"
            )
        if self.idle:
            return KernelTimeoutError(f"the kernel went idle but sent no reply within {limit}")
        if self.started:
            return KernelTimeoutError(
                f"the code was still running after {limit} (it goes on in the kernel)"
            )
        return KernelTimeoutError(f"the kernel did not start running the code within {limit}")

    def input_reply(
        self, session: Session, request: Message[Content], answer: object
    ) -> Message[InputReply]:
        """The input_reply to send for what the input handler gave: its line, or (when it
        raised, or gave something other than a str) END_OF_INPUT. The kernel is always
        answered: one left waiting for input would never take another request.
        """
        value = END_OF_INPUT
        if isinstance(answer, str):
            value = answer
        elif isinstance(answer, BaseException):
            if not isinstance(answer, EOFError):
                self.input_error = answer
        else:
            self.input_error = TypeError(
                f"the input handler returned {type(answer).__name__}, not str"
            )
        return session.message(InputReply(value=value), request, channel="stdin")

    def raise_input_error(self) -> None:
        """Raise what the input handler raised, if it did (once the execution is complete)."""
        if self.input_error is not None:
            raise self.input_error

    def collect(self, message: Message[Content]) -> Output | None:
        """Add a yielded message to the outputs; returns it if it is a new output."""
        if message.channel == "shell":
            return None
        content = message.content
        self.collector.add(content)
        return content if isinstance(content, (Stream, DisplayData, ExecuteResult, Error)) else None

    def result(self, **extra: Any) -> ExecutionResult:
        """The result, once done."""
        reply = self.reply
        assert reply is not None
        return ExecutionResult(
            status=reply.status,
            execution_count=reply.execution_count,
            outputs=self.collector.outputs,
            reply=reply,
            msg_id=self.msg_id,
            missing_output=self.missing_output,
            **extra,
        )
