"""The kernel clients over a real Jupyter Server and Kernel Gateway: both websocket formats (the
v1 subprotocol and the legacy one) on AsyncKernelClient (asyncio, trio) and KernelClient.

Kernel starts are the slow part (and every xdist worker has servers of its own), so one ipykernel
per format is shared by the module, started on first use by a blocking RemoteKernelManager;
async tests reach it through an AsyncRemoteKernelManager attached by id (an httpx client belongs
to one event loop). Tests that restart a shared kernel leave nothing behind that another test
relies on. Tests whose subject is the kernel's life on the server (shut down, attach, notebook)
start their own. At the end of the module no kernel it started may be left on either server.
"""

from __future__ import annotations

import ast
import contextlib
import copy
import hashlib
import os
import signal
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import nbformat
import nbformat.v4
import pytest

from runtimelib import AsyncKernelClient, ExecutionError, ExecutionResult, KernelClient
from runtimelib.client import Comm, Output
from runtimelib.errors import KernelDiedError, ServerNotFoundError
from runtimelib.messages import (
    CommOpen,
    Content,
    DisplayData,
    Error,
    ExecuteResult,
    InputReply,
    KernelInfoReply,
    KernelInfoRequest,
    Message,
    Stream,
)
from runtimelib.notebook import NotebookRun, execute_notebook
from runtimelib.protocol.websocket import V1_SUBPROTOCOL
from runtimelib.remote import (
    AsyncJupyterServer,
    AsyncRemoteKernelManager,
    JupyterServer,
    RemoteKernelManager,
)

from .conftest import joined_streams
from .remote_checks import (
    ALL_BYTES,
    ANSWERS,
    FORMATS,
    FRESH,
    FROM_CLIENT,
    INPUT_CODE,
    REPLY_BUFFERS,
    SETTLE,
    SHORT,
    SLEEP,
    T,
    legacy,
    started_sleeping,
)
from .servers import Server

pytestmark = pytest.mark.kernel

#: What every kernel of this module is started with: the gateways hand a kernel the ``KERNEL_*``
#: variables of a start request (and drop the rest); a Jupyter Server ignores ``env``.
KERNEL_ENV = {"KERNEL_RUNTIMELIB_PROBE": "seen", "RUNTIMELIB_NOT_A_KERNEL_VAR": "dropped"}


def _options(server: Server, fmt: str) -> dict[str, Any]:
    return {"server_url": server.url, "token": server.token, "legacy": legacy(fmt)}


def _check_format(client: AsyncKernelClient | KernelClient, fmt: str) -> None:
    """The client talks the format asked for: ``legacy`` offers no subprotocol."""
    expected = None if legacy(fmt) else V1_SUBPROTOCOL
    assert client.transport.subprotocol == expected  # type: ignore[union-attr]


# -- shared kernels -------------------------------------------------------------------------------


class Kernels:
    """The shared kernels of one server, one per key, started on first use; and the id of every
    kernel the module started there, shared or not, to check that none is left."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.managers: dict[str, RemoteKernelManager] = {}
        self.started: list[str] = []

    def __call__(self, fmt: str) -> RemoteKernelManager:
        km = self.managers.get(fmt)
        if km is None:
            km = RemoteKernelManager("python3", **_options(self.server, fmt), env=KERNEL_ENV)
            km.start()
            assert km.kernel_id is not None
            self.managers[fmt] = km
            self.started.append(km.kernel_id)
        # A shared kernel that died would make every later test fail for the wrong reason.
        if not km.is_alive():
            pytest.fail(f"the shared {fmt} kernel {km.kernel_id} is gone")
        return km

    def record(self, kernel_id: str | None) -> None:
        """A kernel a test started on its own (it shuts it down; the module checks)."""
        assert kernel_id is not None
        self.started.append(kernel_id)

    def close(self) -> None:
        errors: list[BaseException] = []

        def shutdown(km: RemoteKernelManager) -> None:
            try:
                km.shutdown()
            except Exception as exc:
                errors.append(exc)
            finally:
                km.close()

        # All at once: a server takes a second or two to end each kernel.
        with ThreadPoolExecutor(max(1, len(self.managers))) as pool:
            list(pool.map(shutdown, self.managers.values()))
        with JupyterServer(self.server.url, self.server.token) as server:
            if self.server.kind == "jupyter_server":
                left = {k.id for k in server.kernels()} & set(self.started)
            else:
                # Kernel Gateway answers 403 to a listing (list_kernels is off): ask one by one.
                left = set()
                for kernel_id in self.started:
                    with contextlib.suppress(ServerNotFoundError):
                        server.kernel(kernel_id)
                        left.add(kernel_id)
        assert errors == [], errors
        assert left == set(), f"kernels left running on the {self.server.kind}: {left}"


@pytest.fixture(scope="module")
def kernels(remote_server: Server) -> Iterator[Kernels]:
    shared = Kernels(remote_server)
    try:
        yield shared
    finally:
        shared.close()


@pytest.fixture(scope="module")
def gateway_kernels(kernel_gateway: Server) -> Iterator[Kernels]:
    shared = Kernels(kernel_gateway)
    try:
        yield shared
    finally:
        shared.close()


@contextlib.asynccontextmanager
async def async_client(
    kernels: Kernels, fmt: str
) -> AsyncIterator[tuple[AsyncRemoteKernelManager, AsyncKernelClient]]:
    """An AsyncRemoteKernelManager attached to the shared kernel of ``fmt``, and a ready client
    of its."""
    shared = kernels(fmt)
    assert shared.kernel_id is not None
    options = _options(kernels.server, fmt)
    url = options.pop("server_url")
    attached = AsyncRemoteKernelManager.attach(shared.kernel_id, url, **options)
    async with attached as km, km.client() as kc:
        _check_format(kc, fmt)
        yield km, kc


@contextlib.contextmanager
def blocking_client(
    kernels: Kernels, fmt: str
) -> Iterator[tuple[RemoteKernelManager, KernelClient]]:
    """The shared blocking kernel of ``fmt``'s manager, and a ready client of its."""
    km = kernels(fmt)
    with km.client() as kc:
        _check_format(kc, fmt)
        yield km, kc


