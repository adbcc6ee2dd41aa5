"""Install a kernel written on the Kernel base class as a kernelspec, by its import path."""

from __future__ import annotations

import importlib
import json
import os
import sys
import sysconfig
import tempfile
from pathlib import Path

from ..errors import KernelSpecError
from .base import Kernel

__all__ = ["install_kernel_class", "kernel_class", "kernel_spec_for"]


def kernel_class(target: str) -> type[Kernel]:
    """The Kernel subclass named ``module:Class`` (``package.module:Class`` works too)."""
    module_name, _, attribute = target.partition(":")
    if not module_name or not attribute:
        raise KernelSpecError(f"{target!r} is not MODULE:CLASS")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # the user's module may raise anything while it imports
        raise KernelSpecError(f"cannot import {module_name}: {exc}") from exc
    found: object = module
    for part in attribute.split("."):
        found = getattr(found, part, None)
    if not (isinstance(found, type) and issubclass(found, Kernel)):
        raise KernelSpecError(f"{target} is not a runtimelib Kernel class")
    return found


def _import_root(module_name: str) -> str | None:
    """The sys.path entry a module was found in, when it is not one every Python of this
    environment searches anyway (site-packages, the standard library): a kernel launched
    from another directory needs it on its PYTHONPATH."""
    module = sys.modules[module_name.partition(".")[0]]
    origin = getattr(module, "__file__", None)
    if origin is None:
        return None
    path = Path(origin).resolve().parent
    if Path(origin).name == "__init__.py":
        path = path.parent
    standard = {
        Path(p).resolve()
        for key in ("purelib", "platlib", "stdlib", "platstdlib")
        if (p := sysconfig.get_paths().get(key))
    }
    return None if path in standard else str(path)


def kernel_spec_for(target: str, *, display_name: str | None = None) -> dict[str, object]:
    """The kernel.json content that runs the Kernel class ``module:Class`` with this Python."""
    cls = kernel_class(target)
    spec: dict[str, object] = {
        "argv": [sys.executable, "-m", "runtimelib.kernel", target, "-f", "{connection_file}"],
        "display_name": display_name or f"{cls.language_info.name} ({cls.implementation})",
        "language": cls.language_info.name,
        "interrupt_mode": "signal",
        # Kernels on the base class bind their sockets as CurveZMQ servers when given keys.
        "metadata": {"supported_encryption": ["curve"], "startup_handshake": True},
    }
    root = _import_root(target.partition(":")[0])
    if root is not None:
        spec["env"] = {"PYTHONPATH": root}
    return spec


def install_kernel_class(
    target: str,
    *,
    name: str | None = None,
    display_name: str | None = None,
    user: bool = False,
    prefix: str | os.PathLike[str] | None = None,
    sys_prefix: bool = False,
    replace: bool = False,
) -> Path:
    """Install a kernelspec that runs the Kernel class ``module:Class``; returns its folder.

    The name defaults to the class's ``implementation``; where it goes follows
    ``install_kernelspec`` (``user``, ``prefix``, ``sys_prefix``, else the system folder).
    """
    from ..kernelspec import install_kernelspec

    spec = kernel_spec_for(target, display_name=display_name)
    kernel_name = name or kernel_class(target).implementation.lower()
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch, kernel_name)
        folder.mkdir()
        (folder / "kernel.json").write_text(json.dumps(spec, indent=2) + "\n")
        return install_kernelspec(
            folder,
            name=kernel_name,
            user=user,
            prefix=prefix,
            sys_prefix=sys_prefix,
            replace=replace,
        )
