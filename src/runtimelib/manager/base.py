"""What the async and blocking kernel managers share: launch plans, readiness, cleanup."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ..connection import ConnectionFileWarning, ConnectionInfo, curve_keypair
from ..errors import (
    ConnectionFileError,
    EncryptionError,
    KernelLaunchError,
    KernelTimeoutError,
    TransportError,
)
from ..kernelspec import KernelSpec, default_kernel_name, find_kernelspec
from ..messages import Content, InterruptRequest, KernelInfoReply, ShutdownRequest
from ..protocol import Session
from .launcher import LaunchedKernel, Launcher, LaunchPlan, LocalLauncher, launcher_for
from .process import OutputMode
from .record import ProcessRecord

if TYPE_CHECKING:
    from ..transports.zmq.registration import RegistrationSocket

__all__ = ["ManagerBase", "runtime_dir"]

#: How long a stopping kernel's control socket may take to connect for the shutdown request.
FAREWELL_SECONDS = 0.5
#: How many times a start goes on with new ports after its kernel found one taken.
PORT_RETRIES = 3

#: How often a starting kernel's handshake is checked for a CurveZMQ mismatch.
HANDSHAKE_POLL_SECONDS = 0.02

EncryptionPolicy = Literal["disabled", "auto", "required"]
ENCRYPTION_POLICIES: tuple[EncryptionPolicy, ...] = ("disabled", "auto", "required")
#: The encryption policy when none is given (README, "Encryption").
DEFAULT_ENCRYPTION: EncryptionPolicy = "auto"

log = logging.getLogger("runtimelib.manager")


def runtime_dir() -> Path:
    """Jupyter's runtime directory (``JUPYTER_RUNTIME_DIR``), created 0700 if missing."""
    from jupyter_core.paths import jupyter_runtime_dir

    path = Path(jupyter_runtime_dir())
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


