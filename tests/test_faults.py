"""Promises kept under faults: nothing received is lost when a kernel dies, an output too large
fails its request, a client that cannot reach its kernel fails cleanly, an input handler that
raises never leaves the kernel waiting, a request reported failed never runs, and nothing a
kernel started outlives it. Real kernels throughout; asyncio, trio and blocking where the
client is what is tested.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import msgspec
import pytest

from runtimelib import (
    AsyncKernelClient,
    AsyncKernelManager,
    ConnectionInfo,
    KernelClient,
    KernelManager,
    errors,
)
from runtimelib.client import Output
from runtimelib.connection import ConnectionFileWarning
from runtimelib.messages import Stream

from .conftest import _pid_alive

pytestmark = [pytest.mark.kernel, pytest.mark.usefixtures("jupyter_env")]

T = 60.0


def _gone(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while _pid_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


# -- 1. what was received before a death is delivered before the death ----------------------------

# 400 messages, well under the 1,000 a kernel's iopub socket queues before it drops (ipykernel
# keeps ZeroMQ's default high-water mark): a starved machine must not lose lines in the kernel,
# where no client can see them. A consumer taking 10 ms each still lags the death by seconds.
LINES = 400
DIES_AFTER_OUTPUT = (
    "import os, signal, sys, time\n"
    "for i in range(LINES):\n"
    "    print(i, flush=True)\n"
    "time.sleep(2)\n"  # every line has left the kernel, even on a busy machine
    "os.kill(os.getpid(), signal.SIGKILL)\n"
).replace("LINES", str(LINES))


def _slow_consumer(seen: list[int]) -> Callable[[Output], None]:
    def on_output(output: Output) -> None:
        if isinstance(output, Stream):
            seen.extend(int(line) for line in output.text.split())
        time.sleep(0.01)  # a consumer slower than the kernel

    return on_output


def _check_all_lines(seen: list[int]) -> None:
    assert seen == list(range(LINES)), f"{len(seen)} of {LINES} lines, then the death"


@pytest.mark.parametrize("kernel", ["runtimelib-python", "python3"])
def test_output_received_before_a_death_is_delivered_first_blocking(kernel: str) -> None:
    seen: list[int] = []
    with KernelManager(kernel) as km, km.client() as kc, pytest.raises(errors.KernelDiedError):
        kc.execute(DIES_AFTER_OUTPUT, timeout=T, on_output=_slow_consumer(seen))
    _check_all_lines(seen)


@pytest.mark.anyio
@pytest.mark.parametrize("kernel", ["runtimelib-python", "python3"])
async def test_output_received_before_a_death_is_delivered_first(kernel: str) -> None:
    # A plain function that blocks for its 10 ms: the reader task runs only when the
    # consumer has taken everything delivered so far.
    seen: list[int] = []
    async with AsyncKernelManager(kernel) as km, km.client() as kc:
        with pytest.raises(errors.KernelDiedError):
            await kc.execute(DIES_AFTER_OUTPUT, timeout=T, on_output=_slow_consumer(seen))
    _check_all_lines(seen)


def test_output_before_a_silent_heartbeat_is_delivered_first() -> None:
    # No process to watch: the heartbeat tells the death, after everything already received.
    seen: list[int] = []
    with KernelManager("runtimelib-python") as km:
        assert km.connection_info is not None
        with (
            KernelClient(km.connection_info, heartbeat_interval=0.2, heartbeat_misses=3) as kc,
            pytest.raises(errors.KernelDiedError, match="heartbeats"),
        ):
            kc.execute(DIES_AFTER_OUTPUT, timeout=T, on_output=_slow_consumer(seen))
    _check_all_lines(seen)


def test_a_client_of_a_kernel_its_manager_restarts_fails_the_request_at_once() -> None:
    """A client made from the connection info (not the manager's) while the manager restarts
    the kernel: the new kernel says it is starting, and the request the old one was running
    fails then, not at its timeout; the next runs on the new kernel, same ports."""
    with KernelManager("python3") as km:
        assert km.connection_info is not None
        with KernelClient(km.connection_info) as kc:
            kc.execute("marker = 1", timeout=T)

            def restart_once_sleeping(output: Output) -> None:
                if isinstance(output, Stream) and "sleeping" in output.text:
                    threading.Thread(target=km.restart).start()

            started = time.monotonic()
            with pytest.raises(errors.KernelDiedError, match="restarted while running"):
                kc.execute(
                    "print('sleeping', flush=True)\nimport time\ntime.sleep(50)",
                    timeout=T,
                    on_output=restart_once_sleeping,
                )
            assert time.monotonic() - started < 30
            assert kc.execute("print('marker' in dir())", timeout=T).stdout == "False\n"


# -- 2. an output above the frame limit fails its request ------------------------------------------

BIG = "print('x' * 2_000_000)"


def test_an_output_above_the_limit_fails_its_request_blocking() -> None:
    with KernelManager("runtimelib-python") as km, km.client(max_frame_size=1_000_000) as kc:
        with pytest.raises(errors.MessageTooLargeError, match="max_frame_size"):
            kc.execute(BIG, timeout=T)
        with pytest.raises(errors.MessageTooLargeError):
            kc.execute(BIG, timeout=T, on_output=lambda output: None)
        assert kc.execute("print('small')", timeout=T).stdout == "small\n"


@pytest.mark.anyio
async def test_an_output_above_the_limit_fails_its_request() -> None:
    async with (
        AsyncKernelManager("runtimelib-python") as km,
        km.client(max_frame_size=1_000_000) as kc,
    ):
        with pytest.raises(errors.MessageTooLargeError, match="max_frame_size"):
            await kc.execute(BIG, timeout=T)
        assert (await kc.execute("print('small')", timeout=T)).stdout == "small\n"


def test_a_50_mb_output_arrives_whole_under_the_default_limit() -> None:
    with KernelManager("runtimelib-python") as km, km.client() as kc:
        result = kc.execute("print('y' * 50_000_000)", timeout=T)
    assert result.status == "ok"
    assert result.stdout == "y" * 50_000_000 + "\n"


# -- 3. entering a client whose kernel never answers -----------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("what", ["nothing listens", "wrong key"])
async def test_entering_a_client_that_gets_no_answer_times_out_cleanly(what: str) -> None:
    if what == "nothing listens":
        with pytest.raises(errors.KernelTimeoutError):
            async with AsyncKernelClient(ConnectionInfo.new(), ready_timeout=1.0):
                pass
        return
    async with AsyncKernelManager("runtimelib-python") as km:
        assert km.connection_info is not None
        wrong = msgspec.structs.replace(km.connection_info, key="not-the-key")
        with pytest.raises(errors.KernelTimeoutError):
            async with AsyncKernelClient(wrong, ready_timeout=1.0):
                pass
        # The kernel is fine, and a right client still gets in.
        async with km.client() as kc:
            assert (await kc.execute("1 + 1", timeout=T)).status == "ok"


def test_entering_a_blocking_client_that_gets_no_answer_times_out() -> None:
    with (
        pytest.raises(errors.KernelTimeoutError),
        KernelClient(ConnectionInfo.new(), ready_timeout=1),
    ):
        pass


# -- 4. an input handler that raises ---------------------------------------------------------------


class HandlerFailed(Exception):
    pass


def _raising(prompt: str, password: bool) -> str:
    raise HandlerFailed(prompt)


def _not_a_string(prompt: str, password: bool) -> Any:
    return 42


ASKS = "try:\n    input('? ')\nexcept EOFError:\n    print('told: no more input')\n"


@pytest.mark.parametrize("kernel", ["runtimelib-python", "python3"])
def test_a_raising_input_handler_never_leaves_the_kernel_waiting_blocking(kernel: str) -> None:
    with KernelManager(kernel) as km, km.client() as kc:
        with pytest.raises(HandlerFailed):
            kc.execute(ASKS, input=_raising, timeout=T)
        with pytest.raises(TypeError, match="returned int, not str"):
            kc.execute(ASKS, input=_not_a_string, timeout=T)
        seen: list[Output] = []
        with pytest.raises(HandlerFailed):
            kc.execute(ASKS, input=_raising, timeout=T, on_output=seen.append)
        # The kernel was answered each time, and serves the next request at once.
        assert kc.execute("print('next')", timeout=10).stdout == "next\n"
        # It was told there is no more input, as Python's input() is at the end of a file.
        assert any(isinstance(o, Stream) and "told: no more input" in o.text for o in seen)


@pytest.mark.anyio
@pytest.mark.parametrize("kernel", ["runtimelib-python", "python3"])
async def test_a_raising_input_handler_never_leaves_the_kernel_waiting(kernel: str) -> None:
    async def raising(prompt: str, password: bool) -> str:
        raise HandlerFailed(prompt)

    async with AsyncKernelManager(kernel) as km, km.client() as kc:
        with pytest.raises(HandlerFailed):
            await kc.execute(ASKS, input=raising, timeout=T)
        with pytest.raises(TypeError, match="returned int, not str"):
            await kc.execute(ASKS, input=_not_a_string, timeout=T)
        assert (await kc.execute("print('next')", timeout=10)).stdout == "next\n"


# -- 5. and 6. hostile kernelspecs and a connection file replaced ----------------------------------


@pytest.mark.parametrize("where", ["argv", "env"])
def test_a_nul_byte_in_a_kernelspec_is_a_typed_error(where: str, jupyter_env: Path) -> None:
    spec_dir = Path(os.environ["JUPYTER_PATH"]) / "kernels" / "nul"
    spec_dir.mkdir(parents=True)
    spec: dict[str, Any] = {
        "argv": [sys.executable, "-m", "runtimelib.kernel.echo", "-f", "{connection_file}"],
        "display_name": "nul",
        "language": "text",
    }
    if where == "argv":
        spec["argv"].append("bad\u0000arg")
    else:
        spec["env"] = {"BAD": "bad\u0000value"}
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    with pytest.raises(errors.KernelLaunchError, match="null byte"):
        KernelManager("nul").start()
    # The jupyter_env fixture checks that no connection file (with its key) was left.


def test_a_connection_file_replaced_by_a_directory_does_not_stop_the_shutdown(
    jupyter_env: Path,
) -> None:
    km = KernelManager("runtimelib-python")
    km.start()
    assert km.connection_file is not None
    assert km.pid is not None
    pid, path = km.pid, km.connection_file
    path.unlink()
    path.mkdir()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            km.shutdown()
        assert _gone(pid, 0.5)
        assert [w.category for w in caught] == [ConnectionFileWarning]
        assert "cannot remove its connection file" in str(caught[0].message)
    finally:
        path.rmdir()


# -- 7. nothing a kernel started outlives it -------------------------------------------------------

STARTS_A_CHILD = (
    "import subprocess, sys\n"
    "child = subprocess.Popen([sys.executable, '-c', "
    "'import signal, time; signal.signal(signal.SIGINT, signal.SIG_IGN); time.sleep(300)']"
    "{extra})\n"
    "print(child.pid)\n"
)


@pytest.mark.parametrize("session", ["same group", "own session"])
def test_shutdown_ends_what_the_kernel_started(session: str) -> None:
    extra = ", start_new_session=True" if session == "own session" else ""
    with KernelManager("runtimelib-python") as km, km.client() as kc:
        child = int(kc.execute(STARTS_A_CHILD.format(extra=extra), timeout=T).stdout)
        assert _pid_alive(child)
    assert _gone(child, 5.0), "the kernel's child outlived it"


def test_our_kernel_ends_its_children_under_another_manager() -> None:
    # jupyter_client's manager signals only the kernel: the kernel itself must end the rest.
    from jupyter_client.manager import start_new_kernel

    outputs: list[dict[str, Any]] = []
    km, kc = start_new_kernel(kernel_name="runtimelib-python")
    try:
        reply = kc.execute_interactive(
            STARTS_A_CHILD.format(extra=", start_new_session=True"),
            output_hook=outputs.append,
            timeout=T,
        )
        assert reply["content"]["status"] == "ok"
        child = int(next(m["content"]["text"] for m in outputs if m["msg_type"] == "stream"))
        assert _pid_alive(child)
    finally:
        kc.stop_channels()
        km.shutdown_kernel()
    assert _gone(child, 5.0), "the kernel's child outlived it"


# -- 8. a request reported failed never runs later -------------------------------------------------


def test_requests_made_while_the_heartbeat_is_lost_never_run(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    with KernelManager("runtimelib-python") as km:
        assert km.connection_info is not None
        assert km.pid is not None
        with KernelClient(km.connection_info, heartbeat_interval=0.2, heartbeat_misses=3) as kc:
            os.kill(km.pid, signal.SIGSTOP)
            try:
                deadline = time.monotonic() + 10
                while kc.router.failure is None:
                    assert time.monotonic() < deadline, "the lost heartbeat was never noticed"
                    time.sleep(0.05)
                for _ in range(3):
                    with pytest.raises(errors.KernelDiedError):
                        kc.execute(f"open({str(marker)!r}, 'a').write('x')", timeout=5)
            finally:
                os.kill(km.pid, signal.SIGCONT)
            deadline = time.monotonic() + 10
            while kc.router.failure is not None:  # it answers its heartbeat again
                assert time.monotonic() < deadline
                time.sleep(0.05)
            assert kc.execute("print('back')", timeout=T).stdout == "back\n"
    assert not marker.exists(), "a request reported failed ran anyway"


@pytest.mark.anyio
async def test_requests_around_a_death_and_auto_restart_run_once_or_fail_and_never_run(
    tmp_path: Path,
) -> None:
    # Each request made while the kernel dies and is restarted either fails (and never runs,
    # on the old kernel or the new one) or succeeds, having run once: a caller who retries a
    # failed request never runs its code twice.
    marker = tmp_path / "ran"
    restarted = anyio.Event()
    succeeded = 0
    async with AsyncKernelManager("runtimelib-python", auto_restart=True) as km:
        km.on_restart.append(lambda _: restarted.set())
        async with km.client() as kc:
            await kc.execute(f"open({str(marker)!r}, 'w').close()", timeout=T)
            with pytest.raises(errors.KernelDiedError):
                await kc.execute("import os; os._exit(1)", timeout=T)
            with anyio.fail_after(T):
                while not restarted.is_set():
                    try:
                        await kc.execute(f"open({str(marker)!r}, 'a').write('x')", timeout=5)
                    except errors.KernelDiedError:
                        await anyio.sleep(0.01)  # and try again, as a caller would
                        continue
                    succeeded += 1
                    await anyio.sleep(0.01)
            assert (await kc.execute("print('new kernel')", timeout=T)).stdout == "new kernel\n"
            await anyio.sleep(0.5)  # a request that slipped through would have run by now
    assert marker.read_text() == "x" * succeeded


# -- 9. a restart never stops the new kernel -------------------------------------------------------


@pytest.mark.parametrize("kernel", ["xpython", "runtimelib-python"])
def test_restarts_leave_the_new_kernel_running(kernel: str) -> None:
    with KernelManager(kernel) as km, km.client() as kc:
        for round_ in range(5):
            km.restart()
            assert km.process is not None
            time.sleep(0.3)  # long enough for a stray shutdown_request to have arrived
            assert km.is_alive(), f"the new kernel died after restart {round_ + 1}"
            assert kc.execute(f"print({round_})", timeout=T).stdout == f"{round_}\n"


@pytest.mark.anyio
async def test_restarts_leave_the_new_kernel_running_async() -> None:
    async with AsyncKernelManager("xpython") as km, km.client() as kc:
        for round_ in range(3):
            await km.restart()
            await anyio.sleep(0.3)
            assert km.is_alive(), f"the new kernel died after restart {round_ + 1}"
            assert (await kc.execute(f"print({round_})", timeout=T)).stdout == f"{round_}\n"


# -- a port taken between the pick and the kernel's bind -------------------------------------------


@pytest.mark.parametrize("kernel", ["python3", "runtimelib-python"])
def test_a_kernel_that_finds_its_port_taken_starts_again_on_new_ports(
    kernel: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    from runtimelib.manager import base

    thief = socket.socket()
    thief.bind(("127.0.0.1", 0))
    thief.listen()
    taken = thief.getsockname()[1]
    picks: list[ConnectionInfo] = []
    new = ConnectionInfo.new

    def first_pick_is_taken(**kwargs: Any) -> ConnectionInfo:
        # Another process bound this port after it was found free: the race, made certain.
        info = new(**kwargs)
        if not picks:
            info = msgspec.structs.replace(info, shell_port=taken)
        picks.append(info)
        return info

    monkeypatch.setattr(base.ConnectionInfo, "new", staticmethod(first_pick_is_taken))
    try:
        # Ports picked here (our kernels would otherwise bind their own: test_registration.py).
        with KernelManager(kernel, startup_handshake=False) as km, km.client() as kc:
            assert len(picks) == 2
            assert km.connection_info is not None
            assert km.connection_info.shell_port != taken
            assert kc.execute("print('started')", timeout=T).stdout == "started\n"
        # Ports it was given are not its to change: that is an error.
        given = msgspec.structs.replace(ConnectionInfo.new(), shell_port=taken)
        with pytest.raises(errors.KernelLaunchError, match="Address already in use"):
            KernelManager(kernel, connection_info=given).start()
    finally:
        thief.close()


# -- a kernel that has exited is never reported running ------------------------------------------


@pytest.mark.parametrize("kernel", ["runtimelib-python", "python3"])
def test_wait_never_reports_an_exited_kernel_as_running(kernel: str) -> None:
    # Another client stops the kernel; the manager's monitor thread reaps it at the moment
    # this thread waits. Popen.poll() then answers None without looking.
    from runtimelib.messages import ShutdownRequest
    from runtimelib.transports.zmq import Channel

    for _ in range(4):
        with KernelManager(kernel) as km:
            assert km.connection_info is not None
            process = km.process
            assert process is not None
            with Channel.connect(km.connection_info, "control") as control:
                control.send(control.message(ShutdownRequest(restart=False)))
                started = time.monotonic()
                code = process.wait(20.0)
            assert code is not None, f"wait returned None after {time.monotonic() - started:.2f} s"
            assert not process.is_alive()
