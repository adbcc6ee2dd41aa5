"""The remote managers and clients against a real Jupyter Enterprise Gateway (3.3, run from a
virtual environment of its own: see ``tests/servers.py``), its kernels on the local process
proxy: execution, stdin, comms with buffers both ways, interrupt, restart, both websocket
formats, ``KERNEL_*`` variables, a wrong token, and a shutdown that leaves nothing running.

One kernel, started by a blocking RemoteKernelManager, is shared by the module; the other
format and the async tests reach it through managers attached by id (a gateway kernel serves
clients of both formats at once). The shutdown tests start kernels of their own.
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor

import anyio
import pytest

from runtimelib import AsyncKernelClient, ExecutionResult, KernelClient
from runtimelib.client import Comm, Output
from runtimelib.errors import KernelDiedError, ServerAuthError
from runtimelib.messages import CommOpen, Error, Message, Stream
from runtimelib.protocol.websocket import V1_SUBPROTOCOL
from runtimelib.remote import (
    AsyncJupyterServer,
    AsyncRemoteKernelManager,
    JupyterServer,
    RemoteKernelManager,
)

from .conftest import _pid_alive
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

# The first test of a machine waits for the gateway's environment to be made (half a minute
# with a cold pip cache): the usual bound would cut it short.
#: One worker runs them all: the gateway (and its environment) is started once, not per worker.
pytestmark = [
    pytest.mark.kernel,
    pytest.mark.timeout(300),
    pytest.mark.xdist_group("enterprise_gateway"),
]

#: The gateway hands a kernel the ``KERNEL_*`` variables of the start request and drops the
#: rest. ``KERNEL_USERNAME`` is also who the kernel runs for: without it the gateway takes its
#: own user, and refuses to start kernels for root (its default ``unauthorized_users``).
KERNEL_ENV = {
    "KERNEL_USERNAME": "ada",
    "KERNEL_FOO": "foo value",
    "RUNTIMELIB_NOT_A_KERNEL_VAR": "dropped",
}


@pytest.fixture
def anyio_backend() -> str:
    """The gateway tests run on asyncio; trio is covered against the other servers."""
    return "asyncio"


def _running(server: Server) -> set[str]:
    with JupyterServer(server.url, server.token) as gateway:
        return {kernel.id for kernel in gateway.kernels()}


def _kernel_pid(kc: KernelClient) -> int:
    result = kc.execute("import os; print(os.getpid())", timeout=T)
    return int(result.stdout)


@pytest.fixture(scope="module")
def shared(enterprise_gateway: Server) -> Iterator[RemoteKernelManager]:
    """The module's kernel; when the module is done it is shut down, its process has exited,
    and the gateway runs no kernel."""
    km = RemoteKernelManager(
        "python3", enterprise_gateway.url, enterprise_gateway.token, env=KERNEL_ENV
    )
    km.start()
    try:
        yield km
    finally:
        pid = None
        with contextlib.suppress(Exception), km.client() as kc:
            pid = _kernel_pid(kc)
        km.shutdown()
        km.close()
        assert _running(enterprise_gateway) == set()
        assert pid is None or not _pid_alive(pid), f"kernel process {pid} left running"


def _check_format(kc: AsyncKernelClient | KernelClient, fmt: str) -> None:
    """Enterprise Gateway 3.3 (jupyter_server 1.24) takes the v1 subprotocol when offered; a
    legacy client offers none and gets none."""
    expected = None if legacy(fmt) else V1_SUBPROTOCOL
    assert kc.transport.subprotocol == expected  # type: ignore[union-attr]


@contextlib.contextmanager
def blocking_client(
    server: Server, shared: RemoteKernelManager, fmt: str
) -> Iterator[tuple[RemoteKernelManager, KernelClient]]:
    assert shared.kernel_id is not None
    attached = RemoteKernelManager.attach(
        shared.kernel_id, server.url, server.token, legacy=legacy(fmt)
    )
    with attached as km, km.client() as kc:
        _check_format(kc, fmt)
        yield km, kc


@contextlib.asynccontextmanager
async def async_client(
    server: Server, shared: RemoteKernelManager, fmt: str
) -> AsyncIterator[tuple[AsyncRemoteKernelManager, AsyncKernelClient]]:
    assert shared.kernel_id is not None
    attached = AsyncRemoteKernelManager.attach(
        shared.kernel_id, server.url, server.token, legacy=legacy(fmt)
    )
    async with attached as km, km.client() as kc:
        _check_format(kc, fmt)
        yield km, kc


# -- execution, stdin, environment ----------------------------------------------------------------

STREAMS_AND_ERROR = "print('before')\nraise ValueError('boom')"
ENVIRON = (
    "import os\n"
    "print({k: os.environ.get(k) for k in ('KERNEL_USERNAME', 'KERNEL_FOO', 'KERNEL_ID',"
    " 'RUNTIMELIB_NOT_A_KERNEL_VAR', 'EG_AUTH_TOKEN', 'HOME')})"
)


def _check_error(result: ExecutionResult) -> None:
    assert result.status == "error"
    error = result.error
    assert isinstance(error, Error)
    assert (error.ename, error.evalue) == ("ValueError", "boom")
    assert result.outputs == [Stream(name="stdout", text="before\n"), error]


def _check_input(result: ExecutionResult, prompts: list[tuple[str, bool]]) -> None:
    assert result.status == "ok", result.error
    assert result.stdout == "Ada 6 True\n"
    assert prompts == [("name: ", False), ("password: ", True)]


def _check_environ(result: ExecutionResult, kernel_id: str | None) -> None:
    assert result.status == "ok", result.error
    # The kernel's environment is the request's KERNEL_* variables and the gateway's own
    # KERNEL_ID: nothing else of the request, nothing of the gateway's environment.
    assert ast.literal_eval(result.stdout) == {
        "KERNEL_USERNAME": "ada",
        "KERNEL_FOO": "foo value",
        "KERNEL_ID": kernel_id,
        "RUNTIMELIB_NOT_A_KERNEL_VAR": None,
        "EG_AUTH_TOKEN": None,
        "HOME": None,
    }


@pytest.mark.parametrize("fmt", FORMATS)
def test_execute_input_environ_blocking(
    fmt: str, enterprise_gateway: Server, shared: RemoteKernelManager
) -> None:
    prompts: list[tuple[str, bool]] = []

    def answer(prompt: str, password: bool) -> str:
        prompts.append((prompt, password))
        return ANSWERS[password]

    with blocking_client(enterprise_gateway, shared, fmt) as (_, kc):
        failed = kc.execute(STREAMS_AND_ERROR, timeout=T)
        entered = kc.execute(INPUT_CODE, input=answer, timeout=T)
        environ = kc.execute(ENVIRON, timeout=T)
    _check_error(failed)
    _check_input(entered, prompts)
    _check_environ(environ, shared.kernel_id)


@pytest.mark.anyio
@pytest.mark.parametrize("fmt", FORMATS)
async def test_execute_input_environ(
    fmt: str, enterprise_gateway: Server, shared: RemoteKernelManager
) -> None:
    prompts: list[tuple[str, bool]] = []

    async def answer(prompt: str, password: bool) -> str:
        prompts.append((prompt, password))
        await anyio.sleep(0)
        return ANSWERS[password]

    async with async_client(enterprise_gateway, shared, fmt) as (_, kc):
        failed = await kc.execute(STREAMS_AND_ERROR, timeout=T)
        entered = await kc.execute(INPUT_CODE, input=answer, timeout=T)
        environ = await kc.execute(ENVIRON, timeout=T)
    _check_error(failed)
    _check_input(entered, prompts)
    _check_environ(environ, shared.kernel_id)


# -- comms, with binary buffers both ways ---------------------------------------------------------

#: 1 MiB that is not all one byte, so a shifted or truncated copy differs.
MEGABYTE = ALL_BYTES * 4096

ECHO_TARGET = """
import hashlib
def _echo_target(comm, open_msg):
    @comm.on_msg
    def _echo(msg):
        got = [bytes(b) for b in msg["buffers"]]
        comm.send({"sha256": [hashlib.sha256(b).hexdigest() for b in got]}, buffers=got)

