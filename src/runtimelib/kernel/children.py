"""The processes a kernel's code started: ended when the kernel stops, as ipykernel does.

A cell that starts a server, a worker pool or a shell leaves it running when the kernel
exits, unless someone ends it; a manager that kills the kernel's process group reaches only
children still in that group, and a manager that is not ours may not even do that.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time

__all__ = ["descendants", "end_descendants"]


def _parents() -> dict[int, int]:
    """Every process's parent pid: from /proc where there is one, else from ps."""
    found: dict[int, int] = {}
    if os.path.isdir("/proc/self"):
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                with open(f"/proc/{entry.name}/stat", "rb") as f:
                    stat = f.read()
            except OSError:
                continue  # gone meanwhile
            fields = stat.rsplit(b")", 1)[-1].split()
            if len(fields) > 1:
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


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(ChildProcessError, OSError):
        # Our own exited child is a zombie until reaped: reap it, it is gone.
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    return True


def end_descendants(grace: float = 1.0) -> None:
    """SIGTERM every descendant, then SIGKILL those still running after ``grace`` seconds."""
    if os.name != "posix":
        return
    pids = descendants()
    if not pids:
        return
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while (pids := [pid for pid in pids if _alive(pid)]) and time.monotonic() < deadline:
        time.sleep(0.02)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