# -- every output kind ----------------------------------------------------------------------------

IMPORT_DISPLAY = "from IPython.display import clear_output, display\n"
PNG = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5Er"
    "kJggg=="
)
RICH_BUNDLE = {
    "text/plain": "plain",
    "text/html": "<b>rich</b>",
    "text/markdown": "**rich**",
    "application/json": {"a": [1, 2.5, None, "é"]},
    "image/png": PNG,
}
RICH_METADATA = {"image/png": {"width": 1, "height": 1}}


@dataclass(frozen=True)
class Case:
    """Run ``code`` and ``check`` the ExecutionResult."""

    name: str
    code: str
    check: Callable[[ExecutionResult], None]


def _ok(result: ExecutionResult) -> None:
    assert result.status == "ok", result.error


def _check_streams(result: ExecutionResult) -> None:
    _ok(result)
    assert result.outputs == [
        Stream(name="stdout", text="to out\n"),
        Stream(name="stderr", text="to err\n"),
    ]


def _check_rich_display(result: ExecutionResult) -> None:
    _ok(result)
    assert result.outputs == [DisplayData(data=RICH_BUNDLE, metadata=RICH_METADATA)]


def _check_execute_result(result: ExecutionResult) -> None:
    _ok(result)
    assert result.execution_count is not None
    assert result.outputs == [
        ExecuteResult(data={"text/plain": "42"}, execution_count=result.execution_count)
    ]


def _check_update_display(result: ExecutionResult) -> None:
    _ok(result)
    display, between = result.outputs
    assert isinstance(display, DisplayData)
    # The update_display_data replaced what the display first showed.
    assert display.data == {"text/plain": "'second'", "text/html": "<i>second</i>"}
    assert display.display_id is not None
    assert between == Stream(name="stdout", text="between\n")


def _check_cleared(result: ExecutionResult) -> None:
    _ok(result)
    assert result.outputs == [Stream(name="stdout", text="new\n")]


def _check_error(result: ExecutionResult) -> None:
    assert result.status == "error"
    error = result.error
    assert isinstance(error, Error)
    assert (error.ename, error.evalue) == ("ValueError", "boom")
    assert any("ValueError" in line and "boom" in line for line in error.traceback)
    assert result.outputs == [Stream(name="stdout", text="before\n"), error]
    assert result.reply is not None
    assert (result.reply.ename, result.reply.evalue) == ("ValueError", "boom")


UPDATE_DISPLAY = (
    "from IPython.display import HTML, display\n"
    "class Both:\n"
    "    def __init__(self, word): self.word = word\n"
    "    def __repr__(self): return repr(self.word)\n"
    "    def _repr_html_(self): return f'<i>{self.word}</i>'\n"
    "handle = display(Both('first'), display_id=True)\n"
    "print('between')\n"
    "handle.update(Both('second'))"
)

CASES = [
    Case(
        "streams",
        "print('to out')\nimport sys\nsys.stdout.flush()\nprint('to err', file=sys.stderr)",
        _check_streams,
    ),
    Case(
        "rich-display",
        IMPORT_DISPLAY + f"display({RICH_BUNDLE!r}, raw=True, metadata={RICH_METADATA!r})",
        _check_rich_display,
    ),
    Case("execute-result", "6 * 7", _check_execute_result),
    Case("update-display", UPDATE_DISPLAY, _check_update_display),
    Case(
        "clear-output",
        IMPORT_DISPLAY + "print('old')\nclear_output()\nprint('new')",
        _check_cleared,
    ),
    Case(
        "clear-output-wait",
        IMPORT_DISPLAY + "print('old')\nclear_output(wait=True)\nprint('new')",
        _check_cleared,
    ),
    Case("error", "print('before')\nraise ValueError('boom')", _check_error),
]


def _check_cases(results: dict[str, ExecutionResult]) -> None:
    """Check every case, and report all that failed (one client ran them all)."""
    failures: dict[str, str] = {}
    for case in CASES:
        try:
            case.check(results[case.name])
        except AssertionError as exc:
            failures[case.name] = str(exc)
    assert failures == {}


