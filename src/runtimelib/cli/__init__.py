"""The ``runtimelib`` command: run code and notebooks on kernels, and manage running kernels.

Exit codes, for scripts:

====  ================================================================
0     success
1     the code raised (an error output, or a notebook cell that failed)
2     usage error (bad arguments, unreadable input file)
3     no such kernel: no kernelspec by that name, or no running kernel by that id
4     the kernel failed: it could not start, died, or did not stop
5     timed out: the code ran past ``--timeout``, or the kernel did not answer
6     the server (``--server``) could not be reached, or failed
7     the server refused the token (``--token`` or ``JUPYTER_TOKEN``)
70    a bug in runtimelib (``RUNTIMELIB_TRACEBACK=1`` shows where)
130   stopped or interrupted by Ctrl-C
====  ================================================================

With ``--server URL`` a command acts on the kernels of a Jupyter Server or Kernel Gateway
instead of this machine's (cli/remote.py); a kernel or kernelspec the server does not have
is exit code 3, as a local one is.

Only argparse is imported to build the parser, so ``--help`` answers at once; each
command imports what it needs when it runs.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import warnings
from collections.abc import Sequence
from typing import Any, TextIO

__all__ = [
    "EXIT_ERROR",
    "EXIT_INTERNAL",
    "EXIT_INTERRUPTED",
    "EXIT_KERNEL",
    "EXIT_NO_KERNEL",
    "EXIT_OK",
    "EXIT_SERVER",
    "EXIT_SERVER_AUTH",
    "EXIT_TIMEOUT",
    "EXIT_USAGE",
    "build_parser",
    "entry_point",
    "main",
    "server_token",
]

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_NO_KERNEL = 3
EXIT_KERNEL = 4
EXIT_TIMEOUT = 5
EXIT_SERVER = 6
EXIT_SERVER_AUTH = 7
EXIT_INTERNAL = 70
EXIT_INTERRUPTED = 130

_EPILOG = """\
exit codes: 0 ok, 1 the code raised, 2 usage, 3 no such kernel, 4 kernel failed,
5 timed out, 6 server unreachable or failed, 7 server refused the token,
70 a bug in runtimelib, 130 Ctrl-C
"""


class UsageError(Exception):
    """Bad input the parser could not catch (exit code 2)."""


# -- argument types: a bad value is a usage error before anything starts ----------------------


def _seconds(text: str) -> float:
    """A positive, finite number of seconds."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a positive number of seconds (leave the option out for no limit)"
        )
    return value


def _age(text: str) -> float:
    """A number of seconds, zero or more."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (value >= 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds, 0 or more")
    return value


def _kernel_id(text: str) -> str:
    """A running kernel's id, id prefix or connection file: never empty (an empty ``$id``
    from a failed ``start`` must not quietly pick a kernel)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("the kernel id is empty (did `runtimelib start` fail?)")
    return text


def _directory(text: str) -> str:
    """An existing directory."""
    if not os.path.isdir(text):
        what = "is not a directory" if os.path.exists(text) else "does not exist"
        raise argparse.ArgumentTypeError(f"{text} {what}")
    return text


