"""What each ``runtimelib`` subcommand does."""

from __future__ import annotations

import argparse
import contextlib
import getpass
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any

from .. import errors
from ..client import KernelClient, to_nbformat
from ..connection import ConnectionInfo
from ..kernelspec import default_kernel_name, scan_kernelspecs
from ..manager import (
    KernelManager,
    list_running_kernels,
    locate_running_kernel,
    prune_stale_kernels,
)
from ..transports.zmq import Heartbeat
from . import (
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_KERNEL,
    EXIT_NO_KERNEL,
    EXIT_OK,
    EXIT_TIMEOUT,
    UsageError,
)
from .term import Terminal, strip_ansi

__all__ = ["dispatch"]


def dispatch(args: argparse.Namespace) -> int:
    """Run the parsed command; typed errors become messages and exit codes."""
    handler: Callable[[argparse.Namespace], int] = _COMMANDS[args.command]
    terminal = Terminal()
    try:
        return handler(args)
    except errors.NoSuchKernelError as exc:
        terminal.error_line(f"runtimelib: {exc}")
        return EXIT_NO_KERNEL
    except errors.ConnectionFileError as exc:
        terminal.error_line(f"runtimelib: {exc}")
        return EXIT_NO_KERNEL
    except (errors.KernelTimeoutError, errors.CellTimeoutError) as exc:
        terminal.error_line(f"runtimelib: {exc}")
        return EXIT_TIMEOUT
    except (errors.KernelProcessError, errors.KernelSpecError, errors.TransportError) as exc:
        terminal.error_line(f"runtimelib: {exc}")
        return EXIT_KERNEL


def _emit_json(value: Any) -> None:
    json.dump(value, sys.stdout, indent=2, ensure_ascii=False, default=str)
    sys.stdout.write("\n")


def _table(rows: list[list[str]], header: list[str], terminal: Terminal) -> None:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    line = "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()
    print(terminal.style(line, "1"))
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


# -- kernelspecs and running kernels -----------------------------------------------------------


