"""Kernels started by a jupyter_client kernel provisioner (the ``provisioners`` extra).

A kernelspec whose ``metadata.kernel_provisioner`` names a provisioner other than
jupyter_client's local one (a container, a remote host, a cluster) is started by that
provisioner, as jupyter_client would start it: the provisioner fills the command's
placeholders, launches, and reports the connection info, which the manager then adopts.
The manager drives it through the same process surface as a local kernel (poll, wait, signal,
kill, clean up); the provisioner's coroutines run on an event loop of their own, in a thread,
because provisioners are written for asyncio and the managers may run on trio or on no loop.

A provisioned kernel is not under the orphan guard: only the provisioner knows how to end it.
Its output is the provisioner's business too (``output_tail`` is empty).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

import anyio

from ..connection import ConnectionInfo
from ..errors import KernelLaunchError
from ..kernelspec import KernelSpec

if TYPE_CHECKING:
    from anyio.from_thread import BlockingPortal

    from .launcher import LaunchPlan

__all__ = ["ProvisionedKernel", "ProvisionerLauncher"]

#: The provisioners' entry point group, as jupyter_client registers them.
GROUP = "jupyter_client.kernel_provisioners"
#: How often a provisioned kernel is polled while something waits for it to exit.
_POLL_SECONDS = 0.02

T = TypeVar("T")


def provisioner_package(name: str) -> str | None:
    """The distribution that registers kernel provisioner ``name``, if one is installed."""
    from importlib.metadata import entry_points

    for entry in entry_points(group=GROUP, name=name):
        dist = entry.dist
        return dist.name if dist is not None else entry.value
    return None


class ProvisionerLauncher:
    """Starts kernelspecs that name a jupyter_client kernel provisioner, through it."""

    def refuses(self, spec: KernelSpec) -> str | None:
        name = spec.provisioner
        where = f"kernelspec {spec.name!r}"
        if name is None:
            return f"{where} names no kernel provisioner"
        try:
            import jupyter_client  # noqa: F401
        except ImportError:
            return (
                f"{where} is launched by the kernel provisioner {name!r}, which runs through"
                " jupyter_client: pip install 'runtimelib[provisioners]'"
                " and the package that provides it"
            )
        if provisioner_package(name) is None:
            return (
                f"{where} is launched by the kernel provisioner {name!r}, which is not"
                " installed here: pip install the package that provides it"
            )
        return spec.gateway_problem()

    def launch(self, plan: LaunchPlan) -> ProvisionedKernel:
        portal_cm = anyio.from_thread.start_blocking_portal("asyncio")
        portal = portal_cm.__enter__()
        try:
            manager, provisioner, info = portal.call(_start, plan)
        except BaseException as exc:
            portal_cm.__exit__(None, None, None)
            if isinstance(exc, KernelLaunchError):
                raise
            if not isinstance(exc, Exception):
                raise
            raise KernelLaunchError(
                f"kernel provisioner {plan.spec.provisioner!r} could not start kernelspec"
                f" {plan.spec.name!r}: {type(exc).__name__}: {exc}"
            ) from exc
        return ProvisionedKernel(portal_cm, portal, manager, provisioner, info)


async def _start(plan: LaunchPlan) -> tuple[Any, Any, ConnectionInfo]:
    """Have jupyter_client's manager prepare the launch, then the provisioner launch it."""
    from jupyter_client.kernelspec import KernelSpec as JupyterSpec
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import AsyncKernelManager

    spec = plan.spec
    theirs = JupyterSpec(
        resource_dir=str(spec.resource_dir),
        argv=list(spec.argv),
        display_name=spec.display_name,
        language=spec.language,
        env=dict(spec.env),
        interrupt_mode=spec.interrupt_mode,
        metadata=dict(spec.metadata),
    )

    class ThisSpec(KernelSpecManager):
        """The one spec being started, wherever it was found."""

        def get_kernel_spec(self, kernel_name: str) -> JupyterSpec:
            return theirs

    manager = AsyncKernelManager(
        kernel_name=spec.name,
        kernel_spec_manager=ThisSpec(),
        connection_file=str(plan.connection_file),
        # The ports the manager wrote stay: a restart keeps them, and its clients with them.
        cache_ports=False,
    )
    manager.load_connection_file()
    command, options = await manager.pre_start_kernel(
        env=dict(plan.env), cwd=plan.cwd, extra_arguments=list(plan.extra_arguments)
    )
    provisioner = manager.provisioner
    assert provisioner is not None  # pre_start_kernel made it
    found = await provisioner.launch_kernel(command, **options)
    await provisioner.post_launch(**options)
    reported = dict(found or manager.get_connection_info())
    # jupyter_client keeps the key as bytes.
    info = ConnectionInfo.from_dict(
        {k: v.decode() if isinstance(v, bytes) else v for k, v in reported.items()}
    )
    return manager, provisioner, info


class ProvisionedKernel:
    """A kernel that a provisioner started, with a local kernel process's surface."""

    def __init__(
        self,
        portal_cm: contextlib.AbstractContextManager[BlockingPortal],
        portal: BlockingPortal,
        manager: Any,
        provisioner: Any,
        connection_info: ConnectionInfo,
    ) -> None:
        self._portal_cm: contextlib.AbstractContextManager[BlockingPortal] | None = portal_cm
        self._portal = portal
        self._manager = manager
        self._provisioner = provisioner
        #: What the provisioner reports: where the kernel listens, with which key.
        self.connection_info = connection_info
        pid = getattr(provisioner, "pid", None)
        self.pid: int | None = pid if isinstance(pid, int) else None
        self._code: int | None = None

    def _call(self, function: Callable[..., Coroutine[Any, Any, T]], *args: Any) -> T | None:
        if self._portal_cm is None:
            return None  # released
        result: T = self._portal.call(function, *args)
        return result

    @property
    def returncode(self) -> int | None:
        """The exit code, or None while it runs."""
        if self._code is None:
            self._code = self._call(self._provisioner.poll)
        return self._code

    def is_alive(self) -> bool:
        return self.returncode is None and self._portal_cm is not None

    def signal(self, signum: int) -> None:
        if self.is_alive():
            self._call(self._provisioner.send_signal, signum)

    def kill(self) -> None:
        if self.is_alive():
            self._call(self._provisioner.kill)

    def wait(self, timeout: float | None = None) -> int | None:
        end = None if timeout is None else time.monotonic() + timeout
        while self.is_alive() and (end is None or time.monotonic() < end):
            time.sleep(_POLL_SECONDS)
        return self.returncode

    def wait_exit(self) -> None:
        self.wait()

    async def wait_async(self) -> int:
        while (code := self.returncode) is None and self._portal_cm is not None:
            await anyio.sleep(_POLL_SECONDS)
        return -1 if code is None else code

    def output_tail(self, limit: int = 0) -> str:
        return ""

    def release(self) -> None:
        """Let the provisioner clean up, then stop its event loop; call once it has exited."""
        portal_cm, self._portal_cm = self._portal_cm, None
        if portal_cm is None:
            return
        try:
            # The connection file and any ipc sockets are the manager's to remove: a restart's
            # new kernel uses the same ones.
            with contextlib.suppress(Exception):
                self._portal.call(self._provisioner.cleanup, False)
        finally:
            if self._code is None:
                self._code = -1
            portal_cm.__exit__(None, None, None)
