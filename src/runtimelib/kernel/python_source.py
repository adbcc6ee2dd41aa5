"""What the built-in Python kernel reads in a cell's source, and the loop cells await on."""

from __future__ import annotations

import io
import re
import tokenize
from typing import Any

__all__ = ["cell_event_loop", "ends_in_block", "ends_with_semicolon", "glob_to_regex", "name_at"]


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
