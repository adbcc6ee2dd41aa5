"""Kernel clients: AsyncKernelClient (asyncio, trio) and its blocking twin KernelClient.

The names below are imported on first use: code that uses only the blocking client never
imports the async one, nor anyio's event-loop machinery.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from .asynchronous import AsyncKernelClient
    from .blocking import KernelClient
    from .comms import Comm, CommManager
    from .outputs import ExecutionError, ExecutionResult, Output, OutputCollector, to_nbformat

__all__ = [
    "AsyncKernelClient",
    "Comm",
    "CommManager",
    "ExecutionError",
    "ExecutionResult",
    "KernelClient",
    "Output",
    "OutputCollector",
    "to_nbformat",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "AsyncKernelClient": "asynchronous",
        "KernelClient": "blocking",
        "Comm": "comms",
        "CommManager": "comms",
        "ExecutionError": "outputs",
        "ExecutionResult": "outputs",
        "Output": "outputs",
        "OutputCollector": "outputs",
        "to_nbformat": "outputs",
    },
)
