"""IPython's display functions, published through the built-in Python kernel.

Notebooks written for ipykernel import ``display``, ``clear_output`` and ``update_display``
from ``IPython.display``. Without an IPython shell running, IPython's own functions print the
object's repr (and an ANSI erase sequence for ``clear_output``) instead of displaying it.
Where IPython is installed, this module swaps those functions, in
``IPython.core.display_functions``, for ones that publish through the kernel: when that
module is first imported (see import_hooks.py), so every name imported from it,
``IPython.display`` included, is the kernel's. IPython itself is never imported by the
kernel: a notebook that does not use it does not pay for it.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from types import ModuleType
from typing import Any, Protocol

from .import_hooks import when_imported

__all__ = ["DisplayHandle", "Displayer", "install_ipython_display"]

_TARGET = "IPython.core.display_functions"


class Displayer(Protocol):
    """What the kernel offers these functions: show an object, clear the output."""

    def show(
        self,
        obj: Any,
        *,
        display_id: str | None = None,
        update: bool = False,
        raw: bool = False,
        metadata: dict[str, Any] | None = None,
        include: Sequence[str] | None = None,
        exclude: Sequence[str] | None = None,
    ) -> None: ...

    def clear_output_now(self, wait: bool = False) -> None: ...


class DisplayHandle:
    """A display that can be updated later (what ``display(..., display_id=True)`` returns)."""

    def __init__(self, kernel: Displayer, display_id: str) -> None:
        self.kernel = kernel
        self.display_id = display_id

    def display(self, obj: Any, **kwargs: Any) -> None:
        """Show ``obj`` as a new output with this display id."""
        self.kernel.show(obj, display_id=self.display_id, **_options(kwargs))

    def update(self, obj: Any, **kwargs: Any) -> None:
        """Replace the displayed object everywhere it is shown."""
        self.kernel.show(obj, display_id=self.display_id, update=True, **_options(kwargs))

    def __repr__(self) -> str:
        return f"<DisplayHandle display_id={self.display_id}>"


def _options(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments of IPython's display functions that the kernel honours."""
    return {k: kwargs[k] for k in ("raw", "metadata", "include", "exclude") if k in kwargs}


def _functions(kernel: Displayer) -> dict[str, Any]:
    """Stand-ins for IPython's display functions, with IPython's signatures."""

    def display(
        *objs: Any,
        include: Sequence[str] | None = None,
        exclude: Sequence[str] | None = None,
        metadata: dict[str, Any] | None = None,
        transient: dict[str, Any] | None = None,
        display_id: str | bool | None = None,
        raw: bool = False,
        clear: bool = False,
        update: bool = False,
        **kwargs: Any,
    ) -> DisplayHandle | None:
        """Display objects in the frontend (IPython.display.display)."""
        if clear:
            kernel.clear_output_now(wait=True)
        if display_id is True:
            display_id = uuid.uuid4().hex
        if not display_id and transient:
            display_id = transient.get("display_id")
        for obj in objs:
            kernel.show(
                obj,
                display_id=display_id or None,
                update=update,
                raw=raw,
                metadata=metadata,
                include=include,
                exclude=exclude,
            )
        return DisplayHandle(kernel, display_id) if isinstance(display_id, str) else None

    def update_display(obj: Any, *, display_id: str, **kwargs: Any) -> None:
        """Update the outputs shown with ``display_id`` (IPython.display.update_display)."""
        kernel.show(obj, display_id=display_id, update=True, **_options(kwargs))

    def clear_output(wait: bool = False) -> None:
        """Clear this cell's output (IPython.display.clear_output)."""
        kernel.clear_output_now(wait=wait)

    def publish_display_data(
        data: dict[str, Any],
        metadata: dict[str, Any] | None = None,
        *,
        transient: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Publish a MIME bundle as it is (IPython.display.publish_display_data)."""
        display_id = (transient or {}).get("display_id")
        kernel.show(data, display_id=display_id, raw=True, metadata=metadata)

    return {
        "display": display,
        "update_display": update_display,
        "clear_output": clear_output,
        "publish_display_data": publish_display_data,
        "DisplayHandle": DisplayHandle,
    }


def _patch(module: ModuleType, kernel: Displayer) -> None:
    for name, function in _functions(kernel).items():
        setattr(module, name, function)


def install_ipython_display(kernel: Displayer) -> None:
    """Make IPython's display functions publish through ``kernel`` (see the module)."""
    when_imported(_TARGET, lambda module: _patch(module, kernel))
