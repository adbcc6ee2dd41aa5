"""Writing kernels: the Kernel base class, and runtimelib's own kernels."""

from __future__ import annotations

from .base import Kernel
from .publishing import StdinNotAllowedError

__all__ = ["Kernel", "StdinNotAllowedError"]
