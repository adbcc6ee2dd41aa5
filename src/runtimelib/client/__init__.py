"""Kernel clients: AsyncKernelClient (asyncio, trio) and its blocking twin KernelClient."""

from __future__ import annotations

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
