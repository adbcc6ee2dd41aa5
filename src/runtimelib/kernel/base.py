"""Kernel: the base class for writing Jupyter kernels in Python, on anyio.

Subclass it and override the ``do_*`` handlers; everything else (sockets, signatures,
busy/idle, replies, heartbeat, aborting after errors, comms, subshells, interrupts, parent
death) is done here; outputs, input() and iopub welcomes in publishing.py.
"""

from __future__ import annotations

import contextvars
import logging
import os
import signal
import sys
import threading
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

import anyio
import zmq

from ..connection import CHANNELS, ConnectionInfo
from ..errors import RemoteProtocolError, TransportError
from ..messages import (
    PROTOCOL_VERSION,
    CommClose,
    CommInfoReply,
    CommInfoRequest,
    CommMsg,
    CommOpen,
    CompleteReply,
    CompleteRequest,
    ConnectReply,
    ConnectRequest,
    Content,
    CreateSubshellReply,
    CreateSubshellRequest,
    DebugReply,
    DebugRequest,
    DeleteSubshellReply,
    DeleteSubshellRequest,
    ExecuteInput,
    ExecuteReply,
    ExecuteRequest,
    HelpLink,
    HistoryReply,
    HistoryRequest,
    InspectReply,
    InspectRequest,
    InterruptReply,
    InterruptRequest,
    IsCompleteReply,
    IsCompleteRequest,
    KernelInfoReply,
    KernelInfoRequest,
    LanguageInfo,
    ListSubshellReply,
    ListSubshellRequest,
    Message,
    Reply,
    ShutdownReply,
    ShutdownRequest,
    Status,
    UnknownContent,
    reply_type,
)
from ..processes import end_descendants, pid_exists
from ..protocol import Session
from ..transports.zmq import AsyncChannel, HeartbeatEcho, bind_kernel_socket
from ..transports.zmq.registration import bind_own_ports, register
from ..version import __version__
from .publishing import Publisher, _current
from .subshells import Shell, Shells, unknown_subshell

__all__ = ["CommTarget", "Kernel", "current_shell"]

log = logging.getLogger("runtimelib.kernel")

#: The shell handling the request (None on the control channel).
_shell: contextvars.ContextVar[Shell | None] = contextvars.ContextVar(
    "runtimelib_kernel_shell", default=None
)


def current_shell() -> Shell | None:
    """The shell handling the request being handled (None on the control channel)."""
    return _shell.get()


#: A comm target: called with the comm_open message.
CommTarget = Callable[[Message[CommOpen]], "Awaitable[None] | None"]


def _launcher_pid() -> int:
    """The process this kernel must not outlive: ``JPY_PARENT_PID``, which kernel managers set
    (as for ipykernel) unless the kernel is meant to run on its own; 0 for none.
    """
    try:
        return int(os.environ.get("JPY_PARENT_PID", "0"))
    except ValueError:
        return 0


