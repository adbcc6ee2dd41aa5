"""Running a parsed command: typed errors become one line and an exit code."""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable

from .. import errors
from . import EXIT_KERNEL, EXIT_NO_KERNEL, EXIT_TIMEOUT, UsageError
from .term import Terminal

__all__ = ["dispatch"]

# Where each command lives, imported only for that command.
_HOMES = {"execute": ("notebooks", "execute_notebooks")}


def _handler(command: str) -> Callable[[argparse.Namespace], int]:
    module, name = _HOMES.get(command, ("commands", ""))
    loaded = importlib.import_module(f"{__package__}.{module}")
    handler: Callable[[argparse.Namespace], int] = (
        getattr(loaded, name) if name else loaded.COMMANDS[command]
    )
    return handler


def dispatch(args: argparse.Namespace) -> int:
    """Run the parsed command; typed errors become messages and exit codes."""
    handler = _handler(args.command)
    terminal = Terminal()
    try:
        return handler(args)
    except errors.InvalidKernelNameError as exc:
        raise UsageError(str(exc)) from exc
    except (
        errors.NoSuchKernelError,
        errors.ConnectionFileError,
        errors.KernelNotRunningError,
    ) as exc:
        terminal.error_line(f"runtimelib: {exc}")
        return EXIT_NO_KERNEL
    except (errors.KernelTimeoutError, errors.CellTimeoutError) as exc:
        terminal.error_line(f"runtimelib: {exc}")
        return EXIT_TIMEOUT
    except errors.RuntimelibError as exc:
        # The kernel could not start, died, did not stop, or spoke nonsense.
        terminal.error_line(f"runtimelib: {exc}")
        return EXIT_KERNEL
