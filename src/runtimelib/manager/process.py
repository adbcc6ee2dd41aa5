"""Kernel processes: spawn in their own session, wait for exit, signal the group, never orphan.

Orphans: on POSIX every kernel we launch is registered with one guard process per launching
process (see ``_guard.py``); when the launcher dies, even by SIGKILL, the guard ends the
kernels. macOS behaves as Linux here. On Windows there are no process groups and no guard:
a kernel outlives a launcher that is killed (a Job Object would be the remedy there).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any, Literal

import anyio

from ..errors import KernelLaunchError

__all__ = ["KernelProcess", "OutputMode"]

#: Where a kernel's stdout and stderr go: "capture" (a temporary file, kept for error reports),
#: "inherit" (the caller's terminal) or "devnull".
OutputMode = Literal["capture", "inherit", "devnull"]

_POSIX = os.name == "posix"
_STDERR_TAIL_BYTES = 4000


class _Guard:
    """The per-process orphan guard, started on first use."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._pid = 0

    def _ensure(self) -> subprocess.Popen[bytes] | None:
        if self._proc is not None and self._pid == os.getpid() and self._proc.poll() is None:
            return self._proc
        guard = Path(__file__).with_name("_guard.py")
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-I", "-S", str(guard)],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,  # out of reach of the terminal's Ctrl-C
                close_fds=True,
            )
        except OSError:
            self._proc = None
            return None
        self._pid = os.getpid()
        return self._proc

    def _send(self, line: str) -> None:
        with self._lock:
            proc = self._ensure()
            if proc is None or proc.stdin is None:
                return
            try:
                proc.stdin.write(line.encode())
                proc.stdin.flush()
            except OSError:
                self._proc = None

    def close(self) -> None:
        """At exit: let the guard end what is still registered, and wait for it."""
        with self._lock:
            proc, self._proc = self._proc, None
            if proc is None or self._pid != os.getpid():
                return
            with contextlib.suppress(OSError):
                if proc.stdin is not None:
                    proc.stdin.close()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(10)

    def watch(self, pgid: int, connection_file: str) -> None:
        """End this process group, and remove its connection file, if we die."""
        self._send(f"+{pgid} {connection_file}\n")

    def forget(self, pgid: int) -> None:
        """The group ended, or was handed over: leave it alone."""
        self._send(f"-{pgid}\n")


_GUARD = _Guard()
atexit.register(_GUARD.close)


