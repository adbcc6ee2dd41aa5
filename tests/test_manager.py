"""The kernel lifecycle against real kernels: ipykernel, xeus-python, bash_kernel, broken ones."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import anyio
import pytest

from runtimelib import AsyncKernelManager, KernelManager, errors
from runtimelib.messages import ExecuteReply, ExecuteRequest, KernelInfoReply, KernelInfoRequest
from runtimelib.transports.zmq import Channel

from .conftest import _pid_alive

pytestmark = [pytest.mark.kernel, pytest.mark.usefixtures("jupyter_env")]

REAL_KERNELS = {"python3": "ipython", "xpython": "xeus-python", "bash": "bash_kernel"}


def _wait_gone(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _pid_alive(pid):
            return True
        time.sleep(0.05)
    return False


def _execute(channel: Channel, code: str, *, stop_on_error: bool = True) -> str:
    request = channel.message(ExecuteRequest(code=code, stop_on_error=stop_on_error))
    channel.send(request)
    return request.msg_id


def _subscribed(shell: Channel, iopub: Channel) -> None:
    """Wait until ``iopub`` receives what the kernel publishes: a SUB socket misses whatever
    is published before its subscription reaches the kernel (PROTOCOL.md, slow joiner)."""
    deadline = time.monotonic() + 20
    while not iopub.poll(0.1):
        assert time.monotonic() < deadline, "iopub never heard from the kernel"
        shell.send(shell.message(KernelInfoRequest()))
    while iopub.poll(0.2):
        iopub.recv(0)
    while shell.poll(0):
        shell.recv(0)


def _reply_to(channel: Channel, msg_id: str, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        message = channel.recv(left)
        if message.parent_id == msg_id:
            return message.content
    raise AssertionError(f"no reply to {msg_id} in {timeout} s")


@pytest.mark.anyio
@pytest.mark.parametrize(("name", "implementation"), REAL_KERNELS.items())
async def test_start_and_shutdown_real_kernels(
    name: str, implementation: str, jupyter_env: Path, assert_gone: list[int]
) -> None:
    async with AsyncKernelManager(name) as km:
        assert km.pid is not None
        assert_gone.append(km.pid)
        assert km.is_alive()
        assert isinstance(km.kernel_info, KernelInfoReply)
        assert km.kernel_info.implementation == implementation
        assert km.connection_file is not None
        assert km.connection_file.parent == jupyter_env
        assert km.connection_file.stat().st_mode & 0o777 == 0o600
        assert km.connection_info is not None
        assert km.connection_info.kernel_name == name
    assert not km.is_alive()
    assert not km.connection_file.exists()


def test_blocking_manager_restart_keeps_clients_connected(assert_gone: list[int]) -> None:
    with KernelManager("python3") as km:
        assert km.pid is not None
        assert km.connection_info is not None
        assert_gone.append(km.pid)
        ports = km.connection_info.ports
        with Channel.connect(km.connection_info, "shell") as shell:
            _reply_to(shell, _execute(shell, "x = 1"), 10)
            km.restart()
            assert km.pid is not None
            assert_gone.append(km.pid)
            assert km.connection_info.ports == ports
            # The same socket, never reconnected by hand, reaches the new kernel.
            reply = _reply_to(shell, _execute(shell, "x"), 20)
            assert isinstance(reply, ExecuteReply)
            assert reply.status == "error"  # a fresh namespace: x is gone
            assert reply.ename == "NameError"
        km.restart(new_ports=True)
        assert_gone.append(km.pid)
        assert km.connection_info.ports != ports


@pytest.mark.anyio
async def test_async_restart_with_new_ports(assert_gone: list[int]) -> None:
    async with AsyncKernelManager("python3") as km:
        assert km.connection_info is not None
        assert km.pid is not None
        assert_gone.append(km.pid)
        old_ports, old_pid = km.connection_info.ports, km.pid
        await km.restart(new_ports=True)
        assert km.pid is not None
        assert_gone.append(km.pid)
        assert km.pid != old_pid
        assert not _pid_alive(old_pid)
        assert km.connection_info.ports != old_ports
        assert km.kernel_info is not None


@pytest.mark.parametrize(
    ("name", "code", "ename"),
    [
        ("python3", "import time; time.sleep(100)", "KeyboardInterrupt"),
        ("bash", "sleep 100", None),
        ("python3-message-interrupt", "import time; time.sleep(100)", "KeyboardInterrupt"),
    ],
)
def test_interrupt_a_long_execution(
    name: str, code: str, ename: str | None, assert_gone: list[int]
) -> None:
    with KernelManager(name) as km:
        assert km.pid is not None
        assert km.connection_info is not None
        assert_gone.append(km.pid)
        with (
            Channel.connect(km.connection_info, "shell") as shell,
            Channel.connect(km.connection_info, "iopub", session=shell.session) as iopub,
        ):
            _subscribed(shell, iopub)
            # Not stop_on_error: after an error ipykernel aborts what arrives in the moment
            # after its reply, and the request below would race that window.
            msg_id = _execute(shell, code, stop_on_error=False)
            # Interrupt once the execution is under way (the kernel said busy for it).
            while True:
                message = iopub.recv(20)
                if message.parent_id == msg_id and message.msg_type == "execute_input":
                    break
            time.sleep(0.3)
            started = time.monotonic()
            km.interrupt()
            reply = _reply_to(shell, msg_id, 20)
            assert time.monotonic() - started < 20
            assert isinstance(reply, ExecuteReply)
            assert (
                reply.status in ("error", "abort", "aborted")
                if ename is None
                else reply.status == "error"
            )
            if ename is not None:
                assert reply.ename == ename
            # The kernel survives the interrupt and keeps serving.
            code = "echo ok" if name == "bash" else "1"
            again = _reply_to(shell, _execute(shell, code), 20)
            assert again.status == "ok"


def test_xeus_python_dies_on_interrupt_and_is_reported(assert_gone: list[int]) -> None:
    # The xeus-python wheel exits on SIGINT (PROTOCOL.md): the manager must see it dead.
    with KernelManager("xpython") as km:
        assert km.pid is not None
        assert_gone.append(km.pid)
        km.interrupt()
        assert km.process is not None
        assert km.process.wait(10) is not None
        assert not km.is_alive()


@pytest.mark.anyio
async def test_shutdown_escalates_for_a_kernel_ignoring_sigterm(assert_gone: list[int]) -> None:
    km = AsyncKernelManager("ignores-sigterm", shutdown_timeout=1.0)
    await km.start()
    assert km.pid is not None
    assert_gone.append(km.pid)
    await km.shutdown(now=True)  # no shutdown_request: SIGTERM is ignored, SIGKILL follows
    assert not km.is_alive()
    assert km.process is not None
    assert km.process.returncode == -signal.SIGKILL


BUSY = "import time; time.sleep(100)"


@pytest.mark.anyio
@pytest.mark.parametrize("name", ["python3", "python3-message-interrupt"])
async def test_shutdown_interrupts_a_busy_kernel_first(name: str, assert_gone: list[int]) -> None:
    """A kernel in the middle of a long cell gets to the shutdown_request (ipykernel cannot
    end while its main thread runs the cell): it is interrupted first, by signal or message,
    and exits cleanly instead of waiting out the budget for SIGTERM."""
    km = AsyncKernelManager(name, shutdown_timeout=60.0)
    await km.start()
    assert km.pid is not None
    assert km.connection_info is not None
    assert_gone.append(km.pid)
    with Channel.connect(km.connection_info, "shell") as shell:
        _execute(shell, "print('started', flush=True)\n" + BUSY)
        time.sleep(1.0)  # the cell is running
        await km.shutdown()
    assert km.process is not None
    assert km.process.returncode == 0  # the request ended it, not SIGTERM (-15) or SIGKILL


def test_shutdown_interrupts_a_busy_kernel_first_blocking(assert_gone: list[int]) -> None:
    km = KernelManager("python3", shutdown_timeout=60.0)
    km.start()
    assert km.pid is not None
    assert km.connection_info is not None
    assert_gone.append(km.pid)
    with Channel.connect(km.connection_info, "shell") as shell:
        _execute(shell, BUSY)
        time.sleep(1.0)
        km.shutdown()
    assert km.process is not None
    assert km.process.returncode == 0


@pytest.mark.anyio
async def test_missing_binary_is_a_launch_error() -> None:
    with pytest.raises(errors.KernelLaunchError, match="nonexistent"):
        await AsyncKernelManager("missing-binary").start()


@pytest.mark.anyio
async def test_kernel_exiting_at_startup_is_reported_at_once(assert_gone: list[int]) -> None:
    km = AsyncKernelManager("exits-at-once", startup_timeout=60)
    with pytest.raises(errors.KernelLaunchError) as info:
        await km.start()
    assert not isinstance(info.value, errors.KernelTimeoutError)
    assert "code 3" in str(info.value)
    assert "boom: no luck" in str(info.value)
    assert km.pid is not None
    assert_gone.append(km.pid)


def test_blocking_kernel_exiting_at_startup_is_reported(assert_gone: list[int]) -> None:
    km = KernelManager("exits-at-once", startup_timeout=60)
    with pytest.raises(errors.KernelLaunchError, match="boom: no luck"):
        km.start()
    assert km.pid is not None
    assert_gone.append(km.pid)


@pytest.mark.anyio
async def test_kernel_that_never_answers_times_out_and_is_killed(assert_gone: list[int]) -> None:
    km = AsyncKernelManager("never-ready", startup_timeout=1.0)
    with pytest.raises(errors.KernelTimeoutError):
        await km.start()
    assert km.pid is not None
    assert_gone.append(km.pid)
    assert not km.is_alive()


def test_unknown_kernel_name() -> None:
    with pytest.raises(errors.NoSuchKernelError):
        KernelManager("no-such-kernel").start()


@pytest.mark.anyio
async def test_context_manager_shuts_down_on_error(assert_gone: list[int]) -> None:
    km = AsyncKernelManager("python3")

    async def fail_inside() -> None:
        async with km:
            assert km.pid is not None
            assert_gone.append(km.pid)
            raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        await fail_inside()
    assert not km.is_alive()


@pytest.mark.anyio
async def test_ten_concurrent_starts_get_distinct_ports(assert_gone: list[int]) -> None:
    managers = [AsyncKernelManager("python3") for _ in range(10)]
    try:
        async with anyio.create_task_group() as tg:
            for km in managers:
                tg.start_soon(km.start)
        ports = [p for km in managers for p in km.connection_info.ports.values()]  # type: ignore[union-attr]
        assert len(set(ports)) == 50
        assert all(km.kernel_info is not None for km in managers)
    finally:
        assert_gone.extend(km.pid for km in managers if km.pid is not None)
        async with anyio.create_task_group() as tg:
            for km in managers:
                tg.start_soon(km.shutdown)


PARENT = textwrap.dedent(
    """
    import sys, time
    from runtimelib import KernelManager
    km = KernelManager(sys.argv[1])
    km.start()
    print(km.pid, flush=True)
    if sys.argv[2] == "exit":
        sys.exit(0)  # forgets to shut the kernel down
    time.sleep(600)
    """
)


# python3 and runtimelib-echo start encrypted (their specs declare CurveZMQ) and the echo
# kernel registers its own ports: the guard ends them all the same.
@pytest.mark.parametrize(
    ("name", "how"),
    [("python3", "kill"), ("runtimelib-echo", "kill"), ("xpython", "kill"), ("xpython", "exit")],
)
def test_kernel_ends_when_its_parent_dies(
    name: str, how: str, assert_gone: list[int], jupyter_env: Path
) -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, name, how],
        stdout=subprocess.PIPE,
        text=True,
        env=os.environ.copy(),
    )
    try:
        assert parent.stdout is not None
        kernel_pid = int(parent.stdout.readline())
        assert_gone.append(kernel_pid)
        if how == "kill":
            assert _pid_alive(kernel_pid)
            parent.kill()  # SIGKILL: no cleanup code of the parent runs
        parent.wait()
        assert _wait_gone(kernel_pid), "the kernel outlived its parent"
        # The guard also removes the connection file the parent could not.
        deadline = time.monotonic() + 10
        while list(jupyter_env.glob("kernel-*.json")) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert list(jupyter_env.glob("kernel-*.json")) == []
    finally:
        parent.kill()
        parent.wait()


def test_kernel_info_request_on_a_raw_channel(assert_gone: list[int]) -> None:
    with KernelManager("xpython") as km:
        assert km.pid is not None
        assert km.connection_info is not None
        assert_gone.append(km.pid)
        with Channel.connect(km.connection_info, "shell") as shell:
            request = shell.message(KernelInfoRequest())
            shell.send(request)
            reply = _reply_to(shell, request.msg_id, 10)
            assert isinstance(reply, KernelInfoReply)
            assert reply.language_info.name == "python"
