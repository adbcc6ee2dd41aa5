"""Facts about processes that are not our children: whether one runs, when it started, and
which processes descend from one; and ending those. Linux reads /proc, elsewhere ``ps``.
Also what a client needs of the kernel process it watches (``WatchedProcess``).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from typing import Protocol

__all__ = ["WatchedProcess", "descendants", "end_descendants", "pid_exists", "process_start"]


class WatchedProcess(Protocol):
    """A kernel process as a client watches it (the managers' KernelProcess is one)."""

    def is_alive(self) -> bool: ...

    def wait(self, timeout: float | None = None) -> int | None: ...

    async def wait_async(self) -> int: ...


def _stat_fields(pid: int) -> list[bytes] | None:
    """/proc/<pid>/stat from field 3 (the state) on, or None where it cannot be read."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    # The command name, in parentheses, may itself hold spaces and parentheses.
    return stat.rsplit(b")", 1)[-1].split()


def pid_exists(pid: int) -> bool:
    """Whether process ``pid`` runs. A zombie (exited, not yet reaped by its parent) does not."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: it exists
    fields = _stat_fields(pid)
    return not (fields and fields[0] == b"Z")


def process_start(pid: int) -> int | None:
    """When process ``pid`` started (clock ticks since boot), None where it cannot be told."""
    fields = _stat_fields(pid)
    try:
        return int(fields[19]) if fields else None  # field 22 of proc(5)
    except (IndexError, ValueError):
        return None


def _parents() -> dict[int, int]:
    """Every process's parent pid."""
    found: dict[int, int] = {}
    if os.path.isdir("/proc/self"):
        for entry in os.scandir("/proc"):
            if entry.name.isdigit() and (fields := _stat_fields(int(entry.name))):
                with contextlib.suppress(IndexError, ValueError):
                    found[int(entry.name)] = int(fields[1])
        return found
    try:
        listing = subprocess.run(
            ["ps", "-A", "-o", "pid=,ppid="], capture_output=True, text=True, timeout=5
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return found
    for line in listing.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0].isdigit() and parts[1].isdigit():
            found[int(parts[0])] = int(parts[1])
    return found


def descendants(pid: int | None = None) -> list[int]:
    """The processes below ``pid`` (this process by default): children, theirs, and so on."""
    root = os.getpid() if pid is None else pid
    children: dict[int, list[int]] = {}
    for child, parent in _parents().items():
        children.setdefault(parent, []).append(child)
    found: list[int] = []
    todo = list(children.get(root, []))
    while todo:
        child = todo.pop()
        found.append(child)
        todo.extend(children.get(child, []))
    return found


def _reap(pid: int) -> None:
    """Collect our own exited child, so it is not left a zombie."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def end_descendants(grace: float = 1.0) -> None:
    """End every process below this one: SIGTERM, then SIGKILL for those still running after
    ``grace`` seconds. What a kernel's code started goes with the kernel, as with ipykernel."""
    if os.name != "posix":
        return
    pids = descendants()
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while pids and time.monotonic() < deadline:
        for pid in pids:
            _reap(pid)
        pids = [pid for pid in pids if pid_exists(pid)]
        if pids:
            time.sleep(0.02)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
        _reap(pid)
