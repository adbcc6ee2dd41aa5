"""Writing kernels: the Kernel base class, and runtimelib's own kernels."""

from __future__ import annotations

from .base import Kernel, StdinNotAllowedError

__all__ = ["Kernel", "StdinNotAllowedError"]
