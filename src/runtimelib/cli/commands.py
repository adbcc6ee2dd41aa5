"""What each ``runtimelib`` subcommand does."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .. import errors
from ..client import KernelClient, to_nbformat
from ..connection import ConnectionInfo
from ..kernelspec import (
    install_kernelspec,
    remove_kernelspec,
    scan_kernelspecs,
)
from ..manager import (
    KernelManager,
    interrupt_running_kernel,
    list_running_kernels,
    locate_running_kernel,
    prune_stale_kernels,
    restart_running_kernel,
    stop_running_kernel,
)
from . import (
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_KERNEL,
    EXIT_OK,
    UsageError,
)
from .ctrlc import CtrlC
from .term import Terminal, emit_json, plural

__all__ = ["COMMANDS"]


def _table(rows: list[list[str]], header: list[str], terminal: Terminal) -> None:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    line = "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()
    print(terminal.style(line, "1"))
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


# -- kernelspecs and running kernels -----------------------------------------------------------


def _kernels(args: argparse.Namespace) -> int:
    if args.kernels_action == "install":
        return _install_kernelspec(args)
    if args.kernels_action == "remove":
        return _remove_kernelspecs(args)
    scan = scan_kernelspecs()
    terminal = Terminal()
    for bad in scan.broken:
        terminal.note(f"ignoring kernelspec {bad.name!r} in {bad.path}: {bad.error}")
    specs = list(scan.specs.values())
    if args.json:
        emit_json(
            [
                {
                    "name": s.name,
                    "display_name": s.display_name,
                    "language": s.language,
                    "path": str(s.resource_dir),
                    "argv": list(s.argv),
                }
                for s in specs
            ]
        )
    elif args.quiet:
        for spec in specs:
            print(spec.name)
    else:
        rows = [[s.name, s.language, s.display_name, str(s.resource_dir)] for s in specs]
        _table(rows, ["NAME", "LANGUAGE", "DISPLAY NAME", "PATH"], terminal)
    return EXIT_OK


def _install_kernelspec(args: argparse.Namespace) -> int:
    where = {"user": args.user, "sys_prefix": args.sys_prefix, "prefix": args.prefix}
    source = str(args.source)
    try:
        if os.path.isdir(source):
            if args.display_name:
                raise UsageError("--display-name is for kernel classes; a folder has its own")
            path = install_kernelspec(source, name=args.name, replace=args.replace, **where)
        elif ":" in source:
            from ..kernel.install import install_kernel_class

            # As ``python -m`` would: a module in the current directory can be named.
            sys.path.insert(0, os.getcwd())
            path = install_kernel_class(
                source,
                name=args.name,
                display_name=args.display_name,
                replace=args.replace,
                **where,
            )
        else:
            raise UsageError(f"{source} is neither a folder nor MODULE:CLASS")
    except errors.KernelSpecError as exc:
        raise UsageError(str(exc)) from exc  # what was given cannot be installed
    print(f"installed {path.name} in {path}")
    return EXIT_OK


def _remove_kernelspecs(args: argparse.Namespace) -> int:
    for name in args.names:
        print(f"removed {remove_kernelspec(name)}")
    return EXIT_OK


def _ps(args: argparse.Namespace) -> int:
    found = list_running_kernels()
    if args.json:
        emit_json(
            [
                {
                    "id": k.kernel_id,
                    "kernel_name": k.kernel_name,
                    "alive": k.alive,
                    "pid": k.pid,
                    "connection_file": str(k.connection_file),
                    "encrypted": k.connection_info is not None and k.connection_info.encrypted,
                    **({"error": k.error} if k.error else {}),
                }
                for k in found
            ]
        )
    elif args.quiet:
        for kernel in found:
            print(kernel.kernel_id)
    else:
        terminal = Terminal()
        rows = [
            [
                k.kernel_id,
                k.kernel_name or "?",
                str(k.pid or "-"),
                _state(k.alive, k.pid, terminal),
                str(k.connection_file),
            ]
            for k in found
        ]
        _table(rows, ["ID", "KERNEL", "PID", "STATE", "CONNECTION FILE"], terminal)
    return EXIT_OK


def _state(alive: bool, pid: int | None, terminal: Terminal) -> str:
    if alive:
        return terminal.style("alive", "32")
    if pid is not None:
        # Its process runs but its heartbeat is silent: stuck, or on its way out.
        return terminal.style("silent", "33")
    return terminal.style("dead", "31")


def _start(args: argparse.Namespace) -> int:
    # No output capture: this kernel is meant to outlive the command.
    km = KernelManager(
        args.kernel,
        cwd=args.cwd,
        independent=True,
        output="devnull",
        transport_encryption=args.transport_encryption,
    )
    km.start()
    assert km.connection_file is not None
    if args.json:
        emit_json(
            {
                "id": km.kernel_id,
                "kernel_name": km.kernel_name,
                "pid": km.pid,
                "connection_file": str(km.connection_file),
            }
        )
    else:
        print(km.kernel_id)
        Terminal().note(
            f"{km.kernel_name} kernel running (pid {km.pid}); connection file {km.connection_file}"
        )
    return EXIT_OK


def _stop(args: argparse.Namespace) -> int:
    targets = [k.kernel_id for k in list_running_kernels()] if args.all else [args.kernel_id]
    terminal = Terminal()
    results: list[dict[str, Any]] = []
    for target in targets:
        try:
            stopped = stop_running_kernel(target, timeout=args.timeout)
        except errors.KernelProcessError as exc:
            results.append({"id": target, "stopped": False, "error": str(exc)})
            if not args.json:
                terminal.error_line(f"runtimelib: {exc}")
            continue
        results.append(
            {
                "id": stopped.kernel_id,
                "stopped": True,
                "was_alive": stopped.was_running,
                "pid": stopped.pid,
                "by": stopped.by,
            }
        )
        if not args.json:
            how = f" ({stopped.by})" if stopped.by not in ("", "shutdown_request") else ""
            was = "" if stopped.was_running else " (it was not running)"
            print(f"stopped {stopped.kernel_id}{how}{was}")
    if args.json:
        emit_json(results)
    return EXIT_OK if all(r["stopped"] for r in results) else EXIT_KERNEL


def _interrupt(args: argparse.Namespace) -> int:
    interrupt_running_kernel(args.kernel_id, timeout=args.timeout)
    print(f"interrupted {args.kernel_id}")
    return EXIT_OK


def _restart(args: argparse.Namespace) -> int:
    pid = restart_running_kernel(args.kernel_id, timeout=args.timeout)
    print(f"restarted {args.kernel_id}" + (f" (pid {pid})" if pid is not None else ""))
    return EXIT_OK


def _prune(args: argparse.Namespace) -> int:
    pruned = prune_stale_kernels(min_age=args.min_age)
    if args.json:
        emit_json(
            {
                "removed": [
                    {"id": k.kernel_id, "connection_file": str(k.connection_file)}
                    for k in pruned.removed
                ],
                "too_young": [
                    {"id": k.kernel_id, "connection_file": str(k.connection_file)}
                    for k in pruned.too_young
                ],
            }
        )
        return EXIT_OK
    for kernel in pruned.removed:
        print(f"removed {kernel.connection_file}")
    if pruned.too_young:
        Terminal().note(
            f"kept {plural(len(pruned.too_young), 'file')} of kernels that do not answer, "
            f"younger than {args.min_age:g} s: they may still be starting (--min-age 0 "
            "removes them)"
        )
    elif not pruned.removed:
        Terminal().note("nothing to prune")
    return EXIT_OK


# -- running code ------------------------------------------------------------------------------


def _read_code(args: argparse.Namespace) -> str:
    if args.code is not None:
        return str(args.code)
    if args.file == "-":
        return sys.stdin.read()
    try:
        code = Path(args.file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {args.file}: {exc}") from exc
    if _looks_like_a_notebook(args.file, code):
        raise UsageError(
            f"{args.file} is a notebook, not code: run it with `runtimelib execute {args.file}`"
        )
    return code


def _looks_like_a_notebook(name: str, text: str) -> bool:
    if name.endswith(".ipynb"):
        return True
    if not text.lstrip().startswith("{"):
        return False
    try:
        data = json.loads(text)
    except ValueError:
        return False
    return isinstance(data, dict) and "cells" in data and "nbformat" in data


def _answer_input(prompt: str, password: bool) -> str:
    """input() in the kernel, answered from our standard input; at its end, EOFError in the
    kernel's code, as Python itself raises."""
    if password and sys.stdin.isatty():
        return getpass.getpass(prompt)
    sys.stdout.write(prompt)
    sys.stdout.flush()
    line = sys.stdin.readline()
    if not line:
        sys.stdout.write("\n")
        raise EOFError
    return line.removesuffix("\n")


