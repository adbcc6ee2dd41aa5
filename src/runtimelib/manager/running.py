"""Stop, restart and interrupt a kernel running on this machine, by id, id prefix or file.

These act on kernels this process did not start: one from ``runtimelib start``, another
program's manager, a Jupyter server. What can be done for certain depends on what is known:

- A kernel runtimelib launched carries a record of its process (``record.py``). Stopping it
  escalates from shutdown_request to SIGTERM to SIGKILL on its process group, and succeeds
  only once the process is gone. Restarting it stops the old process for certain, then
  launches a new one on the same ports, unless a live manager owns it.
- A kernel another program manages (no record, or a live owner) has a process we must not
  replace: the owner would go on managing a kernel that is no longer its own (a Jupyter
  server restarts its kernel on the same ports and fails, then loses track of ours). It is
  asked to shut down with ``restart: true`` and its owner brings it back; we only watch its
  heartbeat go silent and come back.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import msgspec

from ..connection import ConnectionInfo
from ..errors import (
    ConnectionFileError,
    KernelNotRunningError,
    KernelProcessError,
    KernelSpecError,
    KernelTimeoutError,
    RuntimelibError,
)
from ..kernelspec import find_kernelspec
from ..messages import Content, InterruptReply, InterruptRequest, ShutdownRequest
from ..protocol import Session
from ..transports.zmq import Channel, Farewell, Heartbeat
from .discovery import locate_running_kernel
from .record import ProcessRecord, wait_gone

__all__ = [
    "KernelStopped",
    "interrupt_running_kernel",
    "restart_running_kernel",
    "stop_running_kernel",
]

# How long one heartbeat may take to come back while we watch a kernel stop or return, and
# how many must go unanswered in a row before it counts as silent: a kernel on a busy machine
# can be slow to echo one beat without having stopped.
_BEAT_SECONDS = 0.5
_SILENT_BEATS = 2
# How long a kernel may take to answer the first beat before it counts as not running.
_FIRST_BEAT_SECONDS = 2.0
# How long the control socket may take to connect for the shutdown request.
_FAREWELL_SECONDS = 1.0


class KernelStopped(msgspec.Struct, frozen=True):
    """What ``stop_running_kernel`` did."""

    kernel_id: str
    connection_file: Path
    #: Whether the kernel was running when asked to stop.
    was_running: bool
    #: The kernel's process id, where it was recorded.
    pid: int | None = None
    #: What ended it: "shutdown_request", "SIGTERM", "SIGKILL", or "" if it was not running.
    by: str = ""


def stop_running_kernel(
    id_or_file: str | os.PathLike[str],
    *,
    timeout: float = 10.0,
    directory: str | os.PathLike[str] | None = None,
) -> KernelStopped:
    """Stop a running kernel and remove its connection file once it is gone.

    A kernel with a process record is asked to shut down, then sent SIGTERM, then SIGKILL
    (about 60%, 30% and 10% of ``timeout``); one without is asked and must fall silent within
    ``timeout``, and its connection file, which its owner manages, is left alone. Raises
    KernelProcessError if the kernel is still running at the end.
    """
    kernel_id, path = locate_running_kernel(id_or_file, directory)
    info = ConnectionInfo.from_file(path)
    record = ProcessRecord.read(info)
    if record is not None:
        if not record.is_running():
            _remove(path)
            return KernelStopped(kernel_id, path, False, record.pid)
        by = _end_process(info, record, timeout, restart=False)
        _remove(path)
        return KernelStopped(kernel_id, path, True, record.pid, by)
    if not _answers(info, _FIRST_BEAT_SECONDS):
        return KernelStopped(kernel_id, path, False)
    _ask_to_shut_down(info, restart=False)
    if not _falls_silent(info, time.monotonic() + timeout):
        raise KernelProcessError(
            f"kernel {kernel_id} was asked to stop but still answers after {timeout:g} s; "
            "it was started by another program, which can end it"
        )
    return KernelStopped(kernel_id, path, True, None, "shutdown_request")


def restart_running_kernel(
    id_or_file: str | os.PathLike[str],
    *,
    timeout: float = 10.0,
    directory: str | os.PathLike[str] | None = None,
) -> int | None:
    """Restart a running kernel on the same ports; returns the new process id where known.

    A kernel runtimelib launched and nobody manages any more is stopped for certain and
    launched again. Any other kernel is asked to restart through its owner
    (``shutdown_request`` with ``restart: true``); it must come back within ``timeout``.
    No second kernel is ever started on ports that another program manages.
    """
    kernel_id, path = locate_running_kernel(id_or_file, directory)
    info = ConnectionInfo.from_file(path)
    record = ProcessRecord.read(info)
    if record is not None and not record.owner_is_running():
        if not info.kernel_name:
            raise KernelProcessError(
                f"{path} does not say which kernel it runs; it cannot be started again"
            )
        if record.is_running():
            _end_process(info, record, timeout, restart=True)
        return _launch_again(info, kernel_id, path)
    if record is not None and not record.owner_restarts:
        raise KernelProcessError(
            f"kernel {kernel_id} is managed by process {record.owner}, which would not start "
            "it again; restart it there, or stop it first"
        )
    if not _answers(info, _FIRST_BEAT_SECONDS):
        raise KernelNotRunningError(
            f"kernel {kernel_id} is not running (its heartbeat does not answer); "
            "`runtimelib prune` removes its connection file"
        )
    return _restart_through_owner(info, kernel_id, path, timeout)


def interrupt_running_kernel(
    id_or_file: str | os.PathLike[str],
    *,
    timeout: float = 10.0,
    directory: str | os.PathLike[str] | None = None,
) -> None:
    """Interrupt what a running kernel is doing: SIGINT to its process group where its
    process is recorded and its interrupt mode is "signal", else an interrupt_request."""
    kernel_id, path = locate_running_kernel(id_or_file, directory)
    info = ConnectionInfo.from_file(path)
    record = ProcessRecord.read(info)
    if record is not None and record.is_running() and _interrupt_mode(info) == "signal":
        record.signal_group(signal.SIGINT)
        return
    with Channel.connect(info, "control") as control:
        request = control.message(InterruptRequest())
        control.send(request)
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0 and control.poll(left):
            reply = control.recv(0)
            if reply.parent_id == request.msg_id and isinstance(reply.content, InterruptReply):
                return
    raise KernelTimeoutError(f"kernel {kernel_id} did not answer the interrupt in {timeout:g} s")


# -- the steps -------------------------------------------------------------------------------


def _interrupt_mode(info: ConnectionInfo) -> str:
    """The kernelspec's interrupt mode; "signal" (the default) when the spec is unknown."""
    if not info.kernel_name:
        return "signal"
    try:
        return find_kernelspec(info.kernel_name).interrupt_mode
    except KernelSpecError:
        return "signal"


