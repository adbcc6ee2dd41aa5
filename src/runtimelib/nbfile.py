"""Notebook files without nbformat: v4 JSON read into nodes, and written byte for byte as
``nbformat.write`` writes it.

``import nbformat`` costs about 0.25 s in a plain environment and about 2 s where jupyter_server
is installed (jsonschema's format checkers build their grammars at import): more than a short
notebook takes to run. The on-disk v4 format is simple: multi-line strings are stored as lists
of lines, a few transient keys are dropped, and the JSON is written with one-space indents and
sorted keys. Anything else (older formats that need converting, files that are not plainly
v4) is left to nbformat: ``loads`` returns None for them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

__all__ = ["Node", "dumps", "from_dict", "loads"]

_CELL_TYPES = frozenset({"code", "markdown", "raw"})
# Besides text/*, the MIME types nbformat stores as lists of lines.
_SPLIT_MIMES = frozenset({"application/javascript", "image/svg+xml"})


class Node(dict[str, Any]):
    """A dict whose keys read and write as attributes, as nbformat's NotebookNode."""

    def __getattr__(self, key: str) -> Any:
        try:
            return self[key]
        except KeyError:
            raise AttributeError(key) from None

    def __setattr__(self, key: str, value: Any) -> None:
        self[key] = value

    def __delattr__(self, key: str) -> None:
        try:
            del self[key]
        except KeyError:
            raise AttributeError(key) from None


def from_dict(value: Any) -> Any:
    """``value`` with every mapping in it (however deep) made a Node."""
    if isinstance(value, Mapping):
        return Node({key: from_dict(item) for key, item in value.items()})
    if isinstance(value, (list, tuple)):
        return [from_dict(item) for item in value]
    return value


def _is_plain_v4(data: Any) -> bool:
    """Whether ``data`` is a v4 notebook this module reads exactly as nbformat would."""
    if not isinstance(data, dict) or type(data.get("nbformat")) is not int:
        return False
    if data["nbformat"] != 4 or type(data.get("nbformat_minor")) is not int:
        return False
    cells = data.get("cells")
    if not isinstance(data.get("metadata"), dict) or not isinstance(cells, list):
        return False
    for cell in cells:
        if not isinstance(cell, dict) or cell.get("cell_type") not in _CELL_TYPES:
            return False
        if not isinstance(cell.get("metadata"), dict):
            return False
        if not isinstance(cell.get("source"), (str, list)):
            return False
        if cell["cell_type"] == "code":
            outputs = cell.get("outputs")
            if not isinstance(outputs, list):
                return False
            if not all(
                isinstance(o, dict) and isinstance(o.get("output_type"), str) for o in outputs
            ):
                return False
    return True


def _is_json_mime(mime: str) -> bool:
    return mime == "application/json" or (
        mime.startswith("application/") and mime.endswith("+json")
    )


def _rejoin(bundle: dict[str, Any]) -> None:
    for mime, value in bundle.items():
        if (
            not _is_json_mime(mime)
            and isinstance(value, list)
            and all(isinstance(line, str) for line in value)
        ):
            bundle[mime] = "".join(value)


def _split(bundle: dict[str, Any]) -> None:
    for mime, value in bundle.items():
        if isinstance(value, str) and (mime.startswith("text/") or mime in _SPLIT_MIMES):
            bundle[mime] = value.splitlines(True)


def _strip_transient(nb: dict[str, Any]) -> None:
    for key in ("orig_nbformat", "orig_nbformat_minor", "signature"):
        nb["metadata"].pop(key, None)
    for cell in nb["cells"]:
        cell["metadata"].pop("trusted", None)


def loads(text: str | bytes) -> Node | None:
    """The notebook in ``text``; None if it is not plainly nbformat 4 (then ask nbformat).

    Raises ValueError for text that is not JSON.
    """
    data = json.loads(text)
    if not _is_plain_v4(data):
        return None
    nb: Node = from_dict(data)
    for cell in nb["cells"]:
        if isinstance(cell["source"], list):
            cell["source"] = "".join(cell["source"])
        for attachment in (cell.get("attachments") or {}).values():
            if isinstance(attachment, dict):
                _rejoin(attachment)
        if cell["cell_type"] == "code":
            for output in cell["outputs"]:
                if output["output_type"] in ("execute_result", "display_data"):
                    if isinstance(output.get("data"), dict):
                        _rejoin(output["data"])
                elif output["output_type"] and isinstance(output.get("text"), list):
                    output["text"] = "".join(output["text"])
    _strip_transient(nb)
    return nb


def _copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {key: _copy(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_copy(item) for item in value]
    if isinstance(value, bytes):
        return value.decode("ascii")  # base64 data, as nbformat's encoder takes it
    return value


def dumps(nb: Mapping[str, Any]) -> str:
    """The file's text for a v4 notebook: what ``nbformat.write`` writes, to the byte."""
    disk: dict[str, Any] = _copy(nb)
    for cell in disk["cells"]:
        if isinstance(cell.get("source"), str):
            cell["source"] = cell["source"].splitlines(True)
        for attachment in (cell.get("attachments") or {}).values():
            if isinstance(attachment, dict):
                _split(attachment)
        if cell.get("cell_type") == "code":
            for output in cell["outputs"]:
                if output.get("output_type") in ("execute_result", "display_data"):
                    if isinstance(output.get("data"), dict):
                        _split(output["data"])
                elif output.get("output_type") == "stream" and isinstance(output.get("text"), str):
                    output["text"] = output["text"].splitlines(True)
    _strip_transient(disk)
    text = json.dumps(disk, indent=1, sort_keys=True, separators=(",", ": "), ensure_ascii=False)
    return text if text.endswith("\n") else text + "\n"
