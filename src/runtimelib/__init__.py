"""runtimelib: Jupyter kernels from Python, on asyncio, trio or plain blocking code."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .version import __version__

# Public names and the module each lives in. They are imported on first use so that
# ``import runtimelib`` stays cheap; the protocol core never pulls in zmq.
_LAZY = {
    "Message": "runtimelib.messages",
    "Header": "runtimelib.messages",
    "Session": "runtimelib.protocol",
    "ConnectionInfo": "runtimelib.connection",
    "MimeBundle": "runtimelib.media",
    "MediaType": "runtimelib.media",
    "KernelSpec": "runtimelib.kernelspec",
    "list_kernelspecs": "runtimelib.kernelspec",
    "find_kernelspec": "runtimelib.kernelspec",
    "AsyncKernelManager": "runtimelib.manager",
    "AsyncKernelClient": "runtimelib.client",
    "KernelClient": "runtimelib.client",
    "ExecutionResult": "runtimelib.client",
    "ExecutionError": "runtimelib.client",
    "KernelManager": "runtimelib.manager",
    "AsyncMultiKernelManager": "runtimelib.manager",
    "MultiKernelManager": "runtimelib.manager",
    "list_running_kernels": "runtimelib.manager",
    "execute_notebook": "runtimelib.notebook",
    "execute_notebook_async": "runtimelib.notebook",
}
_ERRORS = "runtimelib.errors"

if TYPE_CHECKING:
    from .client import AsyncKernelClient, ExecutionError, ExecutionResult, KernelClient
    from .connection import ConnectionInfo
    from .errors import *  # noqa: F403
    from .kernelspec import KernelSpec, find_kernelspec, list_kernelspecs
    from .manager import (
        AsyncKernelManager,
        AsyncMultiKernelManager,
        KernelManager,
        MultiKernelManager,
        list_running_kernels,
    )
    from .media import MediaType, MimeBundle
    from .messages import Header, Message
    from .notebook import execute_notebook, execute_notebook_async
    from .protocol import Session


def __getattr__(name: str) -> Any:
    import importlib

    module = _LAZY.get(name)
    if module is None:
        errors = importlib.import_module(_ERRORS)
        if name in errors.__all__:
            return getattr(errors, name)
        raise AttributeError(f"module 'runtimelib' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    from . import errors

    return sorted([*globals(), *_LAZY, *errors.__all__])


__all__ = [
    "AsyncKernelClient",
    "AsyncKernelManager",
    "AsyncMultiKernelManager",
    "ConnectionInfo",
    "ExecutionError",
    "ExecutionResult",
    "Header",
    "KernelClient",
    "KernelManager",
    "KernelSpec",
    "MediaType",
    "Message",
    "MimeBundle",
    "MultiKernelManager",
    "Session",
    "__version__",
    "execute_notebook",
    "execute_notebook_async",
    "find_kernelspec",
    "list_kernelspecs",
    "list_running_kernels",
]