def _ask_to_shut_down(
    info: ConnectionInfo,
    *,
    restart: bool,
    interrupt: bool = False,
    alive: Callable[[], bool] = lambda: True,
) -> None:
    """shutdown_request (after an interrupt_request, with ``interrupt``) on control, to the
    kernel listening now only: should it be gone before the request leaves, its owner's next
    kernel on the same ports must not get it (see Farewell). No reply is awaited: a busy
    kernel may never send one."""
    messages: list[Content] = [ShutdownRequest(restart=restart)]
    if interrupt:
        messages.insert(0, InterruptRequest())
    with contextlib.suppress(RuntimelibError):
        Farewell(info, Session(info.key_bytes, info.signature_scheme)).send(
            messages, alive, _FAREWELL_SECONDS
        )


def _end_process(
    info: ConnectionInfo, record: ProcessRecord, timeout: float, *, restart: bool
) -> str:
    """Stop a recorded kernel process for certain; returns what ended it.

    First the kernel is interrupted, as a manager does before a shutdown, so that a cell
    still running does not hold the request up; then shutdown_request, SIGTERM, SIGKILL.
    """
    after_request, after_term = max(timeout, 0.1) * 0.6, max(timeout, 0.1) * 0.3
    by_message = _interrupt_mode(info) == "message"
    if not by_message:
        record.signal_group(signal.SIGINT)
    # A kernel whose sockets cannot be reached is still ended by the signals below.
    _ask_to_shut_down(info, restart=restart, interrupt=by_message, alive=record.is_running)
    by = "shutdown_request"
    if not wait_gone(record, after_request):
        by = "SIGTERM"
        record.signal_group(signal.SIGTERM)
        if not wait_gone(record, after_term):
            by = "SIGKILL"
            record.signal_group(signal.SIGKILL)
            if not wait_gone(record, max(timeout * 0.1, 2.0)):
                raise KernelProcessError(
                    f"kernel process {record.pid} is still running after SIGKILL"
                )
    record.end_group()
    return by


def _launch_again(info: ConnectionInfo, kernel_id: str, path: Path) -> int | None:
    """Launch a kernel on the ports of one that was stopped, as ``runtimelib start`` did."""
    from .blocking import KernelManager

    km = KernelManager(
        info.kernel_name,
        connection_info=info,
        kernel_id=kernel_id,
        independent=True,
        output="devnull",
    )
    km.connection_file = path
    km.start()
    return km.pid


def _restart_through_owner(
    info: ConnectionInfo, kernel_id: str, path: Path, timeout: float
) -> int | None:
    deadline = time.monotonic() + timeout
    _ask_to_shut_down(info, restart=True)
    if not _falls_silent(info, deadline):
        raise KernelProcessError(
            f"kernel {kernel_id} was asked to restart but still answers after {timeout:g} s"
        )
    while time.monotonic() < deadline:
        # The owner may write a new connection file (new ports) when it starts the kernel.
        try:
            info = ConnectionInfo.from_file(path)
        except ConnectionFileError:
            raise KernelProcessError(
                f"kernel {kernel_id} stopped and the program that started it removed it "
                "instead of starting it again"
            ) from None
        if _answers(info, _BEAT_SECONDS):
            record = ProcessRecord.read(info)
            return record.pid if record is not None else None
        time.sleep(0.05)
    raise KernelProcessError(
        f"kernel {kernel_id} stopped, but the program that started it did not start it "
        f"again within {timeout:g} s"
    )


def _answers(info: ConnectionInfo, timeout: float) -> bool:
    with Heartbeat(info) as heart:
        return heart.ping(timeout)


def _falls_silent(info: ConnectionInfo, deadline: float) -> bool:
    """Wait until the kernel's heartbeat stops answering; True if it did before ``deadline``."""
    misses = 0
    with Heartbeat(info) as heart:
        while time.monotonic() < deadline:
            if heart.ping(min(_BEAT_SECONDS, max(deadline - time.monotonic(), 0.01))):
                misses = 0
                time.sleep(0.05)
                continue
            misses += 1
            if misses >= _SILENT_BEATS:
                return True
    return False


def _remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
