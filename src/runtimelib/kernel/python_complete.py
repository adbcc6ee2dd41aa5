"""Completion and inspection for the built-in Python kernel: what a frontend offers at the
cursor, and what it shows of the name there.

Names in scope where nothing is typed yet; attributes after a dot; module names after
``import``; a module's names after ``from module import``; a dict's keys inside ``d["``; file
paths inside any other string. Lookups only: no code of the user's is run to complete, but a
module named in ``from module import`` is imported, as IPython does.
"""

from __future__ import annotations

import builtins
import contextlib
import importlib
import inspect
import keyword
import os
import re
import sys
import types
from collections.abc import Mapping
from typing import Any

from ..messages import InspectReply

__all__ = ["Completion", "complete", "describe", "lookup"]

#: How many matches at most one request answers with.
_LIMIT = 1000

_NAME_AT_END = re.compile(r"[A-Za-z_][\w.]*$")
_IMPORT_AT_END = re.compile(r"^\s*(?:import|from)\s+([\w.]*)$", re.MULTILINE)
_FROM_IMPORT_AT_END = re.compile(r"^\s*from\s+([\w.]+)\s+import\s+(?:.*,\s*)?(\w*)$", re.MULTILINE)
_KEY_AT_END = re.compile(r"([A-Za-z_][\w.]*)\s*\[\s*(['\"])([^'\"]*)$")
_STRING_AT_END = re.compile(r"(['\"])([^'\"]*)$")

Completion = tuple[list[str], int]  # the matches, and where the text they replace starts


def lookup(namespace: Mapping[str, Any], dotted: str) -> tuple[bool, Any]:
    """The object a dotted name refers to in ``namespace`` (or the builtins), by attribute
    lookups only; (False, None) if there is none."""
    head, *rest = dotted.split(".")
    if head in namespace:
        obj = namespace[head]
    elif hasattr(builtins, head):
        obj = getattr(builtins, head)
    else:
        return False, None
    for part in rest:
        try:
            obj = getattr(obj, part)
        except Exception:
            return False, None
    return True, obj


def complete(namespace: Mapping[str, Any], code: str, cursor_pos: int) -> Completion:
    """The matches for the text before ``cursor_pos``, and where the replaced text starts."""
    before = code[:cursor_pos]
    line = before.rsplit("\n", 1)[-1]
    if (found := _FROM_IMPORT_AT_END.search(line)) is not None:
        module, prefix = found.groups()
        return _module_names(module, prefix), cursor_pos - len(prefix)
    if (found := _IMPORT_AT_END.search(line)) is not None:
        prefix = found.group(1)
        start = cursor_pos - len(prefix.rsplit(".", 1)[-1])
        return _modules(prefix), start
    if _inside_string(line):
        if (found := _KEY_AT_END.search(line)) is not None:
            name, _, prefix = found.groups()
            return _keys(namespace, name, prefix), cursor_pos - len(prefix)
        if (found := _STRING_AT_END.search(line)) is not None:
            prefix = found.group(2)
            return _paths(prefix), cursor_pos - len(prefix)
        return [], cursor_pos
    match = _NAME_AT_END.search(before)
    token = match.group(0) if match else ""
    if not token:
        return _names_in_scope(namespace, ""), cursor_pos
    if "." not in token:
        return _names_in_scope(namespace, token), cursor_pos - len(token)
    owner, _, prefix = token.rpartition(".")
    found_owner, obj = lookup(namespace, owner)
    if not found_owner:
        return [], cursor_pos
    names = [f"{owner}.{name}" for name in _attributes(obj, prefix)]
    return names[:_LIMIT], cursor_pos - len(token)


def _inside_string(line: str) -> bool:
    """Whether the end of ``line`` is inside a string literal (quotes counted simply)."""
    quote = ""
    escaped = False
    for char in line:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif quote:
            if char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char == "#":
            return False
    return bool(quote)


def _names_in_scope(namespace: Mapping[str, Any], prefix: str) -> list[str]:
    public = not prefix.startswith("_")
    names = {
        name
        for name in (*namespace, *dir(builtins), *keyword.kwlist)
        if name.startswith(prefix) and not (public and name.startswith("_"))
    }
    return sorted(names)[:_LIMIT]


def _attributes(obj: Any, prefix: str) -> list[str]:
    try:
        names = dir(obj)
    except Exception:
        return []
    public = not prefix.startswith("_")
    return sorted(n for n in names if n.startswith(prefix) and not (public and n.startswith("_")))


def _modules(prefix: str) -> list[str]:
    """Importable modules (or a package's submodules, after ``package.``) named ``prefix*``."""
    import pkgutil  # only here: completing imports is rare, and kernels should start fast

    package, _, name = prefix.rpartition(".")
    if package:
        try:
            imported = importlib.import_module(package)
        except Exception:
            return []
        path = getattr(imported, "__path__", None)
        found = {m.name for m in pkgutil.iter_modules(path)} if path else set()
        # Modules a plain module makes importable under its name (os.path).
        found |= {n for n, v in vars(imported).items() if isinstance(v, types.ModuleType)}
    else:
        found = {m.name for m in pkgutil.iter_modules()} | set(sys.builtin_module_names)
    return sorted(m for m in found if m.startswith(name))[:_LIMIT]


def _module_names(module: str, prefix: str) -> list[str]:
    """What ``from module import prefix*`` can import: its public names and submodules."""
    try:
        imported = importlib.import_module(module)
    except Exception:
        return []
    names = set(getattr(imported, "__all__", None) or _attributes(imported, prefix))
    if hasattr(imported, "__path__"):
        names |= set(_modules(f"{module}.{prefix}"))
    return sorted(n for n in names if isinstance(n, str) and n.startswith(prefix))[:_LIMIT]


def _keys(namespace: Mapping[str, Any], name: str, prefix: str) -> list[str]:
    found, obj = lookup(namespace, name)
    if not found or not isinstance(obj, Mapping):
        return []
    try:
        keys = [key for key in obj if isinstance(key, str) and key.startswith(prefix)]
    except Exception:
        return []
    return sorted(keys)[:_LIMIT]


def _paths(prefix: str) -> list[str]:
    folder, _, start = prefix.rpartition("/")
    rooted = bool(folder) or prefix.startswith("/")
    where = os.path.expanduser(folder + "/" if rooted else ".")
    try:
        entries = sorted(os.scandir(where), key=lambda entry: entry.name)
    except OSError:
        return []
    matches = []
    for entry in entries:
        hidden = entry.name.startswith(".") and not start.startswith(".")
        if entry.name.startswith(start) and not hidden:
            name = entry.name + ("/" if entry.is_dir() else "")
            matches.append(f"{folder}/{name}" if rooted else name)
    return matches[:_LIMIT]


def describe(namespace: dict[str, Any], name: str, detail_level: int) -> InspectReply:
    """What the inspect_reply says of ``name``: its type, signature and docstring (and
    source, at detail level 1), found by lookups only."""
    if not name:
        return InspectReply(found=False)
    found, obj = lookup(namespace, name)
    if not found:
        return InspectReply(found=False)
    lines = [f"{name}: {type(obj).__name__}"]
    with contextlib.suppress(Exception):
        lines.append(f"Signature: {name}{inspect.signature(obj)}")
    doc = inspect.getdoc(obj)
    if doc:
        lines.append(f"Docstring:\n{doc}")
    if detail_level > 0:
        with contextlib.suppress(Exception):
            lines.append(f"Source:\n{inspect.getsource(obj)}")
    return InspectReply(found=True, data={"text/plain": "\n".join(lines)})
