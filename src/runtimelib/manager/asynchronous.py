"""AsyncKernelManager: start, watch, interrupt, restart and stop one kernel (asyncio or trio)."""

from __future__ import annotations

import contextlib
import signal
from types import TracebackType
from typing import Any

import anyio
from anyio.abc import TaskGroup

from ..client.asynchronous import AsyncKernelClient
from ..client.readiness import Readiness
from ..errors import KernelLaunchError, KernelTimeoutError, RemoteProtocolError, TransportError
from ..messages import InterruptReply, InterruptRequest
from ..transports.zmq import STARTUP_RECONNECT_MS, AsyncChannel, Farewell
from ..transports.zmq.sockets import POLLIN, watched_socket, zmq_events, zmq_fd
from .base import FAREWELL_SECONDS, HANDSHAKE_POLL_SECONDS, ManagerBase, log
from .launcher import LaunchedKernel

__all__ = ["AsyncKernelManager"]


class AsyncKernelManager(ManagerBase):
    """One kernel process, managed from async code; an async context manager.

    ``async with AsyncKernelManager("python3") as km:`` starts the kernel and waits until it
    is ready; leaving the block shuts it down, also when the block raised.
    """

    _task_group: TaskGroup | None = None
    _restarting = False

    async def start(self) -> None:
        """Launch the kernel and wait until it is ready (``startup_timeout``).

        A kernel that exits during startup raises KernelLaunchError at once, with its exit
        code and the end of its output (unless it lost a port this manager picked to another
        process: then it starts again on new ports); one that does not answer in time is
        killed and raises KernelTimeoutError.
        """
        self._stopping = False
        attempt = 0
        process = self._launch()
        while True:
            try:
                await self._wait_ready(process)
                return
            except KernelLaunchError:
                if not self._try_other_ports(process, attempt):
                    await self._stop(process, graceful=False)
                    raise
            except BaseException:
                await self._stop(process, graceful=False)
                raise
            attempt += 1
            process = self._launch(new_ports=True)

    async def _wait_registered(self, process: LaunchedKernel, limit: float) -> None:
        """Wait for the kernel to report the ports it bound (the startup handshake)."""
        registration = self._registration
        assert registration is not None
        sock = registration.socket
        while (ports := registration.receive()) is None:
            if not process.is_alive():
                raise self._exited_during_startup(process)
            left = limit - anyio.current_time()
            if left <= 0:
                raise self._startup_timed_out(process)
            with anyio.move_on_after(min(left, HANDSHAKE_POLL_SECONDS)):
                while not zmq_events(sock) & POLLIN:
                    await anyio.wait_readable(zmq_fd(sock))
        self._registered(ports)

    async def _wait_ready(self, process: LaunchedKernel) -> None:
        limit = anyio.current_time() + self.startup_timeout
        if self._registration is not None:
            await self._wait_registered(process, limit)
        assert self.connection_info is not None
        session = self._session()
        readiness = Readiness(session)
        info = self.connection_info
        reconnect_ms = STARTUP_RECONNECT_MS
        iopub = AsyncChannel.connect(info, "iopub", session=session, reconnect_ms=reconnect_ms)
        sock, handshake = watched_socket(
            info, "shell", session_id=session.session_id, reconnect_ms=reconnect_ms
        )
        shell = AsyncChannel(sock, session, "shell")
        heard = anyio.Event()
        answered = anyio.Event()
        exited = False
        refused: str | None = None

        async def watch_exit() -> None:
            nonlocal exited
            await process.wait_async()
            exited = True
            tg.cancel_scope.cancel()

        async def watch_handshake() -> None:
            nonlocal refused
            while not handshake.succeeded:
                await anyio.sleep(HANDSHAKE_POLL_SECONDS)
                refused = await anyio.to_thread.run_sync(handshake.failure)
                if refused is not None:
                    tg.cancel_scope.cancel()
                    return

        async def read(channel: AsyncChannel, event: anyio.Event) -> None:
            while True:
                try:
                    message = await channel.recv()
                except RemoteProtocolError:
                    continue  # not ours to judge here; the kernel is still starting
                readiness.feed(message)
                if readiness.heard_iopub if channel is iopub else readiness.reply is not None:
                    event.set()

        try:
            with anyio.move_on_after(limit - anyio.current_time()) as deadline:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(watch_exit)
                    tg.start_soon(watch_handshake)
                    tg.start_soon(read, iopub, heard)
                    tg.start_soon(read, shell, answered)
                    await shell.send(readiness.request())
                    while not readiness.ready:
                        # No answer yet (a request can be lost while the kernel starts), or
                        # iopub still silent: ask again, on Readiness's schedule.
                        waiting = answered if readiness.reply is None else heard
                        with anyio.move_on_after(readiness.resend_after):
                            await waiting.wait()
                        if not waiting.is_set():
                            await shell.send(readiness.request())
                    tg.cancel_scope.cancel()
        finally:
            handshake.close()
            iopub.close()
            shell.close()
        if refused is not None:
            raise self._launch_failed(process, f"cannot be talked to: {refused}")
        if exited and not readiness.ready:
            raise self._exited_during_startup(process)
        if deadline.cancelled_caught:
            raise self._startup_timed_out(process)
        self.kernel_info = readiness.reply

    async def monitor(self) -> None:
        """Watch the kernel until it stops: restart it if it dies and ``auto_restart`` allows,
        else report its death to ``on_death``. Runs by itself inside ``async with``.
        """
        while (process := self.process) is not None:
            code = await process.wait_async()
            while self._restarting:  # a restart asked for: not a death
                await anyio.sleep(0.05)
            if self._stopping:
                return
            if self.process is not process:
                continue  # replaced by a restart
            if self._may_restart():
                log.warning(
                    "kernel %s died (code %s); restarting. Its last output:\n%s",
                    self.kernel_id,
                    code,
                    process.output_tail(),
                )
                try:
                    await self.restart()
                except Exception:
                    log.exception("kernel %s could not be restarted", self.kernel_id)
                    self._cleanup()
                    self._notify(self.on_death, code)
                    return
                self._notify(self.on_restart)
                continue
            self._cleanup()
            self._notify(self.on_death, code)
            return

    def client(self, **kwargs: Any) -> AsyncKernelClient:
        """A client of this kernel that fails fast with KernelDiedError if the process dies.

        Use it as ``async with km.client() as kc:``; it stays connected across restarts.
        """
        if self.connection_info is None:
            raise RuntimeError("start the kernel before asking for a client")
        client = AsyncKernelClient(self.connection_info, **kwargs)
        client.watch_process(lambda: self.process)
        return client

    async def interrupt(self) -> None:
        """Interrupt the running execution: SIGINT to the group, or interrupt_request."""
        if self.process is None:
            return
        if self.spec.interrupt_mode == "message":
            await self._control_request(InterruptRequest(), timeout=self.shutdown_timeout)
        else:
            self.process.signal(signal.SIGINT)

    async def _control_request(self, content: InterruptRequest, timeout: float) -> None:
        assert self.connection_info is not None
        async with AsyncChannel.connect(self.connection_info, "control") as control:
            request = control.message(content)
            await control.send(request)
            with anyio.move_on_after(timeout) as scope:
                while True:
                    reply = await control.recv()
                    if reply.parent_id == request.msg_id and isinstance(
                        reply.content, InterruptReply
                    ):
                        return
            if scope.cancelled_caught:
                raise KernelTimeoutError(f"no interrupt_reply from the kernel in {timeout} s")

    async def restart(self, *, new_ports: bool = False) -> None:
        """Stop the kernel and start it again, on the same ports unless ``new_ports``.

        Clients connected to the same ports reconnect by themselves. The old kernel is asked
        to stop before the new one is spawned (so the request cannot reach the new one), and
        the new one starts while the old one finishes (see ``_replaced_too_soon``).
        """
        self._restarting = True
        try:
            old = self.process
            if old is not None and new_ports:
                await self._stop(old, graceful=True, restart=True)
                old = None
            if old is not None:
                with anyio.CancelScope(shield=True):
                    await self._ask_to_stop(old, restart=True)
            process = self._launch(new_ports=new_ports)
            if old is not None:
                await self._stop(old, graceful=True, restart=True, asked=True)
            try:
                try:
                    await self._wait_ready(process)
                except KernelLaunchError:
                    if old is None:
                        raise
                    process = self._replaced_too_soon(process)
                    await self._wait_ready(process)
            except BaseException:
                await self._stop(process, graceful=False)
                raise
        finally:
            self._restarting = False

    async def shutdown(self, *, now: bool = False) -> None:
        """Stop the kernel: shutdown_request, then SIGTERM, then SIGKILL, within
        ``shutdown_timeout`` seconds; the connection file is removed. ``now`` skips the request.
        """
        if self.process is not None:
            await self._stop(self.process, graceful=not now)

    async def _ask_to_stop(self, process: LaunchedKernel, *, restart: bool) -> None:
        """Interrupt the kernel and send it a shutdown_request, to this process only."""
        if not process.is_alive() or self.connection_info is None:
            return
        messages = self._farewell(process, restart=restart)
        # On failure the signals that follow still end it.
        with contextlib.suppress(TransportError):
            farewell = Farewell(self.connection_info, self._session())
            await farewell.send_async(messages, process.is_alive, FAREWELL_SECONDS)

    async def _stop(
        self,
        process: LaunchedKernel,
        *,
        graceful: bool,
        restart: bool = False,
        asked: bool = False,
    ) -> None:
        after_request, after_term = self._shutdown_budget()
        self._stopping = not restart
        with anyio.CancelScope(shield=True):
            if graceful and process.is_alive():
                if not asked:
                    await self._ask_to_stop(process, restart=restart)
                with anyio.move_on_after(after_request):
                    await process.wait_async()
            if process.is_alive():
                process.signal(signal.SIGTERM)
                with anyio.move_on_after(after_term):
                    await process.wait_async()
            if process.is_alive():
                process.kill()
                with anyio.move_on_after(2.0):
                    await process.wait_async()
            if not restart:
                self._cleanup()
            else:
                process.release()

    async def __aenter__(self) -> AsyncKernelManager:
        await self.start()
        task_group = anyio.create_task_group()
        await task_group.__aenter__()
        self._task_group: TaskGroup | None = task_group
        task_group.start_soon(self.monitor)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await self.shutdown()
        finally:
            task_group, self._task_group = self._task_group, None
            if task_group is not None:
                task_group.cancel_scope.cancel()
                await task_group.__aexit__(None, None, None)