def _kernels(args: argparse.Namespace) -> int:
    scan = scan_kernelspecs()
    terminal = Terminal()
    for bad in scan.broken:
        terminal.note(f"ignoring kernelspec {bad.name!r} in {bad.path}: {bad.error}")
    specs = list(scan.specs.values())
    if args.json:
        _emit_json(
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


def _ps(args: argparse.Namespace) -> int:
    found = list_running_kernels()
    if args.json:
        _emit_json(
            [
                {
                    "id": k.kernel_id,
                    "kernel_name": k.kernel_name,
                    "alive": k.alive,
                    "connection_file": str(k.connection_file),
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
        state = {True: terminal.style("alive", "32"), False: terminal.style("dead", "31")}
        rows = [
            [k.kernel_id, k.kernel_name or "?", state[k.alive], str(k.connection_file)]
            for k in found
        ]
        _table(rows, ["ID", "KERNEL", "STATE", "CONNECTION FILE"], terminal)
    return EXIT_OK


def _start(args: argparse.Namespace) -> int:
    # No output capture: this kernel is meant to outlive the command.
    km = KernelManager(
        args.kernel or default_kernel_name(), cwd=args.cwd, independent=True, output="devnull"
    )
    km.start()
    assert km.connection_file is not None
    if args.json:
        _emit_json(
            {
                "id": km.kernel_id,
                "kernel_name": km.kernel_name,
                "pid": km.pid,
                "connection_file": str(km.connection_file),
            }
        )
    else:
        print(km.kernel_id)
        Terminal().note(f"{km.kernel_name} kernel running; connection file {km.connection_file}")
    return EXIT_OK


def _wait_silent(info: ConnectionInfo, timeout: float) -> bool:
    """Wait until the kernel stops answering its heartbeat; True if it did in time."""
    deadline = time.monotonic() + timeout
    with Heartbeat(info) as heart:
        while time.monotonic() < deadline:
            if not heart.ping(min(0.3, max(deadline - time.monotonic(), 0.01))):
                return True
    return False


def _ask_to_stop(info: ConnectionInfo, timeout: float, *, restart: bool = False) -> bool:
    """shutdown_request on control, then wait for the heartbeat to fall silent; True if it did.

    A kernel we did not start has no process of ours to signal: its heartbeat is all we see.
    """
    with (
        KernelClient(info, ready_timeout=None, heartbeat_interval=None) as kc,
        contextlib.suppress(errors.KernelTimeoutError),
    ):
        kc.shutdown(restart=restart, timeout=min(timeout, 5.0))
    return _wait_silent(info, timeout)


def _stop_one(kernel_id: str, path: Path, timeout: float) -> dict[str, Any]:
    info = ConnectionInfo.from_file(path)
    with Heartbeat(info) as heart:
        alive = heart.ping(0.5)
    if alive and not _ask_to_stop(info, timeout):
        return {"id": kernel_id, "stopped": False, "error": "still answering"}
    path.unlink(missing_ok=True)
    return {"id": kernel_id, "stopped": True, "was_alive": alive}


def _stop(args: argparse.Namespace) -> int:
    if args.all:
        targets = [(k.kernel_id, k.connection_file) for k in list_running_kernels()]
    else:
        targets = [locate_running_kernel(args.kernel_id)]
    results = [_stop_one(kernel_id, path, args.timeout) for kernel_id, path in targets]
    if args.json:
        _emit_json(results)
    else:
        terminal = Terminal()
        for result in results:
            if result["stopped"]:
                print(f"stopped {result['id']}")
            else:
                terminal.error_line(f"runtimelib: kernel {result['id']} did not stop")
    return EXIT_OK if all(r["stopped"] for r in results) else EXIT_KERNEL


def _interrupt(args: argparse.Namespace) -> int:
    _, path = locate_running_kernel(args.kernel_id)
    with KernelClient(
        ConnectionInfo.from_file(path), ready_timeout=None, heartbeat_interval=None
    ) as kc:
        kc.interrupt(timeout=args.timeout)
    return EXIT_OK


def _restart(args: argparse.Namespace) -> int:
    kernel_id, path = locate_running_kernel(args.kernel_id)
    info = ConnectionInfo.from_file(path)
    if not info.kernel_name:
        raise UsageError(f"{path} does not say which kernel it runs; cannot start it again")
    if not _ask_to_stop(info, args.timeout, restart=True):
        raise errors.KernelProcessError(f"kernel {kernel_id} did not stop for the restart")
    km = KernelManager(
        info.kernel_name,
        connection_info=info,
        kernel_id=kernel_id,
        independent=True,
        output="devnull",
    )
    km.start()
    print(f"restarted {kernel_id}")
    return EXIT_OK


def _prune(args: argparse.Namespace) -> int:
    removed = prune_stale_kernels(min_age=args.min_age)
    if args.json:
        _emit_json(
            [{"id": k.kernel_id, "connection_file": str(k.connection_file)} for k in removed]
        )
    else:
        for kernel in removed:
            print(f"removed {kernel.connection_file}")
    return EXIT_OK


# -- running code ------------------------------------------------------------------------------


def _read_code(args: argparse.Namespace) -> str:
    if args.code is not None:
        return str(args.code)
    if args.file == "-":
        return sys.stdin.read()
    try:
        return Path(args.file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {args.file}: {exc}") from exc


def _answer_input(prompt: str, password: bool) -> str:
    """input() in the kernel, answered from our standard input."""
    if password and sys.stdin.isatty():
        return getpass.getpass(prompt)
    sys.stdout.write(prompt)
    sys.stdout.flush()
    line = sys.stdin.readline()
    return line.removesuffix("\n")


class _CtrlC:
    """The first Ctrl-C interrupts the kernel; a second one stops waiting (and the kernel)."""

    def __init__(self, interrupt: Callable[[], None], terminal: Terminal) -> None:
        self.interrupt = interrupt
        self.terminal = terminal
        self.count = 0

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.count += 1
        if self.count > 1:
            raise KeyboardInterrupt
        self.terminal.note("\ninterrupting the kernel (Ctrl-C again to stop it)")
        threading.Thread(target=self._interrupt, daemon=True).start()

    def _interrupt(self) -> None:
        try:
            self.interrupt()
        except errors.RuntimelibError as exc:
            self.terminal.error_line(f"runtimelib: could not interrupt: {exc}")

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = signal.signal(signal.SIGINT, self)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)


def _execute_on(
    kc: KernelClient, code: str, args: argparse.Namespace, interrupt: Callable[[], None]
) -> int:
    terminal = Terminal(media_dir=args.save_media)
    reading_code_from_stdin = args.code is None and args.file == "-"
    with _CtrlC(interrupt, terminal).installed():
        result = kc.execute(
            code,
            timeout=args.timeout,
            input=None if reading_code_from_stdin else _answer_input,
            on_output=None if args.json else terminal.output,
        )
    if not args.json:
        terminal.pages(result.payload)
    if args.json:
        _emit_json(
            {
                "status": result.status,
                "execution_count": result.execution_count,
                "outputs": [to_nbformat(output) for output in result.outputs],
            }
        )
    return EXIT_OK if result.status == "ok" else EXIT_ERROR


def _run(args: argparse.Namespace) -> int:
    code = _read_code(args)
    if getattr(args, "existing", None):
        _, path = locate_running_kernel(args.existing)
        with KernelClient(ConnectionInfo.from_file(path)) as kc:

            def interrupt() -> None:
                kc.interrupt(timeout=5.0)

            try:
                return _execute_on(kc, code, args, interrupt)
            except KeyboardInterrupt:
                # Someone else's kernel: leave it running.
                return EXIT_INTERRUPTED
    with KernelManager(args.kernel or default_kernel_name(), cwd=args.cwd) as km, km.client() as kc:
        try:
            return _execute_on(kc, code, args, km.interrupt)
        except KeyboardInterrupt:
            km.shutdown(now=True)
            return EXIT_INTERRUPTED


# -- notebooks ---------------------------------------------------------------------------------


class _Progress:
    """A one-line progress bar on stderr, drawn only on a terminal."""

    def __init__(self, name: str, terminal: Terminal) -> None:
        self.name = name
        self.terminal = terminal
        self.live = terminal.err.isatty()
        #: How many cells were started.
        self.started = 0

    def __call__(self, position: int, total: int, cell: Any) -> None:
        self.started = position + 1
        if not self.live:
            return
        width = 24
        filled = width * position // max(total, 1)
        bar = "#" * filled + "-" * (width - filled)
        first = (cell.source.strip().splitlines() or [""])[0][:40]
        line = f"\r{self.name} [{bar}] {position + 1}/{total} {first}"
        self.terminal.err.write(line[: self._columns()] + "\x1b[K")
        self.terminal.err.flush()

    def done(self) -> None:
        if self.live:
            self.terminal.err.write("\r\x1b[K")
            self.terminal.err.flush()

    def _columns(self) -> int:
        try:
            columns = os.get_terminal_size(self.terminal.err.fileno()).columns
        except OSError:
            columns = 0
        return columns or 80  # a terminal that does not know its size says 0


def _execute_notebook(args: argparse.Namespace) -> int:
    import nbformat

    from ..notebook import execute_notebook

    if args.output and len(args.notebooks) > 1:
        raise UsageError("--output takes one notebook")
    terminal = Terminal()
    reports: list[dict[str, Any]] = []
    code = EXIT_OK
    for name in args.notebooks:
        path = Path(name)
        try:
            nb = nbformat.read(path, as_version=4)  # type: ignore[no-untyped-call]
        except (OSError, ValueError) as exc:  # nbformat's read errors are ValueErrors
            raise UsageError(f"cannot read {name}: {exc}") from exc
        target = path if args.inplace else Path(args.output) if args.output else None
        progress = _Progress(path.name, terminal)
        started = time.monotonic()
        report: dict[str, Any] = {"notebook": str(path), "status": "ok"}
        try:
            execute_notebook(
                nb,
                args.kernel,
                timeout=args.timeout,
                startup_timeout=args.startup_timeout,
                allow_errors=args.allow_errors,
                cwd=args.cwd or path.parent.absolute(),
                merge_streams=args.merge_streams,
                on_cell=progress,
            )
        except errors.CellExecutionError as exc:
            progress.done()
            timed_out = isinstance(exc, errors.CellTimeoutError)
            report["status"] = "timeout" if timed_out else "error"
            report["error"] = {
                "cell": exc.cell_index,
                "ename": exc.ename,
                "evalue": exc.evalue,
                "traceback": [strip_ansi(line) for line in exc.traceback],
            }
            code = max(code, EXIT_TIMEOUT if timed_out else EXIT_ERROR)
            if not args.json:
                terminal.error_line(f"{path}: {exc}")
                if exc.traceback:
                    lines = exc.traceback if terminal.err_color else report["error"]["traceback"]
                    terminal.err.write("\n".join(lines) + "\n")
        progress.done()
        report["seconds"] = round(time.monotonic() - started, 3)
        report["cells_run"] = progress.started
        if target is not None:
            # Outputs up to a failing cell are written too: they show what went wrong.
            nbformat.write(nb, target)  # type: ignore[no-untyped-call]
            report["output"] = str(target)
        reports.append(report)
        if not args.json and report["status"] == "ok":
            where = f", written to {target}" if target is not None else ""
            terminal.note(
                f"{path}: {report['cells_run']} cells in {report['seconds']:.2f} s{where}"
            )
    if args.json:
        _emit_json(reports if len(reports) > 1 else reports[0])
    return code


def _console(args: argparse.Namespace) -> int:
    from .console import run_console

    return run_console(args)


def _completion(args: argparse.Namespace) -> int:
    from .completion import script

    sys.stdout.write(script(args.shell))
    return EXIT_OK


_COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "kernels": _kernels,
    "ps": _ps,
    "start": _start,
    "stop": _stop,
    "interrupt": _interrupt,
    "restart": _restart,
    "prune": _prune,
    "run": _run,
    "exec": _run,  # run --existing, with the id as a positional argument
    "execute": _execute_notebook,
    "console": _console,
    "completion": _completion,
}
