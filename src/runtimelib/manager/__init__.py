"""Launching and managing kernel processes: start, readiness, interrupt, restart, shutdown.

The names below are imported on first use: the blocking manager does not bring in the async
one, and a manager spawns its kernel before it imports the messaging machinery it waits with.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
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
    from .launcher import LaunchedKernel, Launcher, LaunchPlan, LocalLauncher
    from .pool import AsyncMultiKernelManager, MultiKernelManager
    from .process import KernelProcess
    from .provisioners import ProvisionedKernel, ProvisionerLauncher
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
    "LaunchPlan",
    "LaunchedKernel",
    "Launcher",
    "LocalLauncher",
    "MultiKernelManager",
    "ProvisionedKernel",
    "ProvisionerLauncher",
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

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "AsyncKernelManager": "asynchronous",
        "AsyncMultiKernelManager": "pool",
        "KernelManager": "blocking",
        "KernelProcess": "process",
        "KernelStopped": "running",
        "LaunchPlan": "launcher",
        "LaunchedKernel": "launcher",
        "Launcher": "launcher",
        "LocalLauncher": "launcher",
        "MultiKernelManager": "pool",
        "ProvisionedKernel": "provisioners",
        "ProvisionerLauncher": "provisioners",
        "Pruned": "discovery",
        "RunningKernel": "discovery",
        "find_running_kernel": "discovery",
        "interrupt_running_kernel": "running",
        "list_running_kernels": "discovery",
        "locate_running_kernel": "discovery",
        "prune_stale_kernels": "discovery",
        "restart_running_kernel": "running",
        "runtime_dir": "base",
        "stop_running_kernel": "running",
    },
)
