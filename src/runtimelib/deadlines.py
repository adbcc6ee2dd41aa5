"""Timeouts and deadlines: a timeout becomes a deadline once, where a call starts, and every
wait below it takes the deadline (a moment on the caller's monotonic clock: ``time.monotonic()``
in threads, ``anyio.current_time()`` in async code; infinity for none)."""

from __future__ import annotations

import math

__all__ = ["deadline_after", "time_left"]


def deadline_after(timeout: float | None, now: float) -> float:
    """The deadline ``timeout`` seconds after ``now``; infinity for no timeout."""
    return math.inf if timeout is None else now + timeout


def time_left(deadline: float, now: float) -> float | None:
    """The seconds left until ``deadline`` (never below zero); None for no deadline."""
    return None if deadline == math.inf else max(deadline - now, 0.0)
