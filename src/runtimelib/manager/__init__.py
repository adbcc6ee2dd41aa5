"""Launching and managing kernel processes: start, readiness, interrupt, restart, shutdown."""

from __future__ import annotations

from .asynchronous import AsyncKernelManager
from .base import DEFAULT_KERNEL, runtime_dir
from .blocking import KernelManager
from .process import KernelProcess

__all__ = ["DEFAULT_KERNEL", "AsyncKernelManager", "KernelManager", "KernelProcess", "runtime_dir"]