def _check_execution_error(exc: ExecutionError, fine: ExecutionResult) -> None:
    assert str(exc) == "ValueError: boom"
    assert exc.result.status == "error"
    assert exc.result.error is not None
    assert exc.traceback == exc.result.error.traceback
    assert any("boom" in line for line in exc.traceback)
    assert fine.stdout == "fine\n"


@pytest.mark.anyio
@pytest.mark.parametrize("fmt", FORMATS)
async def test_outputs(fmt: str, kernels: Kernels) -> None:
    async with async_client(kernels, fmt) as (_, kc):
        results = {case.name: await kc.execute(case.code, timeout=T) for case in CASES}
        with pytest.raises(ExecutionError) as info:
            await kc.execute("raise ValueError('boom')", raise_on_error=True, timeout=T)
        fine = await kc.execute("print('fine')", raise_on_error=True, timeout=T)
    _check_cases(results)
    _check_execution_error(info.value, fine)


@pytest.mark.parametrize("fmt", FORMATS)
def test_outputs_blocking(fmt: str, kernels: Kernels) -> None:
    with blocking_client(kernels, fmt) as (_, kc):
        results = {case.name: kc.execute(case.code, timeout=T) for case in CASES}
        with pytest.raises(ExecutionError) as info:
            kc.execute("raise ValueError('boom')", raise_on_error=True, timeout=T)
        fine = kc.execute("print('fine')", raise_on_error=True, timeout=T)
    _check_cases(results)
    _check_execution_error(info.value, fine)


# -- stdin ----------------------------------------------------------------------------------------


def _record_sends(client: AsyncKernelClient | KernelClient) -> list[Message[Any]]:
    """Every message the client hands its transport, from now on."""
    sent: list[Message[Any]] = []
    transport: Any = client.transport
    send = transport.send

    def recording(message: Message[Any]) -> Any:
        sent.append(message)
        return send(message)

    transport.send = recording
    return sent


def _check_input(
    result: ExecutionResult, prompts: list[tuple[str, bool]], sent: list[Message[Any]]
) -> None:
    _ok(result)
    assert result.stdout == "Ada 6 True\n"
    assert prompts == [("name: ", False), ("password: ", True)]
    replies = [m for m in sent if isinstance(m.content, InputReply)]
    # The answers travel on stdin (the kernel waits for them there), each a child of its
    # input_request.
    assert [(m.channel, m.content.value) for m in replies] == [
        ("stdin", "Ada"),
        ("stdin", "s3cret"),
    ]
    assert all(m.parent_header is not None for m in replies)
    assert [m.parent_header.msg_type for m in replies] == ["input_request"] * 2  # type: ignore[union-attr]


@pytest.mark.anyio
@pytest.mark.parametrize("fmt", FORMATS)
async def test_input(fmt: str, kernels: Kernels) -> None:
    prompts: list[tuple[str, bool]] = []

    async def answer(prompt: str, password: bool) -> str:
        prompts.append((prompt, password))
        await anyio.sleep(0)
        return ANSWERS[password]

    async with async_client(kernels, fmt) as (_, kc):
        sent = _record_sends(kc)
        result = await kc.execute(INPUT_CODE, input=answer, timeout=T)
    _check_input(result, prompts, sent)


@pytest.mark.parametrize("fmt", FORMATS)
def test_input_blocking(fmt: str, kernels: Kernels) -> None:
    prompts: list[tuple[str, bool]] = []

    def answer(prompt: str, password: bool) -> str:
        prompts.append((prompt, password))
        return ANSWERS[password]

    with blocking_client(kernels, fmt) as (_, kc):
        sent = _record_sends(kc)
        result = kc.execute(INPUT_CODE, input=answer, timeout=T)
    _check_input(result, prompts, sent)


# -- interrupt and restart ------------------------------------------------------------------------


def _check_interrupted(result: ExecutionResult, after: ExecutionResult) -> None:
    assert result.status == "error"
    assert result.error is not None
    assert result.error.ename == "KeyboardInterrupt"
    assert result.stdout == "sleeping\n"
    assert after.stdout == "after\n"


@pytest.mark.anyio
@pytest.mark.parametrize("fmt", FORMATS)
async def test_interrupt(fmt: str, kernels: Kernels) -> None:
    async with async_client(kernels, fmt) as (km, kc):

        async def on_output(output: Output) -> None:
            if started_sleeping(output):
                await anyio.sleep(SETTLE)  # inside the sleep, not the print
                await km.interrupt()

        result = await kc.execute(SLEEP, on_output=on_output, timeout=SHORT)
        after = await kc.execute("print('after')", timeout=T)
    _check_interrupted(result, after)


@pytest.mark.parametrize("fmt", FORMATS)
def test_interrupt_blocking(fmt: str, kernels: Kernels) -> None:
    with blocking_client(kernels, fmt) as (km, kc):

        def on_output(output: Output) -> None:
            if started_sleeping(output):
                time.sleep(SETTLE)  # inside the sleep, not the print
                km.interrupt()

        result = kc.execute(SLEEP, on_output=on_output, timeout=SHORT)
        after = kc.execute("print('after')", timeout=T)
    _check_interrupted(result, after)


