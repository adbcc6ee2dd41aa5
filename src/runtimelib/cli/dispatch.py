"""Running a parsed command: typed errors become one line and an exit code."""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable

from .. import errors
from . import (
    EXIT_KERNEL,
    EXIT_NO_KERNEL,
    EXIT_SERVER,
    EXIT_SERVER_AUTH,
    EXIT_TIMEOUT,
    UsageError,
    server_token,
)
from .term import Terminal

__all__ = ["dispatch"]

# Where each command lives, imported only for that command.
_HOMES = {"execute": ("notebooks", "execute_notebooks")}
# With --server, these commands act on a server's kernels (remote.py imports httpx: only then).
# console and execute choose their kernel where they live.
_REMOTE = frozenset({"kernels", "ps", "start", "stop", "interrupt", "restart", "run", "exec"})


def _handler(args: argparse.Namespace) -> Callable[[argparse.Namespace], int]:
    command = args.command
    if getattr(args, "server", None) is not None and command in _REMOTE:
        from .remote import COMMANDS

        return COMMANDS[command]
    module, name = _HOMES.get(command, ("commands", ""))
    loaded = importlib.import_module(f"{__package__}.{module}")
    handler: Callable[[argparse.Namespace], int] = (
        getattr(loaded, name) if name else loaded.COMMANDS[command]
    )
    return handler


def dispatch(args: argparse.Namespace) -> int:
    """Run the parsed command; typed errors become messages and exit codes."""
    if getattr(args, "token", None) is not None and getattr(args, "server", None) is None:
        raise UsageError("--token is for a server: give --server URL too")
    handler = _handler(args)
    terminal = Terminal()
    try:
        return _without_token(handler, args)
    except errors.InvalidKernelNameError as exc:
        raise UsageError(str(exc)) from exc
    except (
        errors.NoSuchKernelError,
        errors.ConnectionFileError,
        errors.KernelNotRunningError,
        errors.ServerNotFoundError,
    ) as exc:
        terminal.error_line(f"runtimelib: {exc}")
        return EXIT_NO_KERNEL
    except errors.ServerAuthError as exc:
        terminal.error_line(f"runtimelib: {exc}")
        return EXIT_SERVER_AUTH
    except errors.ServerError as exc:
        # Unreachable, failed (5xx), or a refusal without a code of its own (409).
        terminal.error_line(f"runtimelib: {exc}")
        return EXIT_SERVER
    except (errors.KernelTimeoutError, errors.CellTimeoutError) as exc:
        terminal.error_line(f"runtimelib: {exc}")
        return EXIT_TIMEOUT
    except errors.RuntimelibError as exc:
        # The kernel could not start, died, did not stop, or spoke nonsense.
        terminal.error_line(f"runtimelib: {exc}")
        return EXIT_KERNEL


def _without_token(handler: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Run the handler; an error's message that holds the server's token (a server that
    echoes it in its reason, say) has it replaced before anything shows it."""
    secret = server_token(args) if getattr(args, "server", None) is not None else None
    try:
        return handler(args)
    except Exception as exc:
        if secret and secret in str(exc):
            exc.args = (str(exc).replace(secret, "<token>"),)
        raise