class Kernel(Publisher):
    """A Jupyter kernel: bind the sockets of a connection file and serve requests.

    Override ``do_execute`` (and whichever other ``do_*`` handlers the language supports);
    use ``stream``, ``display``, ``execute_result``, ``error`` and ``input`` from inside them.
    Shell requests are handled one at a time, in order; control requests are served at the
    same time, so interrupt and shutdown work while code runs. Subshells (protocol 5.5) each
    handle theirs in order too, at the same time as the main shell (``supports_subshells``).
    """

    implementation: ClassVar[str] = "runtimelib"
    implementation_version: ClassVar[str] = __version__
    language_info: ClassVar[LanguageInfo] = LanguageInfo(name="text", mimetype="text/plain")
    banner: ClassVar[str] = ""
    help_links: ClassVar[list[HelpLink]] = []
    #: Whether frontends may create subshells: each handles its shell requests in a task of
    #: its own, so a handler that awaits lets the other shells go on.
    supports_subshells: ClassVar[bool] = True

    def __init__(self, connection_info: ConnectionInfo, *, parent_pid: int | None = None) -> None:
        self.connection_info = connection_info
        #: Where the connection info was read from (``launch``), if from a file.
        self.connection_file: str | None = None
        self.session = Session(connection_info.key_bytes, connection_info.signature_scheme)
        self.execution_count = 0
        self.comm_targets: dict[str, CommTarget] = {}
        self.comms: dict[str, str] = {}  # comm_id -> target_name
        self._parent_pid = parent_pid if parent_pid is not None else _launcher_pid()
        self._context: zmq.Context[Any] = zmq.Context()
        self._sockets: dict[str, AsyncChannel] = {}
        self._heartbeat: HeartbeatEcho | None = None
        self._inputs: dict[str, anyio.Event] = {}
        self._input_values: dict[str, str] = {}
        self._served = False  # whether any request has been handled yet
        #: The main shell and the subshells (made in run()).
        self.shells: Shells | None = None
        self._stop_event: anyio.Event | None = None  # made in run(), on the kernel's loop
        self._iopub_lock = threading.Lock()

    # -- running --------------------------------------------------------------------------------

    @classmethod
    def launch(cls, argv: list[str] | None = None) -> None:
        """Entry point for ``python -m <module> -f {connection_file}``."""
        args = sys.argv[1:] if argv is None else argv
        path = None
        for index, arg in enumerate(args):
            if arg in ("-f", "--f", "--connection-file") and index + 1 < len(args):
                path = args[index + 1]
            elif arg.startswith(("--f=", "--connection-file=")):
                path = arg.split("=", 1)[1]
        if path is None:
            raise SystemExit(f"usage: {cls.__module__} -f CONNECTION_FILE")
        logging.basicConfig(level=logging.WARNING, format="[%(name)s] %(levelname)s %(message)s")
        kernel = cls(ConnectionInfo.from_file(path))
        kernel.connection_file = path
        kernel.serve()

    def serve(self) -> None:
        """Run the kernel until it stops (``anyio.run(self.run)``; a kernel may run its loop
        elsewhere, as the Python kernel does to keep the main thread for user code).
        """
        anyio.run(self.run)

    async def run(self) -> None:
        """Bind the sockets and serve until shutdown or the parent process dies."""
        self._stop_event = anyio.Event()
        info = self.connection_info
        registration = info.registration
        if registration is None:
            sockets = {name: bind_kernel_socket(info, name, self._context) for name in CHANNELS}
        else:  # the startup handshake: ports of our own, reported to the launcher
            info, sockets = bind_own_ports(info, self._context)
            self.connection_info = info
        for name in ("shell", "control", "stdin", "iopub"):
            self._sockets[name] = AsyncChannel(sockets[name], self.session, name)
        self._heartbeat = HeartbeatEcho(sockets["hb"])
        self._heartbeat.start()
        try:
            if registration is not None:
                if self.connection_file is not None:
                    # For other clients, as the handshake asks; the launcher rewrites it later.
                    info.write(self.connection_file)
                register(info, *registration, self._context)
            async with anyio.create_task_group() as tg:
                # "starting" goes to each subscriber with its welcome, until the first request
                # (_welcome_subscribers): published here as well, it could reach one that
                # joined early twice, the first time ahead of the welcome.
                tg.start_soon(self._serve_shell, tg)
                tg.start_soon(self._serve, "control")
                tg.start_soon(self._read_stdin)
                tg.start_soon(self._welcome_subscribers)
                tg.start_soon(self._watch_parent)
                tg.start_soon(self._watch_signals)
                await self._stop_event.wait()
                tg.cancel_scope.cancel()
        finally:
            # What the user's code started goes with the kernel.
            end_descendants()
            self.close()

    def stop(self) -> None:
        """Stop serving (from inside the kernel's event loop)."""
        if self._stop_event is not None:
            self._stop_event.set()

    def close(self) -> None:
        """Close every socket and the heartbeat."""
        for channel in self._sockets.values():
            channel.socket.close(linger=1000)
        self._sockets.clear()
        self._context.term()

    async def _watch_parent(self) -> None:
        pid = self._parent_pid
        if pid <= 1:
            return
        # Our parent: reparenting (getppid changes) means it is gone. Another process (a
        # launcher behind a wrapper): poll that it still exists.
        if os.getppid() == pid:
            while os.getppid() == pid:
                await anyio.sleep(1.0)
        else:
            while pid_exists(pid):
                await anyio.sleep(1.0)
        log.warning("parent process %s is gone; shutting down", pid)
        self.stop()

    async def _watch_signals(self) -> None:
        if os.name != "posix":
            return
        try:
            with anyio.open_signal_receiver(signal.SIGINT) as signals:
                async for _ in signals:
                    self.interrupt()
        except (ValueError, RuntimeError, NotImplementedError):
            return  # not the main thread: signals cannot be received here

    def interrupt(self) -> None:
        """Interrupt the running executions, in every shell (SIGINT, or interrupt_request):
        cancel them."""
        for shell in self.shells.all() if self.shells is not None else ():
            if shell.execute_scope is not None:
                shell.execute_scope.cancel()

    # -- serving requests -----------------------------------------------------------------------

    async def _receive(self, channel: AsyncChannel) -> Message[Content] | None:
        try:
            return await channel.recv()
        except RemoteProtocolError as exc:
            # Bad signature, replay, garbage: dropped, logged, and the kernel keeps serving.
            log.warning("dropped an invalid message on %s: %s", channel.channel, exc)
            return None
        except TransportError:
            raise

    async def _serve(self, name: str) -> None:
        channel = self._sockets[name]
        while True:
            message = await self._receive(channel)
            if message is not None:
                await self._handle(channel, message)

    async def _serve_shell(self, group: anyio.abc.TaskGroup) -> None:
        """Read the shell socket all the time, handing each request to its shell."""
        channel = self._sockets["shell"]
        self.shells = Shells(
            group,
            lambda shell, request: self._handle(channel, request, shell),
            self.subshell_ended,
        )
        while True:
            message = await self._receive(channel)
            if message is not None:
                await self._route(channel, message)

    async def _route(self, channel: AsyncChannel, request: Message[Content]) -> None:
        assert self.shells is not None
        shell = self.shells.find(request.header.subshell_id)
        if shell is not None:
            shell.put(request)
        else:  # answered at once (with an error), by no shell
            await self._handle(channel, request)

    async def _handle(
        self, channel: AsyncChannel, request: Message[Content], shell: Shell | None = None
    ) -> None:
        self._served = True
        token = _current.set(request)
        shell_token = _shell.set(shell)
        try:
            await self.publish(Status(execution_state="busy"), request)
            try:
                reply = await self._dispatch(request)
            except Exception as exc:  # a handler bug must not kill the kernel
                log.exception("handler for %s failed", request.msg_type)
                reply = self._error_reply(request, type(exc).__name__, str(exc))
            # idle is published before the reply is sent (the protocol allows either order):
            # a client that acts on the reply, by subscribing anew say, can then never be
            # handed this request's idle afterwards, ahead of its iopub_welcome.
            await self.publish(Status(execution_state="idle"), request)
            if reply is not None:
                await channel.send(self._reply_message(request, reply))
            if shell is not None and shell.to_abort:
                queued, shell.to_abort = shell.to_abort, []
                await self._abort(channel, shell, queued)
        finally:
            _shell.reset(shell_token)
            _current.reset(token)

    def _reply_message(self, request: Message[Content], reply: Content) -> Message[Content]:
        msg_type = reply.msg_type or request.msg_type[: -len("_request")] + "_reply"
        return self.session.message(
            reply,
            request,
            channel=request.channel,
            identities=request.identities,
            msg_type=msg_type,
        )

    def _error_reply(self, request: Message[Content], ename: str, evalue: str) -> Content | None:
        """An error reply of the right type for ``request``, if it is a request at all."""
        msg_type = request.msg_type
        if not msg_type.endswith("_request"):
            return None
        cls = reply_type(msg_type)
        if cls is not None and issubclass(cls, Reply):
            return cls(status="error", ename=ename, evalue=evalue, traceback=[])
        # A request type we have no class for: answer in kind, as free JSON.
        return UnknownContent(
            data={"status": "error", "ename": ename, "evalue": evalue, "traceback": []}
        )

    async def _dispatch(self, request: Message[Content]) -> Content | None:
        content = request.content
        if request.problems:
            # Wrong-typed or missing fields: say so rather than guess.
            return self._error_reply(request, "MalformedRequest", "; ".join(request.problems))
        if request.channel == "shell" and _shell.get() is None:
            return self._error_reply(request, *unknown_subshell(request.header.subshell_id))
        if isinstance(content, ExecuteRequest):
            return await self._execute(request, content)
        if isinstance(content, KernelInfoRequest):
            return await self.do_kernel_info()
        if isinstance(content, CompleteRequest):
            return await self.do_complete(content.code, content.cursor_pos)
        if isinstance(content, InspectRequest):
            return await self.do_inspect(content.code, content.cursor_pos, content.detail_level)
        if isinstance(content, IsCompleteRequest):
            return await self.do_is_complete(content.code)
        if isinstance(content, HistoryRequest):
            return await self.do_history(content)
        if isinstance(content, CommInfoRequest):
            return self._comm_info(content)
        if isinstance(content, ShutdownRequest):
            return await self._shutdown(request, content)
        if isinstance(content, InterruptRequest):
            self.interrupt()
            return InterruptReply()
        if isinstance(content, DebugRequest):
            return await self.do_debug_request(content)
        if isinstance(content, (CreateSubshellRequest, DeleteSubshellRequest, ListSubshellRequest)):
            return self._subshell_request(request, content)
        if isinstance(content, ConnectRequest):
            info = self.connection_info
            return ConnectReply(
                shell_port=info.shell_port,
                iopub_port=info.iopub_port,
                stdin_port=info.stdin_port,
                hb_port=info.hb_port,
                control_port=info.control_port,
            )
        if isinstance(content, (CommOpen, CommMsg, CommClose)):
            await self._comm(request)
            return None
        log.warning("no handler for %s", request.msg_type)
        return self._error_reply(request, "UnknownRequest", f"{request.msg_type} is not supported")

    async def _execute(self, request: Message[Content], content: ExecuteRequest) -> ExecuteReply:
        shell = _shell.get()
        assert shell is not None  # an execute_request reached no shell
        if shell.aborting:
            return ExecuteReply(status="aborted", execution_count=self.execution_count)
        if not content.silent:
            self.execution_count += 1
            await self.publish(
                ExecuteInput(code=content.code, execution_count=self.execution_count)
            )
        reply: ExecuteReply | None = None
        with anyio.CancelScope() as scope:
            shell.execute_scope = scope
            try:
                reply = await self.do_execute(
                    content.code,
                    silent=content.silent,
                    store_history=content.store_history,
                    user_expressions=content.user_expressions,
                    allow_stdin=content.allow_stdin,
                )
            finally:
                shell.execute_scope = None
        if reply is None:  # cancelled by an interrupt
            await self.error("KeyboardInterrupt", "", ["KeyboardInterrupt"])
            reply = ExecuteReply(
                status="error",
                ename="KeyboardInterrupt",
                evalue="",
                traceback=["KeyboardInterrupt"],
            )
        if reply.execution_count is None or reply.execution_count != self.execution_count:
            reply = _with_count(reply, self.execution_count)
        if reply.status == "error" and content.stop_on_error:
            # What is queued in this shell now was sent before anyone could know of the
            # error: it is aborted, but only once this reply is out (see _handle), so the
            # failing cell is answered first, as ipykernel does. What arrives after the reply
            # is not aborted.
            shell.to_abort = await self._take_queued(shell)
        return reply

    async def _take_queued(self, shell: Shell) -> list[Message[Content]]:
        """The requests waiting for ``shell`` now (those in the socket too), taken from it."""
        channel = self._sockets["shell"]
        while channel.socket.poll(0):  # arrived, and not handed to their shell yet
            message = await self._receive(channel)
            if message is not None:
                await self._route(channel, message)
        return shell.take_queued()

    async def _abort(
        self, channel: AsyncChannel, shell: Shell, queued: list[Message[Content]]
    ) -> None:
        """Answer the executes queued behind a failed one as aborted (spec: stop_on_error)."""
        shell.aborting = True
        try:
            for message in queued:
                await self._handle(channel, message, shell)
        finally:
            shell.aborting = False

    def _subshell_request(self, request: Message[Content], content: Content) -> Content | None:
        if not self.supports_subshells or self.shells is None:
            return self._error_reply(request, "UnknownRequest", "this kernel has no subshells")
        if isinstance(content, CreateSubshellRequest):
            return CreateSubshellReply(subshell_id=self.shells.create())
        if isinstance(content, DeleteSubshellRequest):
            if not self.shells.delete(content.subshell_id):
                return self._error_reply(request, *unknown_subshell(content.subshell_id))
            return DeleteSubshellReply()
        return ListSubshellReply(subshell_id=self.shells.ids())

    async def _shutdown(self, request: Message[Content], content: ShutdownRequest) -> ShutdownReply:
        await self.do_shutdown(content.restart)
        reply = ShutdownReply(restart=content.restart)
        # ipykernel also publishes the reply on iopub, for frontends that watch only iopub.
        await self.publish(reply, request)
        self.stop()
        return reply

    def _comm_info(self, content: CommInfoRequest) -> CommInfoReply:
        target = content.target_name if isinstance(content.target_name, str) else None
        comms = {
            comm_id: {"target_name": name}
            for comm_id, name in self.comms.items()
            if target is None or name == target
        }
        return CommInfoReply(comms=comms)

    async def _comm(self, request: Message[Content]) -> None:
        content = request.content
        if isinstance(content, CommOpen):
            target = self.comm_target(content.target_name)
            if target is None:
                await self.publish(CommClose(comm_id=content.comm_id), request)
                return
            self.comms[content.comm_id] = content.target_name
            outcome = target(request)  # type: ignore[arg-type]
            if outcome is not None:
                await outcome
        elif isinstance(content, CommClose):
            self.comms.pop(content.comm_id, None)
        await self.do_comm(request)

    # -- handlers to override -------------------------------------------------------------------

    async def do_execute(
        self,
        code: str,
        *,
        silent: bool,
        store_history: bool,
        user_expressions: dict[str, str],
        allow_stdin: bool,
    ) -> ExecuteReply:
        """Run ``code``; publish its outputs; return the reply (status and execution count)."""
        return ExecuteReply(execution_count=self.execution_count)

    async def do_kernel_info(self) -> KernelInfoReply:
        """Who this kernel is (from the class attributes by default)."""
        return KernelInfoReply(
            protocol_version=PROTOCOL_VERSION,
            implementation=self.implementation,
            implementation_version=self.implementation_version,
            language_info=self.language_info,
            banner=self.banner,
            help_links=list(self.help_links),
            supported_features=["kernel subshells"] if self.supports_subshells else [],
        )

    async def do_complete(self, code: str, cursor_pos: int) -> CompleteReply:
        """Completions; none by default."""
        return CompleteReply(cursor_start=cursor_pos, cursor_end=cursor_pos)

    async def do_inspect(self, code: str, cursor_pos: int, detail_level: int) -> InspectReply:
        """Help on an object; nothing found by default."""
        return InspectReply(found=False)

    async def do_is_complete(self, code: str) -> IsCompleteReply:
        """Whether code is ready to run; "unknown" by default."""
        return IsCompleteReply(status="unknown")

    async def do_history(self, request: HistoryRequest) -> HistoryReply:
        """Input history; empty by default."""
        return HistoryReply(history=[])

    async def do_debug_request(self, request: DebugRequest) -> DebugReply:
        """Debugging is not supported by default: an unsuccessful DAP response."""
        return DebugReply(
            seq=request.seq,
            request_seq=request.seq,
            command=request.command,
            success=False,
            message="debugging is not supported by this kernel",
        )

    def register_comm_target(self, target_name: str, callback: CommTarget) -> None:
        """Open the frontend's comms to ``target_name`` with ``callback`` (called with the
        comm_open message); comms to a target nobody registered are closed at once."""
        self.comm_targets[target_name] = callback

    def comm_target(self, target_name: str) -> CommTarget | None:
        """What opens comms to ``target_name`` (override to find targets elsewhere)."""
        return self.comm_targets.get(target_name)

    def subshell_ended(self, subshell_id: str) -> None:
        """Called when a deleted subshell has answered every request it was sent."""

    async def do_comm(self, message: Message[Content]) -> None:
        """Called with every comm message after the built-in handling."""

    async def do_shutdown(self, restart: bool) -> None:
        """Called before the kernel stops."""


def _with_count(reply: ExecuteReply, count: int) -> ExecuteReply:
    import msgspec

    return msgspec.structs.replace(reply, execution_count=count)
