"""Run code right after a module is imported, without importing it ahead of time.

The built-in Python kernel adapts libraries written for ipykernel (IPython's display
functions, the ``comm`` package that ipywidgets opens its comms through) by replacing a few
of their functions. Importing them at kernel start would cost every kernel their import time;
a finder on ``sys.meta_path`` instead patches each module as it is first imported, before any
``from module import name`` can copy the original function.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
from collections.abc import Callable, Sequence
from types import ModuleType

__all__ = ["when_imported"]

Patch = Callable[[ModuleType], None]


class _Finder(importlib.abc.MetaPathFinder):
    def __init__(self, name: str, patch: Patch) -> None:
        self.name = name
        self.patch = patch

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != self.name:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path, target)
        if spec is None or spec.loader is None:
            return None
        loader, patch = spec.loader, self.patch

        class _Patching(importlib.abc.Loader):
            def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
                return loader.create_module(spec)

            def exec_module(self, module: ModuleType) -> None:
                loader.exec_module(module)
                patch(module)

        spec.loader = _Patching()
        return spec


def when_imported(name: str, patch: Patch) -> None:
    """Call ``patch(module)`` as soon as module ``name`` is imported (now, if it already is)."""
    loaded = sys.modules.get(name)
    if loaded is not None:
        patch(loaded)
        return
    sys.meta_path.insert(0, _Finder(name, patch))
