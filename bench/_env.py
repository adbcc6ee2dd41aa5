"""What the benchmarks share: what they do to their environment before timing anything, and
the median of a timed call."""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["cache_bytecode", "median_ms"]


def cache_bytecode(folder: str | os.PathLike[str]) -> None:
    """Let every process of the run (kernels included) cache compiled byte-code in ``folder``.

    Installed packages carry compiled byte-code; a source checkout may not, and
    PYTHONDONTWRITEBYTECODE (set on some machines) keeps it that way, so every kernel start
    would compile runtimelib afresh while the packages it is compared with load theirs. After
    a warm-up, neither side pays for compiling.
    """
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    os.environ["PYTHONPYCACHEPREFIX"] = str(Path(folder))


def median_ms(fn: Callable[[], Any], count: int) -> float:
    """The median of ``count`` timed calls of ``fn``, in milliseconds."""
    samples = []
    for _ in range(count):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000)
    return statistics.median(samples)
