"""Which process runs a kernel: the record a launcher leaves in the connection file.

A kernel that outlives the program that started it (``runtimelib start``, or any manager
whose process is gone) can only be stopped for certain by someone who knows its process: a
kernel busy in code that ignores SIGINT never reads its shutdown_request, and its heartbeat
may fall silent while the process runs on. So every kernel runtimelib launches gets a record
in its connection file, under the key ``runtimelib_process``::

    {"pid": 4242, "start": 1234567, "host": "box", "owner": 4200, "owner_restarts": false}

``start`` is the process's start time in clock ticks since boot (Linux ``/proc``), so a pid
that the system has since given to another process is never signalled; ``host`` keeps a
runtime dir shared over a network from reaching a pid of another machine; ``owner`` is the
pid of the launching process while it manages the kernel, null for an independent kernel,
and ``owner_restarts`` whether that owner starts the kernel again when it dies.
Other Jupyter tools ignore keys of the connection file they do not know.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import time

import msgspec

from ..connection import ConnectionInfo
from ..processes import pid_exists, process_start

__all__ = ["RECORD_KEY", "ProcessRecord", "wait_gone"]

#: The connection file key that holds the record.
RECORD_KEY = "runtimelib_process"


class ProcessRecord(msgspec.Struct, frozen=True, kw_only=True):
    """The process of a kernel, as its launcher recorded it."""

    pid: int
    start: int | None = None
    host: str = ""
    #: The launcher's pid while it manages the kernel; None once nobody does.
    owner: int | None = None
    #: Whether the owner starts the kernel again when it dies (its auto-restart).
    owner_restarts: bool = False

    @classmethod
    def of(cls, pid: int, *, independent: bool, restarts: bool = False) -> ProcessRecord:
        """The record of a kernel this process just launched."""
        return cls(
            pid=pid,
            start=process_start(pid),
            host=socket.gethostname(),
            owner=None if independent else os.getpid(),
            owner_restarts=restarts and not independent,
        )

    @classmethod
    def read(cls, info: ConnectionInfo) -> ProcessRecord | None:
        """The record in a connection file's info, None if it has none (or a broken one)."""
        raw = info.extra.get(RECORD_KEY)
        if raw is None:
            return None
        try:
            return msgspec.convert(raw, cls)
        except msgspec.ValidationError:
            return None

    def attach(self, info: ConnectionInfo) -> ConnectionInfo:
        """``info`` carrying this record (written with the connection file)."""
        extra = {**info.extra, RECORD_KEY: msgspec.to_builtins(self)}
        return msgspec.structs.replace(info, extra=extra)

    def is_running(self) -> bool:
        """Whether the recorded process still runs: same machine, same pid, same start."""
        if self.host and self.host != socket.gethostname():
            return False
        if not pid_exists(self.pid):
            return False
        return self.start is None or process_start(self.pid) == self.start

    def owner_is_running(self) -> bool:
        """Whether the launcher still manages the kernel (it may restart it on its own)."""
        if self.owner is None or self.owner == os.getpid():
            return False
        return pid_exists(self.owner)

    def signal_group(self, signum: int) -> None:
        """Send ``signum`` to the kernel's process group (its children too), if it runs.

        The launcher made the kernel the leader of its own group (pgid = pid).
        """
        if self.is_running():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, signum)

    def end_group(self) -> None:
        """Right after the kernel was seen to exit: SIGKILL the members of its group that it
        left behind (children that ignore SIGINT and SIGTERM, say).

        A group outlives its leader while a member runs, and its id cannot be taken by a new
        group meanwhile, so this reaches only what the kernel left.
        """
        if self.host in ("", socket.gethostname()):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, signal.SIGKILL)


def wait_gone(record: ProcessRecord, timeout: float) -> bool:
    """Wait until the recorded process has exited; True if it did within ``timeout`` seconds.

    The kernel is not our child, so there is no waitpid: a pidfd (Linux 5.3+) wakes us the
    moment it exits, elsewhere the process table is polled.
    """
    deadline = time.monotonic() + timeout
    pidfd = -1
    if hasattr(os, "pidfd_open"):
        with contextlib.suppress(OSError):
            pidfd = os.pidfd_open(record.pid)
    try:
        while record.is_running():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            if pidfd >= 0:
                # Readable once the process exits; a zombie counts as gone, so poll too.
                select.select([pidfd], [], [], min(left, 0.1))
            else:
                time.sleep(min(left, 0.02))
        return True
    finally:
        if pidfd >= 0:
            os.close(pidfd)
