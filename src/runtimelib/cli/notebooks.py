"""``runtimelib execute``: run notebooks and write their outputs.

Only what reading a notebook needs is imported up front: the kernel is started before the
client machinery is imported, so that it boots meanwhile (see manager/blocking.py).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import stat
import tempfile
import time
from pathlib import Path
from typing import Any

from .. import errors
from . import EXIT_ERROR, EXIT_OK, EXIT_TIMEOUT, UsageError
from .term import Terminal, emit_json, plural, strip_ansi

__all__ = ["execute_notebooks"]


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


def _read_notebook(name: str) -> Any:
    """The notebook in file ``name`` (nbformat 4), or a one-line UsageError saying what is
    wrong with the file. A plain v4 file is read without nbformat (see ``nbfile``)."""
    from .. import nbfile

    try:
        data = Path(name).read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {name}: {exc.strerror or exc}") from exc
    try:
        nb = nbfile.loads(data)
    except ValueError as exc:
        raise UsageError(f"{name} is not a notebook: it is not JSON ({exc})") from exc
    if nb is not None:
        return nb
    top = json.loads(data)
    if not isinstance(top, dict) or not isinstance(top.get("cells", []), list):
        raise UsageError(f"{name} is not a notebook: a notebook is a JSON object with cells")
    if "nbformat" not in top:
        raise UsageError(f"{name} is not a notebook: it has no 'nbformat' version")
    import nbformat  # an older format to convert, or a file nbformat must judge

    try:
        return nbformat.reads(data.decode("utf-8"), as_version=4)  # type: ignore[no-untyped-call]
    except Exception as exc:  # nbformat raises jsonschema's, its own and plain errors
        lines = str(getattr(exc, "message", "") or exc).strip().splitlines() or [repr(exc)]
        raise UsageError(f"{name} is not a valid notebook: {lines[0]}") from exc


def _check_writable(target: Path) -> None:
    """Fail before the first cell runs if the executed notebook could not be written."""
    if target.is_dir():
        raise UsageError(f"cannot write {target}: it is a directory")
    folder = target.absolute().parent
    if not folder.is_dir():
        raise UsageError(f"cannot write {target}: the folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK) or (
        target.exists() and not os.access(target, os.W_OK)
    ):
        raise UsageError(f"cannot write {target}: permission denied")


def _write_notebook(nb: Any, target: Path) -> None:
    """Write atomically: a failed write leaves the earlier file whole, never a truncated one."""
    from .. import nbfile

    text = nbfile.dumps(nb)
    folder = target.absolute().parent
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        try:
            mode = stat.S_IMODE(target.stat().st_mode)
        except FileNotFoundError:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
        os.chmod(tmp, mode)  # mkstemp makes it 0600; keep what the file had, or the usual
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _save_notebook(nb: Any, target: Path, source: Path) -> None:
    """Write the executed notebook; if that fails now (its folder went away while the cells
    ran, a full disk), the outputs are saved in the temporary folder instead of lost."""
    try:
        _write_notebook(nb, target)
    except OSError as exc:
        fd, rescue = tempfile.mkstemp(prefix=f"{source.stem}-executed-", suffix=".ipynb")
        os.close(fd)
        _write_notebook(nb, Path(rescue))
        raise UsageError(
            f"cannot write {target} ({exc.strerror or exc}); "
            f"the executed notebook was saved in {rescue}"
        ) from exc


def execute_notebooks(args: argparse.Namespace) -> int:
    """Run each notebook named on the command line, as ``runtimelib execute``."""
    from ..notebook import execute_notebook

    if args.output and len(args.notebooks) > 1:
        raise UsageError("--output takes one notebook")
    # Every notebook is read, and every destination checked, before the first cell runs.
    jobs: list[tuple[Path, Any, Path | None]] = []
    for name in args.notebooks:
        path = Path(name)
        nb = _read_notebook(name)
        target = path if args.inplace else Path(args.output) if args.output else None
        if target is not None:
            _check_writable(target)
        jobs.append((path, nb, target))
    factory = None
    if args.server is not None:
        from .remote import kernel_factory

        factory = kernel_factory(args, launch_timeout=args.startup_timeout)
    terminal = Terminal()
    reports: list[dict[str, Any]] = []
    code = EXIT_OK
    for path, nb, target in jobs:
        progress = _Progress(path.name, terminal)
        started = time.monotonic()
        report: dict[str, Any] = {"notebook": str(path), "status": "ok"}
        failed: BaseException | None = None
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
                transport_encryption=args.transport_encryption,
                kernel_factory=factory,
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
        except (
            errors.KernelProcessError,
            errors.KernelTimeoutError,
            errors.ServerError,
            KeyboardInterrupt,
        ) as exc:
            # The kernel died or stopped answering mid-notebook, its server failed, or Ctrl-C:
            # keep what ran.
            progress.done()
            failed = exc
        progress.done()
        report["seconds"] = round(time.monotonic() - started, 3)
        report["cells_run"] = progress.started
        if target is not None and (failed is None or progress.started):
            # Outputs up to a failing cell are written too: they show what went wrong.
            _save_notebook(nb, target, path)
            report["output"] = str(target)
        if failed is not None:
            if target is not None and progress.started:
                terminal.note(f"{path}: the cells run so far were written to {target}")
            raise failed
        reports.append(report)
        if not args.json:
            cells = plural(report["cells_run"], "cell")
            if report["status"] == "ok":
                where = f", written to {target}" if target is not None else ""
                terminal.note(f"{path}: {cells} in {report['seconds']:.2f} s{where}")
            elif target is not None:
                terminal.note(f"{path}: the notebook up to the failing cell is in {target}")
    if args.json:
        emit_json(reports if len(reports) > 1 else reports[0])
    return code
