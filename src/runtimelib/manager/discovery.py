"""Kernels running on this machine: their connection files in the runtime dir, alive or stale."""

from __future__ import annotations

import contextlib
import os
import re
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import msgspec

from ..connection import ConnectionInfo
from ..errors import ConnectionFileError
from ..transports.zmq import Heartbeat
from .base import runtime_dir
from .record import ProcessRecord

__all__ = [
    "Pruned",
    "RunningKernel",
    "find_running_kernel",
    "list_running_kernels",
    "locate_running_kernel",
    "prune_stale_kernels",
]

_KERNEL_FILE = re.compile(r"^kernel-(.+)\.json$")
#: How much longer a kernel whose process is known to run may take to answer its heartbeat.
_PATIENCE = 2.0


class RunningKernel(msgspec.Struct, frozen=True):
    """A connection file found in the runtime dir, and whether its kernel answers."""

    kernel_id: str
    connection_file: Path
    connection_info: ConnectionInfo | None
    alive: bool
    error: str = ""
    #: The kernel's process id, where the launcher recorded it and that process still runs.
    pid: int | None = None

    @property
    def kernel_name(self) -> str:
        """The kernel name recorded in the connection file (may be empty)."""
        return self.connection_info.kernel_name if self.connection_info is not None else ""


def _probe(path: Path, timeout: float) -> RunningKernel:
    match = _KERNEL_FILE.match(path.name)
    kernel_id = match.group(1) if match else path.stem
    try:
        info = ConnectionInfo.from_file(path)
    except ConnectionFileError as exc:
        return RunningKernel(kernel_id, path, None, False, str(exc))
    record = ProcessRecord.read(info)
    pid = record.pid if record is not None and record.is_running() else None
    if info.registration is not None:
        # A registration file: the kernel is starting and has not reported its ports yet.
        return RunningKernel(kernel_id, path, info, False, "starting (no ports yet)", pid=pid)
    with Heartbeat(info) as heart:
        # A kernel whose recorded process runs gets longer to answer: on a loaded machine a
        # heartbeat can take more than the first wait.
        alive = heart.ping(timeout) or (pid is not None and heart.ping(_PATIENCE))
    return RunningKernel(kernel_id, path, info, alive, pid=pid)


def list_running_kernels(
    directory: str | os.PathLike[str] | None = None, *, timeout: float = 0.5
) -> list[RunningKernel]:
    """Every ``kernel-*.json`` in the runtime dir, heartbeat-checked in parallel, by id."""
    folder = Path(directory) if directory is not None else runtime_dir()
    paths = sorted(p for p in folder.glob("kernel-*.json") if p.is_file())
    if not paths:
        return []
    with ThreadPoolExecutor(max_workers=min(16, len(paths))) as pool:
        found = list(pool.map(lambda p: _probe(p, timeout), paths))
    return sorted(found, key=lambda k: k.kernel_id)


def locate_running_kernel(
    id_or_file: str | os.PathLike[str], directory: str | os.PathLike[str] | None = None
) -> tuple[str, Path]:
    """The kernel id and connection file of a running kernel, by id, unique id prefix or file.

    Raises ConnectionFileError when nothing, or more than one kernel, matches.
    """
    path = Path(id_or_file)
    if path.suffix == ".json" and path.is_file():
        return path.stem.removeprefix("kernel-"), path
    folder = Path(directory) if directory is not None else runtime_dir()
    exact = folder / f"kernel-{id_or_file}.json"
    matches = [exact] if exact.is_file() else sorted(folder.glob(f"kernel-{id_or_file}*.json"))
    if not matches:
        raise ConnectionFileError(f"no running kernel {str(id_or_file)!r} in {folder}")
    if len(matches) > 1:
        raise ConnectionFileError(
            f"{str(id_or_file)!r} matches several kernels: " + ", ".join(m.name for m in matches)
        )
    found = matches[0]
    return found.name.removeprefix("kernel-").removesuffix(".json"), found


def find_running_kernel(
    id_or_file: str | os.PathLike[str], directory: str | os.PathLike[str] | None = None
) -> ConnectionInfo:
    """The connection info of a running kernel, by kernel id (or a unique prefix) or file path."""
    return ConnectionInfo.from_file(locate_running_kernel(id_or_file, directory)[1])


class Pruned(msgspec.Struct, frozen=True):
    """What ``prune_stale_kernels`` removed, and the stale files it kept as too young."""

    removed: list[RunningKernel]
    too_young: list[RunningKernel]


def prune_stale_kernels(
    directory: str | os.PathLike[str] | None = None,
    *,
    timeout: float = 0.5,
    min_age: float = 30.0,
) -> Pruned:
    """Remove the connection files of kernels that are gone.

    Gone means the heartbeat does not answer and no recorded kernel process still runs (a
    kernel stuck in code can fall silent and run on: its file stays, so it can be stopped).
    Files younger than ``min_age`` seconds are kept and listed as ``too_young``: their
    kernel may still be starting. Files that cannot be read are left alone too: they may not
    be a kernel's at all.
    """
    pruned = Pruned([], [])
    now = time.time()
    for kernel in list_running_kernels(directory, timeout=timeout):
        if kernel.alive or kernel.pid is not None or kernel.connection_info is None:
            continue
        with contextlib.suppress(FileNotFoundError):
            if now - kernel.connection_file.stat().st_mtime < min_age:
                pruned.too_young.append(kernel)
                continue
            kernel.connection_file.unlink()
            pruned.removed.append(kernel)
    return pruned
