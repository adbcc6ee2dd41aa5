"""Launching and managing kernel processes: start, readiness, interrupt, restart, shutdown."""

from __future__ import annotations

from .asynchronous import AsyncKernelManager
from .base import runtime_dir
from .blocking import KernelManager
from .discovery import (
    RunningKernel,
    find_running_kernel,
    list_running_kernels,
    locate_running_kernel,
    prune_stale_kernels,
)
from .pool import AsyncMultiKernelManager, MultiKernelManager
from .process import KernelProcess

__all__ = [
    "AsyncKernelManager",
    "AsyncMultiKernelManager",
    "KernelManager",
    "KernelProcess",
    "MultiKernelManager",
    "RunningKernel",
    "find_running_kernel",
    "list_running_kernels",
    "locate_running_kernel",
    "prune_stale_kernels",
    "runtime_dir",
]