get_ipython().kernel.comm_manager.register_target("echo-buffers", _echo_target)
"""

KERNEL_OPENS = """
import hashlib
from comm import create_comm
kernel_comm_log = []
kernel_comm = create_comm(target_name={target!r}, data={{"from": "kernel"}})
kernel_comm.on_msg(
    lambda msg: kernel_comm_log.append([hashlib.sha256(b).hexdigest() for b in msg["buffers"]])
)
kernel_comm.send({{"hello": "client"}}, buffers=[bytes(range(256)) * 4096])
"""


def _sha256(buffers: list[bytes]) -> list[str]:
    return [hashlib.sha256(b).hexdigest() for b in buffers]


def _kernel_opens(kc: AsyncKernelClient | KernelClient) -> tuple[str, list[Comm]]:
    target = f"client-{uuid.uuid4().hex[:8]}"
    opened: list[Comm] = []

    def on_open(comm: Comm, message: Message[CommOpen]) -> None:
        opened.append(comm)

    kc.comms.register_target(target, on_open)
    return target, opened


def _check_comms(echoed: Comm, opened: list[Comm], log: ExecutionResult) -> None:
    [echo] = echoed.messages
    assert getattr(echo.content, "data", None) == {"sha256": _sha256(FROM_CLIENT)}
    assert [bytes(b) for b in echo.buffers] == FROM_CLIENT
    [from_kernel] = opened
    [hello] = from_kernel.messages
    assert [bytes(b) for b in hello.buffers] == [MEGABYTE]
    # The kernel got the client's reply to its comm with the buffers intact.
    assert log.stdout == repr([_sha256(REPLY_BUFFERS)]) + "\n"


@pytest.mark.parametrize("fmt", FORMATS)
def test_comms_blocking(fmt: str, enterprise_gateway: Server, shared: RemoteKernelManager) -> None:
    with blocking_client(enterprise_gateway, shared, fmt) as (_, kc):
        assert kc.execute(ECHO_TARGET, timeout=T).status == "ok"
        echoed = threading.Event()
        comm = kc.comms.open("echo-buffers", {})
        comm.on_msg(lambda message: echoed.set())
        comm.send({"ping": 1}, buffers=FROM_CLIENT)
        assert echoed.wait(T)
        comm.close()
        target, opened = _kernel_opens(kc)
        assert kc.execute(KERNEL_OPENS.format(target=target), timeout=T).status == "ok"
        assert len(opened) == 1
        opened[0].send({"reply": 1}, buffers=REPLY_BUFFERS)
        log = kc.execute("print(kernel_comm_log)", timeout=T)
    _check_comms(comm, opened, log)


@pytest.mark.anyio
@pytest.mark.parametrize("fmt", FORMATS)
async def test_comms(fmt: str, enterprise_gateway: Server, shared: RemoteKernelManager) -> None:
    async with async_client(enterprise_gateway, shared, fmt) as (_, kc):
        assert (await kc.execute(ECHO_TARGET, timeout=T)).status == "ok"
        echoed = anyio.Event()
        comm = kc.comms.open("echo-buffers", {})
        comm.on_msg(lambda message: echoed.set())
        comm.send({"ping": 1}, buffers=FROM_CLIENT)
        with anyio.fail_after(T):
            await echoed.wait()
        comm.close()
        target, opened = _kernel_opens(kc)
        assert (await kc.execute(KERNEL_OPENS.format(target=target), timeout=T)).status == "ok"
        assert len(opened) == 1
        opened[0].send({"reply": 1}, buffers=REPLY_BUFFERS)
        log = await kc.execute("print(kernel_comm_log)", timeout=T)
    _check_comms(comm, opened, log)


# -- interrupt and restart ------------------------------------------------------------------------


def _check_interrupted(result: ExecutionResult, after: ExecutionResult) -> None:
    assert result.status == "error"
    assert result.error is not None
    assert result.error.ename == "KeyboardInterrupt"
    assert after.stdout == "after\n"


def _check_restarted(failure: BaseException | None, fresh: ExecutionResult) -> None:
    assert isinstance(failure, KernelDiedError), repr(failure)
    assert fresh.status == "ok", fresh.error
    assert fresh.stdout == "False\n"


def test_interrupt_and_restart_blocking(
    enterprise_gateway: Server, shared: RemoteKernelManager
) -> None:
    with blocking_client(enterprise_gateway, shared, "v1") as (km, kc):

        def on_output(output: Output) -> None:
            if started_sleeping(output):
                time.sleep(SETTLE)  # inside the sleep, not the print
                km.interrupt()

        interrupted = kc.execute(SLEEP, on_output=on_output, timeout=SHORT)
        after = kc.execute("print('after')", timeout=T)
        _check_interrupted(interrupted, after)

        assert kc.execute("marker = 1", timeout=T).status == "ok"
        sleeping = threading.Event()

        def on_sleep(output: Output) -> None:
            if started_sleeping(output):
                sleeping.set()

        with ThreadPoolExecutor(1) as pool:
            pending = pool.submit(kc.execute, SLEEP, on_output=on_sleep, timeout=SHORT)
            assert sleeping.wait(T)
            km.restart()
            failure = pending.exception(T)
        fresh = kc.execute(FRESH, timeout=T)
        # The restarted kernel got the start request's variables again.
        environ = kc.execute(ENVIRON, timeout=T)
    _check_restarted(failure, fresh)
    _check_environ(environ, shared.kernel_id)


@pytest.mark.anyio
async def test_interrupt_and_restart(
    enterprise_gateway: Server, shared: RemoteKernelManager
) -> None:
    failure: BaseException | None = None
    async with async_client(enterprise_gateway, shared, "legacy") as (km, kc):

        async def on_output(output: Output) -> None:
            if started_sleeping(output):
                await anyio.sleep(SETTLE)  # inside the sleep, not the print
                await km.interrupt()

        interrupted = await kc.execute(SLEEP, on_output=on_output, timeout=SHORT)
        after = await kc.execute("print('after')", timeout=T)
        _check_interrupted(interrupted, after)

        assert (await kc.execute("marker = 1", timeout=T)).status == "ok"
        sleeping = anyio.Event()

        async def pending() -> None:
            nonlocal failure

            def on_sleep(output: Output) -> None:
                if started_sleeping(output):
                    sleeping.set()

            try:
                await kc.execute(SLEEP, on_output=on_sleep, timeout=SHORT)
            except Exception as exc:
                failure = exc

        async with anyio.create_task_group() as tg:
            tg.start_soon(pending)
            with anyio.fail_after(T):
                await sleeping.wait()
            await km.restart()
        fresh = await kc.execute(FRESH, timeout=T)
    _check_restarted(failure, fresh)


# -- a kernel's whole life, and a wrong token -----------------------------------------------------


def test_start_and_shutdown_blocking(enterprise_gateway: Server) -> None:
    url, token = enterprise_gateway.url, enterprise_gateway.token
    with RemoteKernelManager("python3", url, token, env=KERNEL_ENV, legacy=True) as km:
        assert km.kernel_id in _running(enterprise_gateway)
        with km.client() as kc:
            _check_format(kc, "legacy")
            pid = _kernel_pid(kc)
    assert km.kernel_id not in _running(enterprise_gateway)
    assert not _pid_alive(pid)


@pytest.mark.anyio
async def test_start_and_shutdown(enterprise_gateway: Server) -> None:
    url, token = enterprise_gateway.url, enterprise_gateway.token
    async with AsyncRemoteKernelManager("python3", url, token, env=KERNEL_ENV) as km:
        async with AsyncJupyterServer(url, token) as gateway:
            assert km.kernel_id in {k.id for k in await gateway.kernels()}
        async with km.client() as kc:
            _check_format(kc, "v1")
            result = await kc.execute("import os; print(os.getpid())", timeout=T)
            environ = await kc.execute(ENVIRON, timeout=T)
    _check_environ(environ, km.kernel_id)
    async with AsyncJupyterServer(url, token) as gateway:
        assert km.kernel_id not in {k.id for k in await gateway.kernels()}
    assert not _pid_alive(int(result.stdout))


def test_wrong_token(enterprise_gateway: Server) -> None:
    url = enterprise_gateway.url
    with (
        pytest.raises(ServerAuthError),
        RemoteKernelManager("python3", url, "wrong", env=KERNEL_ENV),
    ):
        pass
    with pytest.raises(ServerAuthError), JupyterServer(url, "wrong") as gateway:
        gateway.kernels()

    async def start() -> None:
        async with AsyncRemoteKernelManager("python3", url, "wrong", env=KERNEL_ENV):
            pass

    with pytest.raises(ServerAuthError):
        anyio.run(start, backend="asyncio")


# -- the distributed process proxy ----------------------------------------------------------------
# It starts a kernelspec's launcher on one of its remote hosts over SSH, except on a host that
# is this machine, where it starts it as a child process: with remote_hosts=127.0.0.1 it needs
# no sshd. The launcher (tests/gateway_launcher.py) answers the gateway with where the kernel
# listens; the gateway signals (interrupts, ends) the process it started.


def test_distributed_process_proxy(enterprise_gateway: Server) -> None:
    url, token = enterprise_gateway.url, enterprise_gateway.token
    with RemoteKernelManager("python3-distributed", url, token, env=KERNEL_ENV) as km:
        assert km.kernel_id in _running(enterprise_gateway)
        with km.client() as kc:
            _check_format(kc, "v1")
            failed = kc.execute(STREAMS_AND_ERROR, timeout=T)
            environ = kc.execute(
                "import os; print({k: os.environ.get(k) for k in ('KERNEL_FOO', 'KERNEL_ID')})",
                timeout=T,
            )

            def on_output(output: Output) -> None:
                if started_sleeping(output):
                    time.sleep(SETTLE)  # inside the sleep, not the print
                    km.interrupt()

            interrupted = kc.execute(SLEEP, on_output=on_output, timeout=SHORT)
            after = kc.execute("print('after')", timeout=T)
            assert kc.execute("marker = 1", timeout=T).status == "ok"
            km.restart()
            fresh = kc.execute(FRESH, timeout=T)
            pid = _kernel_pid(kc)
    _check_error(failed)
    assert ast.literal_eval(environ.stdout) == {
        "KERNEL_FOO": "foo value",
        "KERNEL_ID": km.kernel_id,
    }
    _check_interrupted(interrupted, after)
    assert fresh.stdout == "False\n"
    assert km.kernel_id not in _running(enterprise_gateway)
    assert not _pid_alive(pid)
