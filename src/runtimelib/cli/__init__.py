"""The ``runtimelib`` command: run code and notebooks on kernels, and manage running kernels.

Exit codes, for scripts:

====  ================================================================
0     success
1     the code raised (an error output, or a notebook cell that failed)
2     usage error (bad arguments, unreadable input file)
3     no such kernel: no kernelspec by that name, or no running kernel by that id
4     the kernel failed: it could not start, died, or did not stop
5     timed out waiting for the kernel (or a notebook cell ran past ``--timeout``)
130   stopped by Ctrl-C
====  ================================================================

Only argparse is imported to build the parser, so ``--help`` answers at once; each
command imports what it needs when it runs.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

__all__ = [
    "EXIT_ERROR",
    "EXIT_INTERRUPTED",
    "EXIT_KERNEL",
    "EXIT_NO_KERNEL",
    "EXIT_OK",
    "EXIT_TIMEOUT",
    "EXIT_USAGE",
    "build_parser",
    "entry_point",
    "main",
]

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_NO_KERNEL = 3
EXIT_KERNEL = 4
EXIT_TIMEOUT = 5
EXIT_INTERRUPTED = 130

_EPILOG = """\
exit codes: 0 ok, 1 the code raised, 2 usage, 3 no such kernel, 4 kernel failed,
5 timed out, 130 stopped by Ctrl-C
"""


class UsageError(Exception):
    """Bad input the parser could not catch (exit code 2)."""


def _code_source(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("-c", "--code", help="the code to run")
    group.add_argument("file", nargs="?", help="a file of code to run, or - for standard input")
    parser.add_argument("--timeout", type=float, help="give up after this many seconds")
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
    if existing:
        parser.add_argument(
            "--existing",
            metavar="ID|FILE",
            help="use a running kernel (id, id prefix or connection file)",
        )


def build_parser() -> argparse.ArgumentParser:
    """The command line, with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="runtimelib",
        description="Run code and notebooks on Jupyter kernels, and manage running kernels.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    def add(name: str, summary: str) -> argparse.ArgumentParser:
        return commands.add_parser(name, help=summary, description=summary, epilog=_EPILOG)

    kernels = add("kernels", "list the installed kernelspecs")
    kernels.add_argument("--json", action="store_true", help="print JSON")
    kernels.add_argument("-q", "--quiet", action="store_true", help="names only, one per line")

    run = add("run", "start a kernel (or use a running one), run code, stream its output")
    _kernel_option(run)
    _code_source(run)
    run.add_argument("--cwd", metavar="DIR", help="the kernel's working directory")

    execute = add("exec", "run code on a running kernel")
    execute.add_argument("existing", metavar="ID|FILE", help="the running kernel")
    _code_source(execute)

    start = add("start", "start a kernel that keeps running in the background")
    _kernel_option(start, existing=False)
    start.add_argument("--cwd", metavar="DIR", help="the kernel's working directory")
    start.add_argument("--json", action="store_true", help="print JSON")

    ps = add("ps", "list the kernels running on this machine")
    ps.add_argument("--json", action="store_true", help="print JSON")
    ps.add_argument("-q", "--quiet", action="store_true", help="ids only, one per line")

    for name, summary in (
        ("interrupt", "interrupt what a running kernel is doing"),
        ("restart", "restart a running kernel on the same ports"),
    ):
        sub = add(name, summary)
        sub.add_argument("kernel_id", metavar="ID|FILE", help="the running kernel")
        sub.add_argument("--timeout", type=float, default=10.0, help="seconds to wait (default 10)")
    stop = add("stop", "stop running kernels")
    which = stop.add_mutually_exclusive_group(required=True)
    which.add_argument("kernel_id", metavar="ID|FILE", nargs="?", help="the running kernel")
    which.add_argument("--all", action="store_true", help="every kernel in the runtime dir")
    stop.add_argument("--timeout", type=float, default=10.0, help="seconds to wait (default 10)")
    stop.add_argument("--json", action="store_true", help="print JSON")

    prune = add("prune", "remove the connection files of kernels that no longer answer")
    prune.add_argument(
        "--min-age",
        type=float,
        default=30.0,
        help="leave files younger than this (seconds, default 30)",
    )
    prune.add_argument("--json", action="store_true", help="print JSON")

    console = add("console", "an interactive prompt on a kernel")
    _kernel_option(console)

    notebook = add("execute", "run notebooks and write their outputs")
    notebook.add_argument("notebooks", metavar="NOTEBOOK", nargs="+", help=".ipynb files")
    where = notebook.add_mutually_exclusive_group()
    where.add_argument("-o", "--output", metavar="OUT", help="write the executed notebook here")
    where.add_argument("--inplace", action="store_true", help="overwrite the notebook")
    _kernel_option(notebook, existing=False)
    notebook.add_argument("--timeout", type=float, help="seconds per cell before it is interrupted")
    notebook.add_argument(
        "--startup-timeout", type=float, default=60.0, help="seconds for the kernel to start"
    )
    notebook.add_argument(
        "--allow-errors", action="store_true", help="run every cell even after errors"
    )
    notebook.add_argument(
        "--cwd",
        metavar="DIR",
        help="the kernel's working directory (default: the notebook's folder)",
    )
    notebook.add_argument(
        "--merge-streams", action="store_true", help="one stdout and one stderr output per cell"
    )
    notebook.add_argument("--json", action="store_true", help="report as JSON")

    completion = add("completion", "print a shell completion script")
    completion.add_argument("shell", choices=["bash", "zsh"])
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        from .. import __version__

        print(f"runtimelib {__version__}")
        return EXIT_OK
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    from . import commands

    try:
        return commands.dispatch(args)
    except UsageError as exc:
        parser.exit(EXIT_USAGE, f"runtimelib {args.command}: error: {exc}\n")
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # Output piped into a command that stopped reading (e.g. head): not our failure.
        sys.stderr.close()
        return EXIT_OK


def entry_point() -> None:
    """The console script: ``sys.exit(main())``."""
    sys.exit(main())
