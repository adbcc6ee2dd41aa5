"""What the built-in Python kernel reads in a cell's source (is it complete, does it end with
``;``), its history, and the loop cells await on."""

from __future__ import annotations

import codeop
import io
import re
import tokenize
from typing import Any

from ..messages import HistoryReply, HistoryRequest, IsCompleteReply

__all__ = [
    "cell_event_loop",
    "ends_in_block",
    "ends_with_semicolon",
    "glob_to_regex",
    "history_reply",
    "is_complete",
    "name_at",
]


def cell_event_loop() -> Any:
    """The event loop for cells that await: the main thread's current one, so that a task a
    cell made with ``asyncio.ensure_future`` before any cell awaited runs on it too."""
    import asyncio
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            loop = asyncio.get_event_loop_policy().get_event_loop()
        except RuntimeError:
            loop = None
    if loop is None or loop.is_closed():
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
    return loop


def ends_with_semicolon(code: str) -> bool:
    """Whether the cell's last statement ends with ``;`` (comments aside): IPython's sign
    that the value of a final expression is not to be shown."""
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(code).readline))
    except (tokenize.TokenError, SyntaxError):
        return False
    ignored = {
        tokenize.NEWLINE, tokenize.NL, tokenize.COMMENT, tokenize.ENDMARKER,
        tokenize.INDENT, tokenize.DEDENT,
    }  # fmt: skip
    significant = [token for token in tokens if token.type not in ignored]
    return bool(significant) and significant[-1].string == ";"


def ends_in_block(code: str) -> bool:
    """Whether the code's last statement is inside an indented block (``def f():\\n  x``)."""
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(code).readline))
    except (tokenize.TokenError, SyntaxError):
        return False
    return any(token.type == tokenize.DEDENT for token in tokens[-3:])


def name_at(code: str, cursor_pos: int) -> str:
    """The dotted name under or just before the cursor."""
    start = cursor_pos
    while start > 0 and (code[start - 1].isalnum() or code[start - 1] in "._"):
        start -= 1
    end = cursor_pos
    while end < len(code) and (code[end].isalnum() or code[end] == "_"):
        end += 1
    return code[start:end].strip(".")


def glob_to_regex(pattern: str) -> str:
    return "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern) + "$"


def is_complete(code: str) -> IsCompleteReply:
    """codeop's verdict, with the indent for the next line when incomplete."""
    try:
        compiled = codeop.compile_command(code, "<input>", "exec")
    except (SyntaxError, ValueError, OverflowError):
        return IsCompleteReply(status="invalid")
    if compiled is None or (ends_in_block(code) and not code.rstrip(" \t").endswith("\n")):
        # An indented block goes on until an empty line (a frontend sends the cell with it
        # as a final newline), as at the interactive prompt and in IPython.
        last = code.rstrip("\n").splitlines()[-1] if code.strip() else ""
        indent = last[: len(last) - len(last.lstrip())]
        if last.rstrip().endswith(":"):
            indent += "    "
        return IsCompleteReply(status="incomplete", indent=indent)
    return IsCompleteReply(status="complete")


def history_reply(
    entries: list[tuple[int, int, str, str | None]], request: HistoryRequest
) -> HistoryReply:
    """The entries (session, line, input, output) a history_request asks for: by tail, range
    or search."""
    kind = request.hist_access_type
    if kind == "range":
        start = request.start if isinstance(request.start, int) else 0
        stop = request.stop if isinstance(request.stop, int) else len(entries) + 1
        entries = [e for e in entries if start <= e[1] < stop]
    elif kind == "search":
        pattern = request.pattern if isinstance(request.pattern, str) else "*"
        regex = re.compile(glob_to_regex(pattern))
        entries = [e for e in entries if regex.match(e[2])]
        if request.unique is True:
            seen: set[str] = set()
            entries = [e for e in entries if not (e[2] in seen or seen.add(e[2]))]  # type: ignore[func-returns-value]
    if kind in ("tail", "search") and isinstance(request.n, int):
        entries = entries[-request.n :] if request.n > 0 else entries
    history: list[Any] = [(s, n, (i, o)) if request.output else (s, n, i) for s, n, i, o in entries]
    return HistoryReply(history=history)
