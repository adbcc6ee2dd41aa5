"""What the benchmarks do to their environment before timing anything."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_bytecode"]


def cache_bytecode(folder: str | os.PathLike[str]) -> None:
    """Let every process of the run (kernels included) cache compiled byte-code in ``folder``.

    Installed packages carry compiled byte-code; a source checkout may not, and
    PYTHONDONTWRITEBYTECODE (set on some machines) keeps it that way, so every kernel start
    would compile runtimelib afresh while the packages it is compared with load theirs. After
    a warm-up, neither side pays for compiling.
    """
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    os.environ["PYTHONPYCACHEPREFIX"] = str(Path(folder))