def _check_restarted(failure: BaseException | None, fresh: ExecutionResult) -> None:
    assert isinstance(failure, KernelDiedError), repr(failure)
    # The same client runs code on the new kernel, which does not know the old one's names.
    _ok(fresh)
    assert fresh.stdout == "False\n"


@pytest.mark.anyio
@pytest.mark.parametrize("fmt", FORMATS)
async def test_restart(fmt: str, kernels: Kernels) -> None:
    failure: BaseException | None = None
    async with async_client(kernels, fmt) as (km, kc):
        _ok(await kc.execute("marker = 1", timeout=T))
        sleeping = anyio.Event()

        async def pending() -> None:
            nonlocal failure

            def on_output(output: Output) -> None:
                if started_sleeping(output):
                    sleeping.set()

            try:
                await kc.execute(SLEEP, on_output=on_output, timeout=SHORT)
            except Exception as exc:
                failure = exc

        async with anyio.create_task_group() as tg:
            tg.start_soon(pending)
            with anyio.fail_after(T):
                await sleeping.wait()
            await km.restart()
        fresh = await kc.execute(FRESH, timeout=T)
    _check_restarted(failure, fresh)


@pytest.mark.parametrize("fmt", FORMATS)
def test_restart_blocking(fmt: str, kernels: Kernels) -> None:
    with blocking_client(kernels, fmt) as (km, kc), ThreadPoolExecutor(1) as pool:
        _ok(kc.execute("marker = 1", timeout=T))
        sleeping = threading.Event()

        def on_output(output: Output) -> None:
            if started_sleeping(output):
                sleeping.set()

        pending = pool.submit(kc.execute, SLEEP, on_output=on_output, timeout=SHORT)
        assert sleeping.wait(T)
        km.restart()
        failure = pending.exception(T)
        fresh = kc.execute(FRESH, timeout=T)
    _check_restarted(failure, fresh)


# -- comms, with binary buffers both ways ---------------------------------------------------------

#: 1 MiB that is not all one byte, so a shifted or truncated copy differs.
MEGABYTE = bytes(range(256)) * 4096


def _sha256(buffers: list[bytes] | tuple[Any, ...]) -> list[str]:
    return [hashlib.sha256(bytes(b)).hexdigest() for b in buffers]


ECHO_TARGET = """
import hashlib
def _echo_target(comm, open_msg):
    @comm.on_msg
    def _echo(msg):
        got = [bytes(b) for b in msg["buffers"]]
        digests = [hashlib.sha256(b).hexdigest() for b in got]
        comm.send({"echo": msg["content"]["data"], "sha256": digests}, buffers=got)
    comm.send({"opened": open_msg["content"]["data"]})

get_ipython().kernel.comm_manager.register_target("echo-buffers", _echo_target)
"""

KERNEL_OPENS = """
import hashlib
from comm import create_comm
kernel_comm_log = []
kernel_comm = create_comm(
    target_name={target!r}, data={{"from": "kernel"}}, buffers=[bytes(range(256))]
)
kernel_comm.on_msg(
    lambda msg: kernel_comm_log.append(
        (msg["content"]["data"], [hashlib.sha256(b).hexdigest() for b in msg["buffers"]])
    )
)
kernel_comm.on_close(lambda msg: kernel_comm_log.append("closed"))
kernel_comm.send({{"hello": "client"}}, buffers=[bytes(range(256)), bytes(range(256)) * 4096])
"""


def _data(messages: list[Message[Content]]) -> list[Any]:
    return [getattr(m.content, "data", None) for m in messages]


def _check_echo(comm: Comm) -> None:
    opened, echoed = comm.messages
    assert _data([opened]) == [{"opened": {"hello": 1}}]
    assert opened.buffers == ()
    # The kernel got each buffer intact (its digests), and sent them back intact.
    assert _data([echoed]) == [{"echo": {"ping": 2}, "sha256": _sha256(FROM_CLIENT)}]
    assert [bytes(b) for b in echoed.buffers] == FROM_CLIENT
    assert comm.closed


def _check_kernel_opened(opened: list[tuple[Comm, Message[CommOpen]]], log: str) -> None:
    [(comm, open_msg)] = opened
    assert open_msg.content.data == {"from": "kernel"}
    assert [bytes(b) for b in open_msg.buffers] == [ALL_BYTES]
    [hello] = comm.messages
    assert _data([hello]) == [{"hello": "client"}]
    assert [len(b) for b in hello.buffers] == [256, len(MEGABYTE)]
    assert [bytes(b) for b in hello.buffers] == [ALL_BYTES, MEGABYTE]
    # The kernel side got the client's reply with its buffers intact, then the close.
    expected = [({"reply": "from client"}, _sha256(REPLY_BUFFERS)), "closed"]
    assert log == repr(expected) + "\n"


def _kernel_opens(kc_comms: Any) -> tuple[str, list[tuple[Comm, Message[CommOpen]]]]:
    target = f"client-{uuid.uuid4().hex[:8]}"
    opened: list[tuple[Comm, Message[CommOpen]]] = []
    kc_comms.register_target(target, lambda comm, message: opened.append((comm, message)))
    return target, opened


