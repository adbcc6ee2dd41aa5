"""Showing kernel outputs on a terminal: text as it streams, rich media summarised or saved."""

from __future__ import annotations

import base64
import json
import os
import re
import struct
import sys
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from ..messages import DisplayData, Error, ExecuteResult, Stream

if TYPE_CHECKING:
    from ..client import Output

__all__ = ["Terminal", "emit_json", "plural", "strip_ansi", "wants_color"]

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")

#: File name extensions for saved media.
_EXTENSIONS = {
    "image/png": ".png",
    "image/jpeg": ".jpg",
    "image/gif": ".gif",
    "image/svg+xml": ".svg",
    "text/html": ".html",
    "text/markdown": ".md",
    "text/latex": ".tex",
    "application/json": ".json",
    "application/javascript": ".js",
    "application/pdf": ".pdf",
}


def emit_json(value: Any) -> None:
    """Print ``value`` as indented JSON (the ``--json`` output of every command)."""
    json.dump(value, sys.stdout, indent=2, ensure_ascii=False, default=str)
    sys.stdout.write("\n")


def plural(count: int, noun: str) -> str:
    """``1 cell``, ``2 cells``."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def strip_ansi(text: str) -> str:
    """``text`` without ANSI colour and cursor codes (kernels colour their tracebacks)."""
    return _ANSI.sub("", text)


def wants_color(stream: IO[str]) -> bool:
    """Colour only on a terminal, and never when ``NO_COLOR`` is set (no-color.org);
    ``FORCE_COLOR`` turns it on anywhere.
    """
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR"):
        return True
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _size(count: int) -> str:
    if count < 1024:
        return f"{count} B"
    if count < 1024 * 1024:
        return f"{count / 1024:.1f} kB"
    return f"{count / (1024 * 1024):.1f} MB"


def _image_size(mime: str, raw: bytes) -> str:
    """``WxH`` read from a PNG or GIF header, or "" when it cannot be told cheaply."""
    if mime == "image/png" and raw[:8] == b"\x89PNG\r\n\x1a\n" and len(raw) >= 24:
        width, height = struct.unpack(">II", raw[16:24])
        return f"{width}x{height}"
    if mime == "image/gif" and raw[:4] == b"GIF8" and len(raw) >= 10:
        width, height = struct.unpack("<HH", raw[6:10])
        return f"{width}x{height}"
    return ""


class Terminal:
    """Writes outputs as they arrive: streams to stdout/stderr, results and displays as text.

    Rich data without a useful text form is summarised (``[image/png 640x480, 12.1 kB]``);
    with ``media_dir`` every rich representation is also saved there, and the summary names
    the file.
    """

    def __init__(
        self,
        out: IO[str] | None = None,
        err: IO[str] | None = None,
        *,
        color: bool | None = None,
        media_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.color = wants_color(self.out) if color is None else color
        self.err_color = wants_color(self.err) if color is None else color
        self.media_dir = Path(media_dir) if media_dir is not None else None
        self._saved = 0

    # -- styling -------------------------------------------------------------------------------

    def style(self, text: str, code: str, *, err: bool = False) -> str:
        """``text`` in an SGR style (e.g. "1;31") when colour is on for that stream."""
        on = self.err_color if err else self.color
        return f"\x1b[{code}m{text}\x1b[0m" if on else text

    def error_line(self, text: str) -> None:
        """A message of ours (not the kernel's) on stderr."""
        self.err.write(self.style(text, "1;31", err=True) + "\n")
        self.err.flush()

    def note(self, text: str) -> None:
        """A dim remark on stderr."""
        self.err.write(self.style(text, "2", err=True) + "\n")
        self.err.flush()

    # -- outputs -------------------------------------------------------------------------------

    def output(self, output: Output) -> None:
        """Show one output."""
        if isinstance(output, Stream):
            target = self.err if output.name == "stderr" else self.out
            target.write(output.text)
            target.flush()
        elif isinstance(output, Error):
            self.traceback(output)
        elif isinstance(output, (ExecuteResult, DisplayData)):
            text = self.render_data(output.data)
            if text:
                self.out.write(text if text.endswith("\n") else text + "\n")
                self.out.flush()

    def pages(self, payloads: list[dict[str, Any]]) -> None:
        """What a kernel asked a pager to show (``page`` payloads: ``help(obj)``, ``obj?``)."""
        for payload in payloads:
            data = payload.get("data")
            if payload.get("source") == "page" and isinstance(data, dict):
                text = self.render_data(data)
                self.out.write(text if text.endswith("\n") else text + "\n")
                self.out.flush()

    def traceback(self, error: Error) -> None:
        """The kernel's traceback on stderr (its colours kept only on a terminal)."""
        lines = list(error.traceback) or [f"{error.ename}: {error.evalue}"]
        text = "\n".join(lines)
        self.err.write((text if self.err_color else strip_ansi(text)) + "\n")
        self.err.flush()

    def render_data(self, data: dict[str, Any]) -> str:
        """The text a terminal shows for a MIME bundle."""
        rich = [mime for mime in data if mime != "text/plain"]
        saved = {mime: self._save(mime, data[mime]) for mime in rich} if self.media_dir else {}
        images = [mime for mime in rich if mime.startswith("image/")]
        if images:
            return "\n".join(self._summary(mime, data[mime], saved.get(mime)) for mime in images)
        text = data.get("text/plain")
        if isinstance(text, str):
            if saved:
                notes = ", ".join(f"{mime} -> {path}" for mime, path in saved.items())
                return text + "\n" + self.style(f"[saved {notes}]", "2")
            return text if self.color else strip_ansi(text)
        for mime in ("text/markdown", "text/latex"):
            if isinstance(data.get(mime), str):
                return str(data[mime])
        if "application/json" in data:
            return json.dumps(data["application/json"], indent=2, ensure_ascii=False)
        return "\n".join(self._summary(mime, data[mime], saved.get(mime)) for mime in rich)

    def _summary(self, mime: str, value: Any, saved: Path | None) -> str:
        raw = self._bytes(mime, value)
        dims = _image_size(mime, raw)
        parts = [mime, *([dims] if dims else []), _size(len(raw))]
        where = f" -> {saved}" if saved is not None else ""
        return self.style(f"[{' '.join(parts[:-1])}, {parts[-1]}{where}]", "2")

    @staticmethod
    def _bytes(mime: str, value: Any) -> bytes:
        if isinstance(value, str):
            if mime.startswith("image/") and mime != "image/svg+xml":
                try:
                    return base64.b64decode(value, validate=False)
                except ValueError:
                    return value.encode()
            return value.encode()
        return json.dumps(value, ensure_ascii=False).encode()

    def _save(self, mime: str, value: Any) -> Path:
        assert self.media_dir is not None
        self.media_dir.mkdir(parents=True, exist_ok=True)
        self._saved += 1
        extension = _EXTENSIONS.get(mime) or (".json" if mime.endswith("json") else ".txt")
        path = self.media_dir / f"output-{self._saved}{extension}"
        path.write_bytes(self._bytes(mime, value))
        return path