class CommandParser(argparse.ArgumentParser):
    """An ArgumentParser that keeps a public record of its option strings and subcommands,
    which the completion scripts are built from."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        #: Every option string, in the order added (``-h``, ``--help`` first).
        self.options: list[str] = []
        #: The subcommands by name, once ``add_subparsers`` was called.
        self.commands: dict[str, CommandParser] = {}
        super().__init__(*args, **kwargs)

    def add_argument(self, *args: Any, **kwargs: Any) -> argparse.Action:
        action = super().add_argument(*args, **kwargs)
        self.options.extend(action.option_strings)
        return action

    def add_mutually_exclusive_group(self, **kwargs: Any) -> Any:
        group = super().add_mutually_exclusive_group(**kwargs)
        add = group.add_argument

        def recorded(*args: Any, **kw: Any) -> argparse.Action:
            action = add(*args, **kw)
            self.options.extend(action.option_strings)
            return action

        setattr(group, "add_argument", recorded)  # noqa: B010 (a method, replaced)
        return group

    def add_subparsers(self, **kwargs: Any) -> Any:
        commands = super().add_subparsers(**kwargs)
        add = commands.add_parser

        def recorded(name: str, **kw: Any) -> CommandParser:
            parser: CommandParser = add(name, **kw)
            self.commands[name] = parser
            return parser

        setattr(commands, "add_parser", recorded)  # noqa: B010 (a method, replaced)
        return commands


def _code_source(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("-c", "--code", help="the code to run")
    group.add_argument("file", nargs="?", help="a file of code to run, or - for standard input")
    parser.add_argument(
        "--timeout", type=_seconds, help="stop waiting after this many seconds (exit code 5)"
    )
    parser.add_argument(
        "--save-media", metavar="DIR", help="save images, HTML and other rich outputs in DIR"
    )
    parser.add_argument(
        "--json", action="store_true", help="print the result as JSON instead of streaming it"
    )


def _kernel_option(parser: argparse.ArgumentParser, *, existing: bool = True) -> None:
    parser.add_argument(
        "-k",
        "--kernel",
        metavar="NAME",
        help="kernelspec name (default: python3 if installed, else runtimelib-python)",
    )
    parser.add_argument(
        "--encryption",
        dest="transport_encryption",
        choices=["disabled", "auto", "required"],
        help="CurveZMQ for a kernel started here: auto (the default) encrypts kernels whose"
        " kernelspec declares it, required refuses the others, disabled never encrypts",
    )
    if existing:
        parser.add_argument(
            "--existing",
            metavar="ID|FILE",
            type=_kernel_id,
            help="use a running kernel (id, id prefix or connection file)",
        )


def server_token(args: argparse.Namespace) -> str | None:
    """The token for ``--server``: ``--token``, else ``JUPYTER_TOKEN``, else none."""
    token = getattr(args, "token", None) or os.environ.get("JUPYTER_TOKEN")
    return token or None


def _server_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--server",
        metavar="URL",
        help="act on the kernels of this Jupyter Server or Kernel Gateway instead of this"
        " machine's",
    )
    parser.add_argument(
        "--token",
        metavar="TOKEN",
        help="the server's token (default: $JUPYTER_TOKEN, which other users cannot see in"
        " the process list as they can see this option)",
    )


def build_parser() -> CommandParser:
    """The command line, with every subcommand."""
    parser = CommandParser(
        prog="runtimelib",
        description="Run code and notebooks on Jupyter kernels, and manage running kernels.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    def add(name: str, summary: str) -> CommandParser:
        sub: CommandParser = commands.add_parser(
            name, help=summary, description=summary, epilog=_EPILOG
        )
        return sub

    kernels = add("kernels", "list, install and remove kernelspecs")
    kernels.add_argument("--json", action="store_true", help="print JSON")
    kernels.add_argument("-q", "--quiet", action="store_true", help="names only, one per line")
    _server_option(kernels)
    specs = kernels.add_subparsers(dest="kernels_action", metavar="ACTION")
    install = specs.add_parser(
        "install",
        help="install a kernelspec folder, or a kernel class",
        description=(
            "Install a kernelspec: a folder holding kernel.json, or a runtimelib Kernel "
            "class given as MODULE:CLASS (a spec that runs it with this Python is written)."
        ),
        epilog=_EPILOG,
    )
    install.add_argument("source", metavar="DIR|MODULE:CLASS", help="what to install")
    install.add_argument("--name", help="the kernel name (default: the folder's or kernel's)")
    install.add_argument("--display-name", help="the name frontends show (kernel classes)")
    where = install.add_mutually_exclusive_group()
    where.add_argument("--user", action="store_true", help="for this user only")
    where.add_argument(
        "--sys-prefix", action="store_true", help=f"in this environment ({sys.prefix})"
    )
    where.add_argument("--prefix", metavar="DIR", help="under DIR/share/jupyter")
    install.add_argument(
        "--replace", action="store_true", help="replace a kernelspec of the same name"
    )
    remove = specs.add_parser(
        "remove",
        help="remove an installed kernelspec",
        description="Remove the installed kernelspec a kernel name finds.",
        epilog=_EPILOG,
    )
    remove.add_argument("names", metavar="NAME", nargs="+", help="kernel names")

    run = add("run", "start a kernel (or use a running one), run code, stream its output")
    _kernel_option(run)
    _code_source(run)
    run.add_argument("--cwd", metavar="DIR", type=_directory, help="the kernel's working directory")
    _server_option(run)

    execute = add("exec", "run code on a running kernel")
    execute.add_argument("existing", metavar="ID|FILE", type=_kernel_id, help="the running kernel")
    _code_source(execute)
    _server_option(execute)

    start = add("start", "start a kernel that keeps running in the background")
    _kernel_option(start, existing=False)
    start.add_argument(
        "--cwd", metavar="DIR", type=_directory, help="the kernel's working directory"
    )
    start.add_argument("--json", action="store_true", help="print JSON")
    _server_option(start)

    ps = add("ps", "list the kernels running on this machine")
    ps.add_argument("--json", action="store_true", help="print JSON")
    ps.add_argument("-q", "--quiet", action="store_true", help="ids only, one per line")
    _server_option(ps)

    for name, summary in (
        ("interrupt", "interrupt what a running kernel is doing"),
        ("restart", "restart a running kernel on the same ports"),
    ):
        sub = add(name, summary)
        sub.add_argument("kernel_id", metavar="ID|FILE", type=_kernel_id, help="the running kernel")
        sub.add_argument(
            "--timeout", type=_seconds, default=10.0, help="seconds to wait (default 10)"
        )
        _server_option(sub)
    stop = add("stop", "stop running kernels")
    which = stop.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "kernel_id", metavar="ID|FILE", nargs="?", type=_kernel_id, help="the running kernel"
    )
    which.add_argument(
        "--all",
        action="store_true",
        help="every kernel in the runtime dir (with --server: every kernel of the server)",
    )
    stop.add_argument(
        "--timeout",
        type=_seconds,
        default=10.0,
        help="seconds before escalating to SIGTERM, then SIGKILL, for kernels runtimelib "
        "started (default 10)",
    )
    stop.add_argument("--json", action="store_true", help="print JSON")
    _server_option(stop)

    prune = add("prune", "remove the connection files of kernels that no longer answer")
    prune.add_argument(
        "--min-age",
        type=_age,
        default=30.0,
        help="leave files younger than this (seconds, default 30)",
    )
    prune.add_argument("--json", action="store_true", help="print JSON")

    console = add("console", "an interactive prompt on a kernel")
    _kernel_option(console)
    _server_option(console)

    notebook = add("execute", "run notebooks and write their outputs")
    notebook.add_argument("notebooks", metavar="NOTEBOOK", nargs="+", help=".ipynb files")
    where = notebook.add_mutually_exclusive_group()
    where.add_argument("-o", "--output", metavar="OUT", help="write the executed notebook here")
    where.add_argument("--inplace", action="store_true", help="overwrite the notebook")
    _kernel_option(notebook, existing=False)
    notebook.add_argument(
        "--timeout", type=_seconds, help="seconds per cell before it is interrupted"
    )
    notebook.add_argument(
        "--startup-timeout", type=_seconds, default=60.0, help="seconds for the kernel to start"
    )
    notebook.add_argument(
        "--allow-errors", action="store_true", help="run every cell even after errors"
    )
    notebook.add_argument(
        "--cwd",
        metavar="DIR",
        type=_directory,
        help="the kernel's working directory (default: the notebook's folder)",
    )
    notebook.add_argument(
        "--merge-streams", action="store_true", help="one stdout and one stderr output per cell"
    )
    notebook.add_argument("--json", action="store_true", help="report as JSON")
    _server_option(notebook)

    completion = add("completion", "print a shell completion script")
    completion.add_argument("shell", choices=["bash", "zsh"])
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        from ..version import __version__

        print(f"runtimelib {__version__}")
        return EXIT_OK
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    from .dispatch import dispatch

    warnings.showwarning = _one_line_warning
    try:
        return dispatch(args)
    except UsageError as exc:
        parser.exit(EXIT_USAGE, f"runtimelib {args.command}: error: {exc}\n")
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # Output piped into a command that stopped reading (e.g. head): not our failure.
        sys.stderr.close()
        return EXIT_OK
    except Exception as exc:
        # Every failure a user can cause has its own message and exit code; what is left is a
        # bug. One line, unless asked for the whole traceback.
        if os.environ.get("RUNTIMELIB_TRACEBACK"):
            raise
        sys.stderr.write(
            f"runtimelib {args.command}: internal error: {type(exc).__name__}: {exc} "
            "(RUNTIMELIB_TRACEBACK=1 shows where; please report it)\n"
        )
        return EXIT_INTERNAL


def _one_line_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    """Warnings as the command's other messages are: one line, no source location."""
    (file or sys.stderr).write(f"runtimelib: warning: {message}\n")


def entry_point() -> None:
    """The console script: ``sys.exit(main())``."""
    sys.exit(main())
