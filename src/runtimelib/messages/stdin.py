"""Stdin channel messages: the kernel asks the frontend for a line of input (spec, "stdin")."""

from __future__ import annotations

from typing import ClassVar

from .base import Content

__all__ = ["END_OF_INPUT", "InputReply", "InputRequest"]

#: The input_reply value that means "no more input" (the frontend's stdin ended, or it could
#: not answer): ipykernel and runtimelib's kernels raise EOFError in the code that called
#: input(), as Python does at the end of a file.
END_OF_INPUT = "\x04"


class InputRequest(Content, kw_only=True, frozen=True):
    """The kernel wants a line of input; ``password`` asks the frontend not to echo it."""

    msg_type: ClassVar[str] = "input_request"
    channel: ClassVar[str] = "stdin"
    prompt: str = ""
    password: bool = False


class InputReply(Content, kw_only=True, frozen=True):
    """The line the user typed."""

    msg_type: ClassVar[str] = "input_reply"
    channel: ClassVar[str] = "stdin"
    value: str = ""