@pytest.mark.anyio
@pytest.mark.parametrize("fmt", FORMATS)
async def test_comms(fmt: str, kernels: Kernels) -> None:
    async with async_client(kernels, fmt) as (_, kc):
        # A comm the client opens, to a target in the kernel that echoes.
        _ok(await kc.execute(ECHO_TARGET, timeout=T))
        echoed = anyio.Event()
        comm = kc.comms.open("echo-buffers", {"hello": 1})
        comm.on_msg(lambda message: echoed.set() if len(comm.messages) == 2 else None)
        comm.send({"ping": 2}, buffers=FROM_CLIENT)
        with anyio.fail_after(T):
            await echoed.wait()
        info = await kc.comm_info(target_name="echo-buffers", timeout=T)
        comm.close()
        # A comm the kernel opens, to a target of the client's.
        target, opened = _kernel_opens(kc.comms)
        _ok(await kc.execute(KERNEL_OPENS.format(target=target), timeout=T))
        assert len(opened) == 1
        from_kernel = opened[0][0]
        from_kernel.send({"reply": "from client"}, buffers=REPLY_BUFFERS)
        from_kernel.close()
        # The reply and the close left before this execute: the kernel has handled them.
        log = await kc.execute("print(kernel_comm_log)", timeout=T)
    assert info.comms[comm.comm_id] == {"target_name": "echo-buffers"}
    _check_echo(comm)
    _check_kernel_opened(opened, log.stdout)


@pytest.mark.parametrize("fmt", FORMATS)
def test_comms_blocking(fmt: str, kernels: Kernels) -> None:
    with blocking_client(kernels, fmt) as (_, kc):
        _ok(kc.execute(ECHO_TARGET, timeout=T))
        echoed = threading.Event()
        comm = kc.comms.open("echo-buffers", {"hello": 1})
        comm.on_msg(lambda message: echoed.set() if len(comm.messages) == 2 else None)
        comm.send({"ping": 2}, buffers=FROM_CLIENT)
        assert echoed.wait(T)
        info = kc.comm_info(target_name="echo-buffers", timeout=T)
        comm.close()
        target, opened = _kernel_opens(kc.comms)
        _ok(kc.execute(KERNEL_OPENS.format(target=target), timeout=T))
        assert len(opened) == 1
        from_kernel = opened[0][0]
        from_kernel.send({"reply": "from client"}, buffers=REPLY_BUFFERS)
        from_kernel.close()
        log = kc.execute("print(kernel_comm_log)", timeout=T)
    assert info.comms[comm.comm_id] == {"target_name": "echo-buffers"}
    _check_echo(comm)
    _check_kernel_opened(opened, log.stdout)


# -- many requests in flight, and stream() --------------------------------------------------------

IN_FLIGHT = 10  # executes, and as many kernel_info requests, all at once


def _check_in_flight(results: dict[int, ExecutionResult], infos: list[KernelInfoReply]) -> None:
    assert sorted(results) == list(range(IN_FLIGHT))
    for index, result in results.items():
        _ok(result)
        assert result.outputs == [Stream(name="stdout", text=f"request {index}\n")]
    assert len(infos) == IN_FLIGHT
    assert {(i.status, i.implementation, i.language_info.name) for i in infos} == {
        ("ok", "ipython", "python")
    }
    # Every execute got a count of its own.
    counts = [r.execution_count for r in results.values()]
    assert len(set(counts)) == IN_FLIGHT


def _in_flight_code(index: int) -> str:
    return f"import time\ntime.sleep(0.01)\nprint('request {index}')"


@pytest.mark.anyio
@pytest.mark.parametrize("fmt", FORMATS)
async def test_many_requests_in_flight(fmt: str, kernels: Kernels) -> None:
    results: dict[int, ExecutionResult] = {}
    infos: list[KernelInfoReply] = []
    async with async_client(kernels, fmt) as (_, kc):

        async def execute(index: int) -> None:
            results[index] = await kc.execute(_in_flight_code(index), timeout=T)

        async def kernel_info() -> None:
            infos.append(await kc.kernel_info(timeout=T))

        async with anyio.create_task_group() as tg:
            for index in range(IN_FLIGHT):
                tg.start_soon(execute, index)
                tg.start_soon(kernel_info)
        assert kc.router.pending == 0
    _check_in_flight(results, infos)


@pytest.mark.parametrize("fmt", FORMATS)
def test_many_requests_in_flight_blocking(fmt: str, kernels: Kernels) -> None:
    with blocking_client(kernels, fmt) as (_, kc), ThreadPoolExecutor(2 * IN_FLIGHT) as pool:
        executes = {
            i: pool.submit(kc.execute, _in_flight_code(i), timeout=T) for i in range(IN_FLIGHT)
        }
        asked = [pool.submit(kc.kernel_info, timeout=T) for _ in range(IN_FLIGHT)]
        results = {i: future.result(T) for i, future in executes.items()}
        infos = [future.result(T) for future in asked]
    _check_in_flight(results, infos)