class KernelProcess:
    """A running kernel process, leader of its own process group."""

    #: It listens where its manager's connection file says (see launcher.LaunchedKernel).
    connection_info: None = None

    def __init__(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        cwd: str | os.PathLike[str] | None = None,
        output: OutputMode = "capture",
        guard: bool = True,
        connection_file: str | os.PathLike[str] | None = None,
    ) -> None:
        self.argv = list(argv)
        self._log: IO[bytes] | None = None
        stdout: Any
        if output == "capture":
            # Kept open for the kernel's lifetime (closed in release()), so no with-block.
            self._log = tempfile.TemporaryFile(prefix="runtimelib-kernel-")  # noqa: SIM115
            stdout = self._log
        elif output == "devnull":
            stdout = subprocess.DEVNULL
        elif output == "inherit":
            stdout = None
        else:
            raise ValueError(f"output must be 'capture', 'inherit' or 'devnull', not {output!r}")
        try:
            self.popen = subprocess.Popen(
                self.argv,
                env=dict(env),
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=subprocess.STDOUT if stdout is not None else None,
                start_new_session=_POSIX,  # its own group: signals reach the kernel's children
                close_fds=True,
            )
        except (OSError, ValueError) as exc:
            # ValueError: a NUL byte in an argument or environment value (a hostile spec).
            self._close_log()
            if cwd is not None and not os.path.isdir(cwd):
                why = f"its working directory {os.fspath(cwd)!r} does not exist"
                raise KernelLaunchError(f"cannot start kernel {self.argv[0]!r}: {why}") from exc
            raise KernelLaunchError(f"cannot start kernel {self.argv[0]!r}: {exc}") from exc
        self.pid = self.popen.pid
        #: When it was spawned (time.monotonic()): what it publishes is newer than this.
        self.started = time.monotonic()
        self._guarded = guard and _POSIX
        if self._guarded:
            _GUARD.watch(self.pid, os.fspath(connection_file or ""))
        self._pidfd = -1
        self._pidfd_waiting = False
        self._pidfd_release = False
        if hasattr(os, "pidfd_open"):
            with contextlib.suppress(OSError):
                self._pidfd = os.pidfd_open(self.pid)

    @property
    def returncode(self) -> int | None:
        """The exit code, or None while it runs (negative: killed by that signal)."""
        return self._poll()

    def is_alive(self) -> bool:
        """Whether the process is still running."""
        return self._poll() is None

    def _poll(self) -> int | None:
        """The exit code, or None while it runs; never None once it has exited.

        ``Popen.poll()`` answers None without looking while another thread holds its waitpid
        lock (a manager's monitor reaping the process at that very moment): so a None is
        checked with waitid, which looks without reaping, and for an exited process a
        blocking wait then returns as soon as that other thread is done.
        """
        code = self.popen.poll()
        if code is not None or not hasattr(os, "waitid"):
            return code
        try:
            exited = os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
        except ChildProcessError:
            exited = True  # reaped already, by that other thread
        except OSError:
            return None
        return self.popen.wait() if exited else None

    def signal(self, signum: int) -> None:
        """Send ``signum`` to the kernel's whole process group (its children too)."""
        if not self.is_alive():
            return
        try:
            if _POSIX:
                os.killpg(self.pid, signum)
            else:
                self.popen.send_signal(signum)
        except (ProcessLookupError, PermissionError):
            pass

    def kill(self) -> None:
        """SIGKILL the process group."""
        self.signal(signal.SIGKILL if _POSIX else signal.SIGTERM)

    def wait(self, timeout: float | None = None) -> int | None:
        """Block until the process exits (None on timeout)."""
        if timeout is not None and self._pidfd >= 0 and not self._pidfd_waiting:
            # Popen.wait(timeout) polls with sleeps of up to 50 ms; the pidfd wakes us at once.
            with contextlib.suppress(OSError, ValueError):
                select.select([self._pidfd], [], [], timeout)
            return self._poll()
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def wait_exit(self) -> None:
        """Block until the process has exited, without reaping it (a watcher thread's wait)."""
        if hasattr(os, "waitid"):
            with contextlib.suppress(ChildProcessError, OSError):
                # WNOWAIT leaves the exit status for Popen to collect.
                os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOWAIT)
                return
        self.popen.wait()

    async def wait_async(self) -> int:
        """Wait for the process to exit without blocking the event loop."""
        if self._pidfd >= 0 and not self._pidfd_waiting and self.is_alive():
            # A pidfd becomes readable when the process exits: no polling, works on any loop.
            # It takes one waiter at a time; others poll below.
            self._pidfd_waiting = True
            try:
                with contextlib.suppress(OSError, ValueError):
                    await anyio.wait_readable(self._pidfd)
            finally:
                self._pidfd_waiting = False
                if self._pidfd_release:
                    self._close_pidfd()
        delay = 0.005
        while (code := self._poll()) is None:
            await anyio.sleep(delay)
            delay = min(delay * 2, 0.1)
        return code

    def output_tail(self, limit: int = _STDERR_TAIL_BYTES) -> str:
        """The last ``limit`` bytes the kernel wrote to stdout/stderr, when captured."""
        if self._log is None or self._log.closed:
            return ""
        with contextlib.suppress(OSError):
            size = self._log.seek(0, os.SEEK_END)
            self._log.seek(max(0, size - limit))
            return self._log.read().decode("utf-8", "replace")
        return ""

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()

    def release(self) -> None:
        """Free what watches the process, and end what it left in its process group (children
        that ignored the signals it got); call once it has exited."""
        if _POSIX and self._poll() is not None:
            # The group outlives its leader while a member runs, and no new group can take its
            # id meanwhile: this reaches only the kernel's own leftovers.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, signal.SIGKILL)
        if self._guarded:
            _GUARD.forget(self.pid)
            self._guarded = False
        if self._pidfd_waiting:
            # Closing an fd an event loop still watches confuses it once the number is reused
            # (trio in particular); the waiter closes it when it wakes.
            self._pidfd_release = True
        else:
            self._close_pidfd()
        self._close_log()

    def _close_pidfd(self) -> None:
        if self._pidfd >= 0:
            with contextlib.suppress(OSError):
                os.close(self._pidfd)
            self._pidfd = -1
