"""``python -m runtimelib.kernel MODULE:CLASS -f CONNECTION_FILE``: run a Kernel class."""

from __future__ import annotations

import sys

from ..errors import KernelSpecError
from .install import kernel_class


def main() -> None:
    """Import the class named first, and launch it with the rest of the arguments."""
    if len(sys.argv) < 2 or ":" not in sys.argv[1]:
        raise SystemExit("usage: python -m runtimelib.kernel MODULE:CLASS -f CONNECTION_FILE")
    try:
        cls = kernel_class(sys.argv[1])
    except KernelSpecError as exc:
        raise SystemExit(f"runtimelib.kernel: {exc}") from None
    cls.launch(sys.argv[2:])


if __name__ == "__main__":
    main()