STREAMED = "print('a', flush=True)\nimport time\ntime.sleep(0.2)\nprint('b', flush=True)\n6 * 7"


def _check_stream(messages: list[Message[Content]]) -> None:
    # iopub keeps its order; the reply comes on shell, so anywhere after the request started.
    iopub = [m for m in messages if m.channel == "iopub"]
    # Where the kernel ends a stream message is its timing ("a" and its newline may come
    # apart on a busy machine): the stream messages are judged by what they say together.
    kinds = [m.msg_type for m in iopub if m.msg_type != "stream"]
    assert kinds == ["status", "execute_input", "execute_result", "status"]
    streams = [m for m in iopub if m.msg_type == "stream"]
    assert "".join(m.content.text for m in streams) == "a\nb\n"  # type: ignore[attr-defined]
    assert iopub.index(streams[-1]) < len(iopub) - 2  # before the result and the idle
    busy, _, result, idle = (m.content for m in iopub if m.msg_type != "stream")
    assert (busy.execution_state, idle.execution_state) == ("busy", "idle")  # type: ignore[attr-defined]
    assert result.data == {"text/plain": "42"}  # type: ignore[attr-defined]
    [reply] = [m for m in messages if m.channel == "shell"]
    assert reply.msg_type == "execute_reply"
    # It ends with whichever of the reply and the idle status came last (the reply travels on
    # shell, so it may come before outputs on iopub); all of one request.
    assert messages[-1] in (reply, iopub[-1])
    assert len(messages) == len(iopub) + 1
    assert len({m.parent_id for m in messages}) == 1


@pytest.mark.anyio
@pytest.mark.parametrize("fmt", FORMATS)
async def test_stream(fmt: str, kernels: Kernels) -> None:
    async with async_client(kernels, fmt) as (_, kc):
        messages = [m async for m in kc.stream(STREAMED, timeout=T)]
    _check_stream(messages)


@pytest.mark.parametrize("fmt", FORMATS)
def test_stream_blocking(fmt: str, kernels: Kernels) -> None:
    with blocking_client(kernels, fmt) as (_, kc):
        messages = list(kc.stream(STREAMED, timeout=T))
    _check_stream(messages)


# -- environment of the kernel --------------------------------------------------------------------

ENVIRON = (
    "import os\n"
    "print({k: os.environ.get(k) for k in"
    " ('KERNEL_RUNTIMELIB_PROBE', 'RUNTIMELIB_NOT_A_KERNEL_VAR', 'KG_AUTH_TOKEN', 'HOME')})"
)


def test_jupyter_server_ignores_env(kernels: Kernels) -> None:
    # jupyter_server's POST /api/kernels reads only name, path and kernel_id from the body:
    # ``env`` is dropped and the kernel inherits the server's own environment.
    with blocking_client(kernels, "v1") as (_, kc):
        result = kc.execute(ENVIRON, timeout=T)
    _ok(result)
    seen = ast.literal_eval(result.stdout)
    assert seen["KERNEL_RUNTIMELIB_PROBE"] is None
    assert seen["RUNTIMELIB_NOT_A_KERNEL_VAR"] is None
    assert seen["HOME"] is not None


# -- the server's view ----------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_server_state_attach_and_shutdown(
    remote_server: Server, kernels: Kernels, anyio_backend: str
) -> None:
    url, token = remote_server.url, remote_server.token
    async with AsyncJupyterServer(url, token) as server:
        specs = await server.kernelspecs()
        assert "python3" in specs.kernelspecs
        assert specs.kernelspecs["python3"].language == "python"
        assert isinstance(await server.sessions(), list)

        async with AsyncRemoteKernelManager("python3", url, token) as owner:
            kernels.record(owner.kernel_id)
            kernel_id = owner.kernel_id
            assert kernel_id is not None
            assert owner.owns_kernel
            async with AsyncRemoteKernelManager.attach(kernel_id, url, token) as attached:
                assert not attached.owns_kernel
                assert attached.kernel_name == "python3"
                async with attached.client() as kc:
                    _ok(await kc.execute("kept = 'state'", timeout=T))
                    [model] = [k for k in await server.kernels() if k.id == kernel_id]
                    assert model.name == "python3"
                    assert model.connections >= 1
            # Leaving the attached manager left the kernel running, with its state.
            assert (await server.kernel(kernel_id)).id == kernel_id
            async with owner.client() as kc:
                assert (await kc.execute("print(kept)", timeout=T)).stdout == "state\n"
            await owner.shutdown()
            assert kernel_id not in {k.id for k in await server.kernels()}
            with pytest.raises(ServerNotFoundError):
                await server.kernel(kernel_id)
            assert not await owner.is_alive()


