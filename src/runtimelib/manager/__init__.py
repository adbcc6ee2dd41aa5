"""Launching and managing kernel processes: start, readiness, interrupt, restart, shutdown."""

from __future__ import annotations

from .asynchronous import AsyncKernelManager
from .base import runtime_dir
from .blocking import KernelManager
from .discovery import (
    Pruned,
    RunningKernel,
    find_running_kernel,
    list_running_kernels,
    locate_running_kernel,
    prune_stale_kernels,
)
from .pool import AsyncMultiKernelManager, MultiKernelManager
from .process import KernelProcess
from .running import (
    KernelStopped,
    interrupt_running_kernel,
    restart_running_kernel,
    stop_running_kernel,
)

__all__ = [
    "AsyncKernelManager",
    "AsyncMultiKernelManager",
    "KernelManager",
    "KernelProcess",
    "KernelStopped",
    "MultiKernelManager",
    "Pruned",
    "RunningKernel",
    "find_running_kernel",
    "interrupt_running_kernel",
    "list_running_kernels",
    "locate_running_kernel",
    "prune_stale_kernels",
    "restart_running_kernel",
    "runtime_dir",
    "stop_running_kernel",
]
