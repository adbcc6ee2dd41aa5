"""Kernel clients: AsyncKernelClient (asyncio, trio) and its blocking twin KernelClient."""

from __future__ import annotations