def test_server_state_attach_and_shutdown_blocking(remote_server: Server, kernels: Kernels) -> None:
    url, token = remote_server.url, remote_server.token
    with JupyterServer(url, token) as server:
        assert "python3" in server.kernelspecs().kernelspecs
        assert isinstance(server.sessions(), list)
        with RemoteKernelManager("python3", url, token) as owner:
            kernels.record(owner.kernel_id)
            kernel_id = owner.kernel_id
            assert kernel_id is not None
            attached = RemoteKernelManager.attach(kernel_id, url, token)
            with attached, attached.client() as kc:
                _ok(kc.execute("kept = 'state'", timeout=T))
                [model] = [k for k in server.kernels() if k.id == kernel_id]
                assert model.connections >= 1
            with owner.client() as kc:
                assert kc.execute("print(kept)", timeout=T).stdout == "state\n"
        # Leaving the owner shut the kernel down.
        assert kernel_id not in {k.id for k in server.kernels()}
        with pytest.raises(ServerNotFoundError):
            server.kernel(kernel_id)


# -- a server that stops answering for a while -----------------------------------------------------
# SIGSTOP freezes the server: no pong comes back, the client drops its websocket and reconnects
# once the server answers again. A request made meanwhile must wait for the reconnection.

#: A pong is overdue after 0.4 s.
STALL = {"ping_interval": 0.2, "ping_timeout": 0.2}