class ManagerBase:
    """Configuration and I/O-free steps of managing one kernel process."""

    def __init__(
        self,
        kernel_name: str | None = None,
        *,
        spec: KernelSpec | None = None,
        connection_info: ConnectionInfo | None = None,
        kernel_id: str | None = None,
        cwd: str | os.PathLike[str] | None = None,
        env: Mapping[str, str] | None = None,
        output: OutputMode = "capture",
        ip: str | None = None,
        transport: str = "tcp",
        startup_timeout: float = 60.0,
        shutdown_timeout: float = 5.0,
        guard: bool = True,
        independent: bool = False,
        auto_restart: bool = False,
        restart_limit: int = 5,
        stable_start_time: float = 10.0,
        extra_arguments: Sequence[str] = (),
        launcher: Launcher | None = None,
        transport_encryption: EncryptionPolicy | None = None,
        startup_handshake: bool | None = None,
    ) -> None:
        name = (spec.name if spec is not None else kernel_name) or default_kernel_name()
        # As jupyter_client's managers do: "python" means the native Python kernel (papermill
        # and older notebooks name it so).
        self.kernel_name = "python3" if name == "python" else name
        self._spec = spec
        self.kernel_id = kernel_id or str(uuid.uuid4())
        self.cwd = cwd
        self.env = dict(env or {})
        self.output = output
        #: Appended to the kernelspec's command (``--HistoryManager.hist_file=:memory:``, say).
        self.extra_arguments = list(extra_arguments)
        if transport_encryption not in (None, *ENCRYPTION_POLICIES):
            raise ValueError(
                "transport_encryption must be one of"
                f" {', '.join(ENCRYPTION_POLICIES)}, not {transport_encryption!r}"
            )
        #: CurveZMQ: "disabled", "auto" (when the kernelspec declares support) or "required"
        #: (refuse a spec that does not); jupyter_client's policy. None: DEFAULT_ENCRYPTION,
        #: quietly plain where libzmq lacks CURVE.
        self.transport_encryption = transport_encryption
        #: The startup handshake (JEP 66): the kernel binds ports of its own and reports them,
        #: so no port can be taken before it binds. None: when the kernelspec says the kernel
        #: does it (``KernelSpec.supports_registration``); True: always; False: never. Only
        #: for a first start over tcp by a local process: a restart keeps the ports.
        self.startup_handshake = startup_handshake
        self._registration: RegistrationSocket | None = None
        #: What starts the kernel; by default the one its kernelspec asks for (a local
        #: process, or the spec's kernel provisioner; see launcher.py).
        self.launcher: Launcher | None = launcher
        #: The address (tcp, default 127.0.0.1) or the socket path prefix (ipc, default
        #: ``kernel-ipc-<id>`` in the runtime dir: absolute, so a kernel started in another
        #: folder finds it, and removed with the kernel).
        self.ip = ip
        self.transport = transport
        self.startup_timeout = startup_timeout
        self.shutdown_timeout = shutdown_timeout
        #: ``guard``: the orphan guard ends the kernel if this process dies. ``independent``:
        #: the kernel is meant to outlive this process (no guard, no parent watch in it).
        self.guard = guard and not independent
        self.independent = independent
        self.connection_info: ConnectionInfo | None = connection_info
        self.connection_file: Path | None = None
        self.kernel_info: KernelInfoReply | None = None
        self.process: LaunchedKernel | None = None
        #: Restart a kernel that dies on its own, at most ``restart_limit`` times in a row; a
        #: kernel that ran ``stable_start_time`` seconds before dying gets a fresh budget.
        self.auto_restart = auto_restart
        self.restart_limit = restart_limit
        self.stable_start_time = stable_start_time
        self.restarts = 0
        #: Called with the manager after an automatic restart.
        self.on_restart: list[Callable[[Any], object]] = []
        #: Called with the manager and the exit code when the kernel died for good.
        self.on_death: list[Callable[[Any, int | None], object]] = []
        self._started_at = 0.0
        self._stopping = False
        #: Whether the ports were picked here (not given with ``connection_info``).
        self._own_ports = False
        # A short private folder for ipc sockets, when the runtime dir is too deep for them.
        self._ipc_dir: str | None = None

    @property
    def spec(self) -> KernelSpec:
        """The kernelspec, looked up by name on first use."""
        if self._spec is None:
            self._spec = find_kernelspec(self.kernel_name)
        return self._spec

    def is_alive(self) -> bool:
        """Whether the kernel process is running."""
        return self.process is not None and self.process.is_alive()

    @property
    def pid(self) -> int | None:
        """The kernel's process id, while it has one."""
        return self.process.pid if self.process is not None else None

    def _launch(self, *, new_ports: bool = False) -> LaunchedKernel:
        """Write the connection file and spawn the kernel (not yet ready)."""
        spec = self.spec
        launcher = self.launcher if self.launcher is not None else launcher_for(spec)
        problem = launcher.refuses(spec)
        if problem is not None:
            raise KernelLaunchError(problem)
        if self.connection_info is None or new_ports:
            keys = self._curve_keys(spec)
            self._own_ports = True
            registers = self._registers(spec, launcher)
            self.connection_info = ConnectionInfo.new(
                ip=self._address(),
                transport="ipc" if self.transport == "ipc" else "tcp",
                kernel_name=spec.name,
                curve_keys=keys,
                free_ports=not registers,
            )
            if registers:
                self._open_registration()
        if self.connection_file is None:
            self.connection_file = runtime_dir() / f"kernel-{self.kernel_id}.json"
        self._write_connection_file()
        env = spec.environment(extra=self.env)
        # ipykernel and our kernels poll this pid and exit when it is gone: a second line of
        # defence after the guard. An independent kernel does not get it.
        if "JPY_PARENT_PID" not in self.env:  # an inherited one would name another process
            if self.independent:
                env.pop("JPY_PARENT_PID", None)
            else:
                env["JPY_PARENT_PID"] = str(os.getpid())
        plan = LaunchPlan(
            spec=spec,
            argv=[*spec.command(self.connection_file), *self.extra_arguments],
            env=env,
            connection_file=self.connection_file,
            cwd=self.cwd,
            output=self.output,
            guard=self.guard,
            extra_arguments=self.extra_arguments,
        )
        try:
            self.process = launcher.launch(plan)
        except KernelLaunchError:
            self._close_registration()
            self._remove_connection_file()
            raise
        if self.process.connection_info is not None:
            self.connection_info = self.process.connection_info
        if self.process.pid is not None:
            # Who runs the kernel, for whoever must stop it after this process is gone.
            record = ProcessRecord.of(
                self.process.pid, independent=self.independent, restarts=self.auto_restart
            )
            self.connection_info = record.attach(self.connection_info)
        try:
            self._write_connection_file()
        except ConnectionFileError:
            self.process.kill()
            self.process.wait(2.0)
            self._cleanup()
            raise
        self.kernel_info = None
        self._started_at = time.monotonic()
        return self.process

    # -- the startup handshake ------------------------------------------------------------------

    def _registers(self, spec: KernelSpec, launcher: Launcher) -> bool:
        """Whether this start uses the startup handshake instead of ports picked here."""
        if self.startup_handshake is False or self.transport == "ipc":
            return False
        if not isinstance(launcher, LocalLauncher):
            return False  # a provisioner makes its own connection info
        return self.startup_handshake is True or spec.supports_registration

    def _open_registration(self) -> None:
        import zmq

        from ..transports.zmq.registration import RegistrationSocket

        assert self.connection_info is not None
        self._close_registration()
        try:
            self._registration = RegistrationSocket(
                self.connection_info, self.kernel_id, zmq.Context.instance()
            )
        except TransportError as exc:
            raise KernelLaunchError(f"kernel {self.kernel_name!r}: {exc}") from exc

    def _registered(self, ports: dict[str, int]) -> None:
        """The kernel reported its ports: from now on the connection file has them."""
        assert self.connection_info is not None
        self._close_registration()
        self.connection_info = self.connection_info.registered(ports)
        self._write_connection_file()

    def _write_connection_file(self) -> None:
        """The connection file, or while the kernel registers, the registration file."""
        assert self.connection_info is not None
        assert self.connection_file is not None
        info = self.connection_info
        if self._registration is not None:
            info = info.for_registration(self.kernel_id, self._registration.port)
        info.write(self.connection_file)

    def _close_registration(self) -> None:
        registration, self._registration = self._registration, None
        if registration is not None:
            registration.close()

    def _curve_keys(self, spec: KernelSpec) -> tuple[str, str] | None:
        """The CurveZMQ keys for a new connection, by the encryption policy: the ones in use
        (new ports keep them), a new pair, or None for a plain kernel. Refuses, before
        anything is launched, what the policy cannot have."""
        info = self.connection_info
        if info is not None and info.curve_public_key and info.curve_secret_key:
            return info.curve_public_key, info.curve_secret_key
        policy = self.transport_encryption or DEFAULT_ENCRYPTION
        if policy == "disabled":
            return None
        if not spec.supports_curve:
            if policy == "required":
                raise KernelLaunchError(
                    f"transport_encryption='required', but kernelspec {spec.name!r} does not"
                    " declare 'curve' in metadata.supported_encryption"
                )
            return None
        try:
            return curve_keypair()
        except EncryptionError as exc:
            if self.transport_encryption is None:
                return None  # the default asks for encryption only where it can be had
            raise KernelLaunchError(f"transport_encryption={policy!r}: {exc}") from exc

    def _may_restart(self) -> bool:
        """Whether the restart budget allows restarting a kernel that just died."""
        if not self.auto_restart:
            return False
        if time.monotonic() - self._started_at >= self.stable_start_time:
            self.restarts = 0  # it had been running fine: a fresh budget
        if self.restarts >= self.restart_limit:
            return False
        self.restarts += 1
        return True

    def _notify(self, callbacks: list[Callable[..., object]], *args: Any) -> None:
        for callback in callbacks:
            try:
                callback(self, *args)
            except Exception:
                log.exception("kernel %s: a lifecycle callback failed", self.kernel_id)

    def _session(self) -> Session:
        assert self.connection_info is not None
        return Session(self.connection_info.key_bytes, self.connection_info.signature_scheme)

    def _launch_failed(self, process: LaunchedKernel, why: str) -> KernelLaunchError:
        tail = process.output_tail().strip()
        detail = f"\n--- kernel output (last lines) ---\n{tail}" if tail else ""
        return KernelLaunchError(f"kernel {self.kernel_name!r} {why}{detail}")

    def _exited_during_startup(self, process: LaunchedKernel) -> KernelLaunchError:
        return self._launch_failed(process, f"exited during startup with code {process.returncode}")

    def _startup_timed_out(self, process: LaunchedKernel) -> KernelTimeoutError:
        error = self._launch_failed(process, f"was not ready in {self.startup_timeout} s")
        return KernelTimeoutError(str(error))

    def _try_other_ports(self, process: LaunchedKernel, attempt: int) -> bool:
        """Whether to start again on new ports a kernel that exited during startup.

        Ports are picked free, written to the connection file, and bound by the kernel a
        moment later; another process (a kernel starting at the same time, in another
        program) can bind one in between, and the kernel exits with "Address already in
        use". Ports this manager picked are picked again, a few times; ports it was given
        are not its to change.
        """
        if not self._own_ports or attempt >= PORT_RETRIES or process.is_alive():
            return False
        if "Address already in use" not in process.output_tail():
            return False
        log.info("kernel %s: a port was taken before it could bind it; new ports", self.kernel_id)
        process.release()
        return True

    def _replaced_too_soon(self, process: LaunchedKernel) -> LaunchedKernel:
        """Start the kernel once more after a restart's new kernel exited during startup.

        A restart spawns the new kernel before the old one has stopped: a kernel spends most
        of its start importing, and the old one, asked to shut down right away, has long let
        go of the ports when the new one binds them. Should the new one bind first, it fails
        and exits; by now the old one is gone, so a second start finds the ports free. A kernel
        that fails again is reported as usual.
        """
        log.info(
            "kernel %s: restarted too soon (%s); starting it again",
            self.kernel_id,
            process.output_tail().strip().splitlines()[-1:] or "no output",
        )
        process.release()
        return self._launch()

    def _address(self) -> str:
        if self.ip is not None:
            return os.path.abspath(self.ip) if self.transport == "ipc" else self.ip
        if self.transport != "ipc":
            return "127.0.0.1"
        # jupyter_client's name, in the runtime dir. A socket path holds at most 104 bytes
        # on macOS (108 on Linux): a deep runtime dir gets a short private folder instead.
        prefix = str(runtime_dir() / f"kernel-ipc-{self.kernel_id[:8]}")
        if len(prefix) + 8 > 100:
            self._ipc_dir = tempfile.mkdtemp(prefix="rtl-")
            prefix = os.path.join(self._ipc_dir, "k")
        return prefix

    def _cleanup(self) -> None:
        """Forget the exited process, remove the connection file and any ipc socket files."""
        if self.process is not None:
            self.process.release()
        self._close_registration()
        self._remove_connection_file()
        info = self.connection_info
        if info is not None and info.transport == "ipc":
            for port in info.ports.values():
                with contextlib.suppress(OSError):
                    os.unlink(f"{info.ip}-{port}")
        if self._ipc_dir is not None:
            with contextlib.suppress(OSError):
                os.rmdir(self._ipc_dir)

    def _remove_connection_file(self) -> None:
        """Remove the connection file; trouble doing so (it was replaced by a directory, say)
        is a warning: the kernel is stopped all the same, and what is there is not ours."""
        if self.connection_file is None:
            return
        try:
            self.connection_file.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            warnings.warn(
                f"kernel {self.kernel_id}: cannot remove its connection file "
                f"{self.connection_file}: {exc.strerror or exc}",
                ConnectionFileWarning,
                stacklevel=2,
            )

    def _farewell(self, process: LaunchedKernel, *, restart: bool) -> list[Content]:
        """What to send the kernel on control to stop it: a shutdown_request, after an
        interrupt, as jupyter_client does, so a cell still running does not hold the shutdown
        up. Signal-mode kernels get SIGINT here; message-mode ones an interrupt_request first.

        (The xeus-python 0.19 wheel exits on SIGINT, so it is gone at once.)
        """
        messages: list[Content] = [ShutdownRequest(restart=restart)]
        if self.spec.interrupt_mode == "message":
            messages.insert(0, InterruptRequest())
        else:
            process.signal(signal.SIGINT)
        return messages

    def _shutdown_budget(self) -> tuple[float, float]:
        """Seconds to wait after the shutdown request, then after SIGTERM; SIGKILL follows."""
        total = max(self.shutdown_timeout, 0.1)
        return total * 0.6, total * 0.3

    def __repr__(self) -> str:
        state = "alive" if self.is_alive() else "not running"
        return f"<{type(self).__name__} {self.kernel_name!r} {self.kernel_id} {state}>"
