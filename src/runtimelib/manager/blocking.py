"""KernelManager: the blocking twin of AsyncKernelManager; no event loop involved.

The sockets (zmq, the client, the readiness check) are imported where they are first used,
after the kernel process was spawned: a kernel spends a third of a second or more starting,
and a command that starts one (``runtimelib execute``) imports them meanwhile.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ..errors import KernelLaunchError, KernelTimeoutError, RemoteProtocolError, TransportError
from .base import FAREWELL_SECONDS, ManagerBase, log
from .launcher import LaunchedKernel

if TYPE_CHECKING:
    from ..client.blocking import KernelClient

__all__ = ["KernelManager"]

# How often the readiness loop looks at the process while it waits for the kernel.
_POLL_SECONDS = 0.05


class KernelManager(ManagerBase):
    """One kernel process, managed from blocking code; a context manager.

    Safe to use inside a running event loop (a notebook cell): it never starts one.
    """

    _restarting = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # One lock for the manager's life: a watcher of an earlier process must wait for a
        # new start to finish, then see that its process was replaced.
        self._lock = threading.RLock()

    def start(self) -> None:
        """Launch the kernel and wait until it is ready (``startup_timeout``).

        A kernel that exits during startup raises KernelLaunchError at once, with its exit
        code and the end of its output (unless it lost a port this manager picked to another
        process: then it starts again on new ports); one that does not answer in time is
        killed and raises KernelTimeoutError. Once ready, a thread watches the process.
        """
        with self._lock:
            self._stopping = False
            attempt = 0
            process = self._launch()
            while True:
                try:
                    self._wait_ready(process)
                    break
                except KernelLaunchError:
                    if not self._try_other_ports(process, attempt):
                        self._stop(process, graceful=False)
                        raise
                except BaseException:
                    self._stop(process, graceful=False)
                    raise
                attempt += 1
                process = self._launch(new_ports=True)
            self._watch(process)

    def _watch(self, process: LaunchedKernel) -> None:
        thread = threading.Thread(
            target=self._monitor, args=(process,), name="runtimelib-kernel-monitor", daemon=True
        )
        thread.start()

    def _monitor(self, process: LaunchedKernel) -> None:
        """Restart the kernel if it dies and ``auto_restart`` allows, else report its death."""
        process.wait_exit()
        with self._lock:
            if self._stopping or self._restarting or self.process is not process:
                return  # an exit we asked for
            code = process.wait(1.0)
            if self._may_restart():
                log.warning(
                    "kernel %s died (code %s); restarting. Its last output:\n%s",
                    self.kernel_id,
                    code,
                    process.output_tail(),
                )
                try:
                    self.restart()
                except Exception:
                    log.exception("kernel %s could not be restarted", self.kernel_id)
                else:
                    self._notify(self.on_restart)
                    return
            self._cleanup()
        self._notify(self.on_death, code)

    def _wait_ready(self, process: LaunchedKernel) -> None:
        import zmq

        from ..client.readiness import Readiness
        from ..transports.zmq import STARTUP_RECONNECT_MS, Channel, watched_socket

        deadline = time.monotonic() + self.startup_timeout
        if self._registration is not None:
            self._wait_registered(process, deadline)
        assert self.connection_info is not None
        session = self._session()
        readiness = Readiness(session)
        info = self.connection_info
        iopub = Channel.connect(info, "iopub", session=session, reconnect_ms=STARTUP_RECONNECT_MS)
        sock, handshake = watched_socket(
            info, "shell", session_id=session.session_id, reconnect_ms=STARTUP_RECONNECT_MS
        )
        shell = Channel(sock, session, "shell")
        poller = zmq.Poller()
        poller.register(iopub.socket, zmq.POLLIN)
        poller.register(shell.socket, zmq.POLLIN)
        try:
            shell.send(readiness.request())
            last_sent = time.monotonic()
            while not readiness.ready:
                if not handshake.succeeded and (refused := handshake.failure()) is not None:
                    raise self._launch_failed(process, f"cannot be talked to: {refused}")
                if not process.is_alive():
                    raise self._exited_during_startup(process)
                now = time.monotonic()
                if now >= deadline:
                    raise self._startup_timed_out(process)
                if now - last_sent >= readiness.resend_after:
                    # No answer yet (a request can be lost while the kernel starts), or iopub
                    # still silent: ask again, on Readiness's schedule.
                    shell.send(readiness.request())
                    last_sent = now
                events: dict[Any, int] = dict(poller.poll(int(_POLL_SECONDS * 1000)))
                for channel in (iopub, shell):
                    while events.get(channel.socket) and channel.poll(0):
                        try:
                            readiness.feed(channel.recv(0))
                        except RemoteProtocolError:
                            continue
        finally:
            handshake.close()
            iopub.close()
            shell.close()
        self.kernel_info = readiness.reply

    def _wait_registered(self, process: LaunchedKernel, deadline: float) -> None:
        """Wait for the kernel to report the ports it bound (the startup handshake)."""
        registration = self._registration
        assert registration is not None
        while (ports := registration.receive()) is None:
            if not process.is_alive():
                raise self._exited_during_startup(process)
            left = deadline - time.monotonic()
            if left <= 0:
                raise self._startup_timed_out(process)
            registration.socket.poll(int(min(left, _POLL_SECONDS) * 1000) + 1)
        self._registered(ports)

    def client(self, **kwargs: Any) -> KernelClient:
        """A client of this kernel that fails fast with KernelDiedError if the process dies.

        Use it as ``with km.client() as kc:``; it stays connected across restarts.
        """
        from ..client.blocking import KernelClient

        if self.connection_info is None:
            raise RuntimeError("start the kernel before asking for a client")
        client = KernelClient(self.connection_info, **kwargs)
        client.watch_process(lambda: self.process)
        return client

    def interrupt(self) -> None:
        """Interrupt the running execution: SIGINT to the group, or interrupt_request."""
        if self.process is None:
            return
        if self.spec.interrupt_mode == "message":
            self._interrupt_request(timeout=self.shutdown_timeout)
        else:
            self.process.signal(signal.SIGINT)

    def _interrupt_request(self, timeout: float) -> None:
        from ..messages import InterruptReply, InterruptRequest
        from ..transports.zmq import Channel

        assert self.connection_info is not None
        with Channel.connect(self.connection_info, "control") as control:
            request = control.message(InterruptRequest())
            control.send(request)
            deadline = time.monotonic() + timeout
            while (left := deadline - time.monotonic()) > 0:
                if not control.poll(left):
                    break
                reply = control.recv(0)
                if reply.parent_id == request.msg_id and isinstance(reply.content, InterruptReply):
                    return
        raise KernelTimeoutError(f"no interrupt_reply from the kernel in {timeout} s")

    def restart(self, *, new_ports: bool = False) -> None:
        """Stop the kernel and start it again, on the same ports unless ``new_ports``.

        Clients connected to the same ports reconnect by themselves. The old kernel is asked
        to stop before the new one is spawned (so the request cannot reach the new one), and
        the new one starts while the old one finishes (see ``_replaced_too_soon``).
        """
        with self._lock:
            self._restarting = True
            try:
                old = self.process
                if old is not None and new_ports:
                    self._stop(old, graceful=True, restart=True)
                    old = None
                if old is not None:
                    self._ask_to_stop(old, restart=True)
                process = self._launch(new_ports=new_ports)
                if old is not None:
                    self._stop(old, graceful=True, restart=True, asked=True)
                try:
                    try:
                        self._wait_ready(process)
                    except KernelLaunchError:
                        if old is None:
                            raise
                        process = self._replaced_too_soon(process)
                        self._wait_ready(process)
                except BaseException:
                    self._stop(process, graceful=False)
                    raise
            finally:
                self._restarting = False
            self._watch(process)

    def shutdown(self, *, now: bool = False) -> None:
        """Stop the kernel: shutdown_request, then SIGTERM, then SIGKILL, within
        ``shutdown_timeout`` seconds; the connection file is removed. ``now`` skips the request.
        """
        with self._lock:
            if self.process is not None:
                self._stop(self.process, graceful=not now)

    def _ask_to_stop(self, process: LaunchedKernel, *, restart: bool) -> None:
        """Interrupt the kernel and send it a shutdown_request, to this process only."""
        if not process.is_alive() or self.connection_info is None:
            return
        from ..transports.zmq import Farewell

        messages = self._farewell(process, restart=restart)
        # On failure the signals that follow still end it.
        with contextlib.suppress(TransportError):
            farewell = Farewell(self.connection_info, self._session())
            farewell.send(messages, process.is_alive, FAREWELL_SECONDS)

    def _stop(
        self,
        process: LaunchedKernel,
        *,
        graceful: bool,
        restart: bool = False,
        asked: bool = False,
    ) -> None:
        after_request, after_term = self._shutdown_budget()
        self._stopping = not restart
        if graceful and process.is_alive():
            if not asked:
                self._ask_to_stop(process, restart=restart)
            process.wait(after_request)
        if process.is_alive():
            process.signal(signal.SIGTERM)
            process.wait(after_term)
        if process.is_alive():
            process.kill()
            process.wait(2.0)
        if restart:
            process.release()
        else:
            self._cleanup()

    def __enter__(self) -> KernelManager:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.shutdown()
