"""The life of one execute request, shared by both client twins (sans-IO)."""

from __future__ import annotations

from typing import Any, Literal

from ..messages import (
    Content,
    DisplayData,
    Error,
    ExecuteReply,
    ExecuteRequest,
    ExecuteResult,
    InputRequest,
    Message,
    Status,
    Stream,
)
from ..protocol import Session
from .outputs import ExecutionResult, Output, OutputCollector

__all__ = ["Execution"]

Action = Literal["input", "skip", "yield"]


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
        silent: bool = False,
        store_history: bool = True,
        user_expressions: dict[str, str] | None = None,
        allow_stdin: bool = False,
        stop_on_error: bool = True,
        subshell_id: str | None = None,
    ) -> None:
        self.request: Message[ExecuteRequest] = session.message(
            ExecuteRequest(
                code=code,
                silent=silent,
                store_history=store_history,
                user_expressions=user_expressions or {},
                allow_stdin=allow_stdin,
                stop_on_error=stop_on_error,
            ),
            channel="shell",
            subshell_id=subshell_id,
        )
        self.reply: ExecuteReply | None = None
        self.idle = False
        self.collector = OutputCollector()

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
        if isinstance(content, Status) and content.execution_state == "idle":
            self.idle = True
        return "yield"

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
            **extra,
        )