def _execute_on(kc: KernelClient, code: str, args: argparse.Namespace, ctrl_c: CtrlC) -> int:
    terminal = Terminal(media_dir=args.save_media)
    reading_code_from_stdin = args.code is None and args.file == "-"
    with ctrl_c.installed():
        result = kc.execute(
            code,
            timeout=args.timeout,
            input=None if reading_code_from_stdin else _answer_input,
            on_output=None if args.json else terminal.output,
        )
    if not args.json:
        terminal.pages(result.payload)
    if args.json:
        emit_json(
            {
                "status": result.status,
                "execution_count": result.execution_count,
                "outputs": [to_nbformat(output) for output in result.outputs],
            }
        )
    if ctrl_c.count:
        return EXIT_INTERRUPTED  # interrupted at the user's request, whatever the code did
    return EXIT_OK if result.status == "ok" else EXIT_ERROR


def _run(args: argparse.Namespace) -> int:
    code = _read_code(args)
    terminal = Terminal()
    if args.existing is not None:
        _, path = locate_running_kernel(args.existing)
        with KernelClient(ConnectionInfo.from_file(path)) as kc:

            def interrupt() -> None:
                kc.interrupt(timeout=5.0)

            try:
                return _execute_on(kc, code, args, CtrlC(interrupt, terminal))
            except KeyboardInterrupt:
                # Someone else's kernel: leave it running.
                return EXIT_INTERRUPTED
    manager = KernelManager(
        args.kernel, cwd=args.cwd, transport_encryption=args.transport_encryption
    )
    with manager as km, km.client() as kc:
        try:
            return _execute_on(kc, code, args, CtrlC(km.interrupt, terminal, then="stop it"))
        except KeyboardInterrupt:
            km.shutdown(now=True)
            return EXIT_INTERRUPTED


def _console(args: argparse.Namespace) -> int:
    from .console import run_console

    return run_console(args)


def _completion(args: argparse.Namespace) -> int:
    from .completion import script

    sys.stdout.write(script(args.shell))
    return EXIT_OK


#: What each subcommand runs (``execute`` lives in notebooks.py, which starts its kernel
#: before importing the client machinery).
COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "kernels": _kernels,
    "ps": _ps,
    "start": _start,
    "stop": _stop,
    "interrupt": _interrupt,
    "restart": _restart,
    "prune": _prune,
    "run": _run,
    "exec": _run,  # run --existing, with the id as a positional argument
    "console": _console,
    "completion": _completion,
}