@contextlib.contextmanager
def _frozen(server: Server) -> Iterator[None]:
    os.kill(server.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(server.pid, signal.SIGCONT)


def _wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the client did not notice the frozen server"
        time.sleep(0.02)


def test_request_while_reconnecting_blocking(remote_server: Server, kernels: Kernels) -> None:
    shared = kernels("v1")
    assert shared.kernel_id is not None
    attached = RemoteKernelManager.attach(
        shared.kernel_id, remote_server.url, remote_server.token, **STALL
    )
    with attached, attached.client() as kc, ThreadPoolExecutor(1) as pool:
        transport: Any = kc.transport
        with _frozen(remote_server):
            # The reader has given up on the old websocket (private: nothing public says so).
            _wait_for(lambda: transport._sock is None)
            pending = pool.submit(kc.kernel_info, timeout=T)
            with contextlib.suppress(TimeoutError):
                pending.exception(0.5)
        reply = pending.result(T)
        assert transport.reconnects == 1
    assert reply.status == "ok"


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
async def test_request_while_reconnecting(
    remote_server: Server, kernels: Kernels, anyio_backend: str
) -> None:
    shared = kernels("v1")
    assert shared.kernel_id is not None
    url, token = remote_server.url, remote_server.token
    attached = AsyncRemoteKernelManager.attach(shared.kernel_id, url, token, **STALL)
    replies: list[KernelInfoReply] = []
    async with attached as km, km.client() as kc:

        async def ask() -> None:
            replies.append(await kc.kernel_info(timeout=T))

        async with anyio.create_task_group() as tg:
            with _frozen(remote_server):
                await anyio.sleep(1.5)  # the pong is overdue
                tg.start_soon(ask)
                await anyio.sleep(0.5)
        assert kc.transport.reconnects == 1  # type: ignore[attr-defined]
        after = await kc.execute("print('after')", timeout=T)
    assert [r.status for r in replies] == ["ok"]
    assert after.stdout == "after\n"


# -- the Kernel Gateway ---------------------------------------------------------------------------

GATEWAY_KERNEL_OPENS = """
from comm import create_comm
gateway_comm = create_comm(target_name={target!r}, data={{"from": "gateway"}})
gateway_log = []
gateway_comm.on_msg(lambda msg: gateway_log.append(bytes(msg["buffers"][0]).hex()))
gateway_comm.send({{"hello": "client"}}, buffers=[bytes(range(256))])
"""


def _check_gateway_environ(result: ExecutionResult) -> None:
    _ok(result)
    seen = ast.literal_eval(result.stdout)
    # Kernel Gateway builds the kernel's environment from PATH, its env_process_whitelist and
    # the request's KERNEL_* variables (and env_whitelist): nothing else of the request, and
    # nothing of its own environment, not even HOME nor its token.
    assert seen == {
        "KERNEL_RUNTIMELIB_PROBE": "seen",
        "RUNTIMELIB_NOT_A_KERNEL_VAR": None,
        "KG_AUTH_TOKEN": None,
        "HOME": None,
    }


def _check_gateway(
    basic: ExecutionResult,
    entered: ExecutionResult,
    opened: list[tuple[Comm, Message[CommOpen]]],
    log: ExecutionResult,
) -> None:
    _check_execute_result(basic)
    _ok(entered)
    assert entered.stdout == "Ada 6 True\n"
    [(comm, open_msg)] = opened
    assert open_msg.content.data == {"from": "gateway"}
    [hello] = comm.messages
    assert _data([hello]) == [{"hello": "client"}]
    assert [bytes(b) for b in hello.buffers] == [ALL_BYTES]
    assert log.stdout == repr([ALL_BYTES[::-1].hex()]) + "\n"


async def _gateway_async(kernels: Kernels, fmt: str) -> tuple[ExecutionResult, ...]:
    async with async_client(kernels, fmt) as (_, kc):
        basic = await kc.execute("6 * 7", timeout=T)
        entered = await kc.execute(INPUT_CODE, input=lambda p, pw: ANSWERS[pw], timeout=T)
        target, opened = _kernel_opens(kc.comms)
        _ok(await kc.execute(GATEWAY_KERNEL_OPENS.format(target=target), timeout=T))
        assert len(opened) == 1
        opened[0][0].send({"back": True}, buffers=[ALL_BYTES[::-1]])
        log = await kc.execute("print(gateway_log)", timeout=T)
        environ = await kc.execute(ENVIRON, timeout=T)
    _check_gateway(basic, entered, opened, log)
    return (environ,)


def _gateway_blocking(kernels: Kernels, fmt: str) -> tuple[ExecutionResult, ...]:
    with blocking_client(kernels, fmt) as (_, kc):
        basic = kc.execute("6 * 7", timeout=T)
        entered = kc.execute(INPUT_CODE, input=lambda p, pw: ANSWERS[pw], timeout=T)
        target, opened = _kernel_opens(kc.comms)
        _ok(kc.execute(GATEWAY_KERNEL_OPENS.format(target=target), timeout=T))
        assert len(opened) == 1
        opened[0][0].send({"back": True}, buffers=[ALL_BYTES[::-1]])
        log = kc.execute("print(gateway_log)", timeout=T)
        environ = kc.execute(ENVIRON, timeout=T)
    _check_gateway(basic, entered, opened, log)
    return (environ,)


@pytest.mark.xdist_group("kernel_gateway")  # one gateway for the run, not one per worker
def test_gateway(gateway_kernels: Kernels) -> None:
    # One test for the whole gateway matrix ({v1, legacy} x {blocking, asyncio}, one kernel per
    # format): under xdist each test may land on another worker, and each worker would start a
    # gateway of its own.
    for fmt in FORMATS:
        (environ,) = _gateway_blocking(gateway_kernels, fmt)
        _check_gateway_environ(environ)
        (environ,) = anyio.run(_gateway_async, gateway_kernels, fmt, backend="asyncio")
        _check_gateway_environ(environ)


# -- a notebook -----------------------------------------------------------------------------------
# execute_notebook / execute_notebook_async make their own local KernelManager and take no
# manager or client, so a remote kernel cannot be given to them. The remote run below drives
# the public NotebookRun with a remote client the way their cell loop does.

NOTEBOOK_CELLS = [
    "print('hello')\nimport sys\nsys.stdout.flush()\nprint('warn', file=sys.stderr)",
    "from IPython.display import HTML, clear_output, display, update_display\n"
    "display(HTML('<b>first</b>'), display_id='shared')\n"
    "6 * 7",
    "update_display(HTML('<b>updated</b>'), display_id='shared')\n"
    "print('old')\nclear_output(wait=True)\nprint('new')",
    f"display({RICH_BUNDLE!r}, raw=True, metadata={RICH_METADATA!r})",
    "raise ValueError('in a notebook')",
    "print('after the error')",
]


def _notebook() -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.cells = [nbformat.v4.new_code_cell(source) for source in NOTEBOOK_CELLS]
    nb.cells.insert(1, nbformat.v4.new_markdown_cell("some *text*"))
    return nb


def _run_remotely(nb: nbformat.NotebookNode, kc: KernelClient) -> nbformat.NotebookNode:
    run = NotebookRun(nb, allow_errors=True, record_timing=False)
    kc.comms.close_unknown = False
    run.set_kernel_info(kc.request(KernelInfoRequest(), timeout=T))
    for index in run.cells_to_run():
        run.begin(index)
        for message in kc.stream(
            nb.cells[index].source, stop_on_error=False, allow_stdin=False, timeout=T
        ):
            run.on_message(index, message)
            for reply in run.take_outbox():
                kc.send(reply)
        run.end(index)
    run.finish()
    return run.nb


def _comparable(nb: nbformat.NotebookNode) -> Any:
    """The cells without their ids, streams joined (two runs are two kernels, which may cut a
    print from its newline differently)."""
    cells = []
    for cell in copy.deepcopy(nb.cells):
        cell = dict(cell)
        cell.pop("id", None)
        if "outputs" in cell:
            cell["outputs"] = joined_streams(cell["outputs"])
        cells.append(cell)
    return cells, nb.metadata["language_info"]


@pytest.mark.parametrize("fmt", ["v1"])
def test_notebook_equals_local_run(
    fmt: str, remote_server: Server, kernels: Kernels, jupyter_env: Path
) -> None:
    local = execute_notebook(_notebook(), allow_errors=True, record_timing=False, timeout=T)
    url, token = remote_server.url, remote_server.token
    with RemoteKernelManager("python3", url, token, legacy=legacy(fmt)) as km:
        kernels.record(km.kernel_id)
        with km.client() as kc:
            _check_format(kc, fmt)
            remote = _run_remotely(_notebook(), kc)
    # The notebook holds every kind of output, so equal notebooks mean equal outputs.
    error = remote.cells[5].outputs[0]
    assert (error.output_type, error.ename, error.evalue) == (
        "error",
        "ValueError",
        "in a notebook",
    )
    assert [o.output_type for o in remote.cells[3].outputs] == ["stream"]
    assert remote.cells[2].outputs[0].data["text/html"] == "<b>updated</b>"
    assert _comparable(remote) == _comparable(local)
