"""How a manager starts its kernel: the launcher seam.

A launcher takes the plan for one start (the kernelspec, its command with the placeholders
filled, the environment, the folder, the connection file already written) and returns the
process to watch: poll, wait, signal, kill, clean up (``KernelProcess``). What is needed to
reattach later (who runs the kernel) goes into the connection file as its process record.
This is the shape of jupyter_client's kernel provisioners. ``LocalLauncher`` starts a process
of this machine in its own session with the orphan guard; ``ProvisionerLauncher``
(provisioners.py) runs the jupyter_client provisioner a kernelspec names, which may put the
kernel anywhere and reports where it listens. A launcher refuses, before anything is written,
a kernelspec it cannot start.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ..connection import ConnectionInfo
from ..kernelspec import KernelSpec
from .process import KernelProcess, OutputMode

__all__ = ["LaunchPlan", "LaunchedKernel", "Launcher", "LocalLauncher", "launcher_for"]


@dataclass(frozen=True)
class LaunchPlan:
    """Everything one start of a kernel needs."""

    spec: KernelSpec
    #: The kernelspec's command, placeholders filled, with the manager's extra arguments.
    argv: Sequence[str]
    env: Mapping[str, str]
    connection_file: Path
    cwd: str | os.PathLike[str] | None = None
    output: OutputMode = "capture"
    #: Whether the kernel ends with this process (the orphan guard).
    guard: bool = True
    #: The manager's extra arguments alone (a provisioner builds its own command).
    extra_arguments: Sequence[str] = ()


class LaunchedKernel(Protocol):
    """A started kernel, as its manager drives it: a local process (KernelProcess) or one a
    provisioner started (ProvisionedKernel)."""

    @property
    def pid(self) -> int | None:
        """The process id, where there is one on this machine."""

    @property
    def connection_info(self) -> ConnectionInfo | None:
        """Where the kernel listens, if the launcher decided it (a provisioner); None: the
        connection info the manager wrote."""

    @property
    def returncode(self) -> int | None: ...

    def is_alive(self) -> bool: ...

    def signal(self, signum: int) -> None: ...

    def kill(self) -> None: ...

    def wait(self, timeout: float | None = None) -> int | None: ...

    def wait_exit(self) -> None: ...

    async def wait_async(self) -> int: ...

    def output_tail(self, limit: int = ...) -> str: ...

    def release(self) -> None: ...


class Launcher(Protocol):
    """Starts kernels for a manager."""

    def refuses(self, spec: KernelSpec) -> str | None:
        """Why this launcher cannot start ``spec``, if it cannot (asked before anything is
        written)."""

    def launch(self, plan: LaunchPlan) -> LaunchedKernel:
        """Start the kernel; KernelLaunchError if it cannot be started."""


class LocalLauncher:
    """Kernels as processes of this machine, each the leader of its own process group."""

    def refuses(self, spec: KernelSpec) -> str | None:
        return spec.launch_problem()

    def launch(self, plan: LaunchPlan) -> KernelProcess:
        return KernelProcess(
            plan.argv,
            env=plan.env,
            cwd=plan.cwd,
            output=plan.output,
            guard=plan.guard,
            connection_file=plan.connection_file,
        )


def launcher_for(spec: KernelSpec) -> Launcher:
    """The launcher a spec asks for: its kernel provisioner's, else a local process."""
    if spec.provisioner is not None:
        from .provisioners import ProvisionerLauncher

        return ProvisionerLauncher()
    return LocalLauncher()
