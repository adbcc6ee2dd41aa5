"""The kernel clients against real kernels: one matrix of checks for ipykernel ("python3"),
xeus-python ("xpython") and bash_kernel ("bash"), each run on AsyncKernelClient (asyncio and
trio) and on its blocking twin KernelClient.

Kernels are shared per module where a test cannot disturb the next one (one blocking
KernelManager per kernel; async tests reach it through a fresh AsyncKernelClient, since a
kernel started under one event loop is not watched from another). Tests that interrupt, kill or
shut down a kernel start their own. Where a kernel lacks a feature, the matrix has no test for
it and a comment says why.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import signal
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import msgspec
import nbformat.v4
import pytest
from jupyter_client.blocking import BlockingKernelClient

from runtimelib import (
    AsyncKernelClient,
    AsyncKernelManager,
    ExecutionError,
    ExecutionResult,
    KernelClient,
    KernelManager,
)
from runtimelib.client import Comm, Output, to_nbformat
from runtimelib.errors import KernelDiedError, KernelTimeoutError
from runtimelib.messages import (
    CommOpen,
    Content,
    DisplayData,
    Error,
    ExecuteResult,
    KernelInfoReply,
    KernelInfoRequest,
    Message,
    Status,
    Stream,
    UpdateDisplayData,
)

from .conftest import TEST_SPECS, _pid_alive

pytestmark = pytest.mark.kernel

KERNELS = ("python3", "xpython", "bash")
PYTHONS = ("python3", "xpython")
#: Bound on one request: generous for a loaded 2-core machine, well under pytest-timeout.
T = 30.0
#: How long a dead kernel may take to be reported: "promptly", not after a long timeout.
PROMPT = 10.0


def echo(kernel: str, text: str) -> str:
    """Code that writes ``text`` and a newline to stdout (``text``: plain words)."""
    return f"echo {text}" if kernel == "bash" else f"print({text!r})"


def sleep_code(kernel: str, seconds: float, *, announce: bool = False) -> str:
    """Code that sleeps; with ``announce`` it first prints "sleeping" (to know it started)."""
    if kernel == "bash":
        return ("echo sleeping; " if announce else "") + f"sleep {seconds}"
    head = "print('sleeping', flush=True)\n" if announce else ""
    return f"{head}import time\ntime.sleep({seconds})"


def own_kernel_options(kernel: str) -> dict[str, Any]:
    """Manager options: bash_kernel exits ~3 s after a shutdown_request, so it gets a short
    budget and then SIGTERM, which ends it as cleanly."""
    return {"shutdown_timeout": 1.0} if kernel == "bash" else {}


def _wait_gone(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _pid_alive(pid):
            return True
        time.sleep(0.05)
    return False


# -- shared kernels -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def module_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """What ``jupyter_env`` does, for the whole module: private Jupyter dirs, the bash spec.

    IPython's history database goes to a private IPYTHONDIR too, so the history tests
    neither read nor write the user's.
    """
    root = tmp_path_factory.mktemp("jupyter")
    spec_dir = root / "path" / "kernels" / "bash"
    spec_dir.mkdir(parents=True)
    (spec_dir / "kernel.json").write_text(json.dumps(TEST_SPECS["bash"]))
    runtime = root / "runtime"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("JUPYTER_PATH", str(root / "path"))
        mp.setenv("JUPYTER_DATA_DIR", str(root / "data"))
        mp.setenv("JUPYTER_CONFIG_DIR", str(root / "config"))
        mp.setenv("JUPYTER_RUNTIME_DIR", str(runtime))
        mp.setenv("IPYTHONDIR", str(root / "ipython"))
        yield runtime
    leftovers = sorted(p.name for p in runtime.glob("kernel-*.json")) if runtime.exists() else []
    assert leftovers == [], f"connection files left behind: {leftovers}"


class SharedKernels:
    """One blocking KernelManager per kernel name (and pool), started on first use."""

    def __init__(self) -> None:
        self.managers: dict[tuple[str, str], KernelManager] = {}
        self.pids: list[int] = []

    def __call__(self, name: str, pool: str = "main") -> KernelManager:
        km = self.managers.get((name, pool))
        if km is None:
            km = KernelManager(name, **own_kernel_options(name))
            km.start()
            assert km.pid is not None
            self.managers[name, pool] = km
            self.pids.append(km.pid)
        # A shared kernel that died would make every later test fail for the wrong reason.
        if not km.is_alive():
            tail = km.process.output_tail() if km.process is not None else ""
            code = km.process.returncode if km.process is not None else None
            pytest.fail(f"the shared {name} kernel died (exit code {code}); its output:\n{tail}")
        return km

    def for_comms(self, name: str) -> KernelManager:
        """The kernel for comm tests: xeus-python 0.19 crashed (SIGSEGV in
        xeus::xserver::notify_shell_listener) on requests that came after these comm
        exchanges, so it gets an instance of its own that no other test relies on."""
        return self(name, "comms" if name == "xpython" else "main")

    def shutdown(self) -> None:
        errors: list[BaseException] = []
        for km in self.managers.values():
            try:
                km.shutdown()
            except Exception as exc:
                errors.append(exc)
        alive = [pid for pid in self.pids if not _wait_gone(pid)]
        assert alive == [], f"shared kernels left running: {alive}"
        assert errors == [], errors


@pytest.fixture(scope="module")
def shared(module_env: Path) -> Iterator[SharedKernels]:
    kernels = SharedKernels()
    try:
        yield kernels
    finally:
        kernels.shutdown()


@contextlib.asynccontextmanager
async def async_client(km: KernelManager, **kwargs: Any) -> AsyncIterator[AsyncKernelClient]:
    """A ready AsyncKernelClient of a shared kernel, made from its connection info."""
    assert km.connection_info is not None
    async with AsyncKernelClient(km.connection_info, **kwargs) as kc:
        await kc.wait_for_ready(timeout=T)
        yield kc


@contextlib.contextmanager
def blocking_client(km: KernelManager) -> Iterator[KernelClient]:
    """A ready KernelClient of a shared kernel, from the manager."""
    with km.client() as kc:
        kc.wait_for_ready(timeout=T)
        yield kc


# -- the execute matrix: one table, both twins --------------------------------------------------


@dataclass(frozen=True)
class Case:
    """Run ``code`` on ``kernel`` and ``check`` the ExecutionResult."""

    kernel: str
    name: str
    code: str
    check: Callable[[ExecutionResult], None]
    kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.kernel}-{self.name}"


def _ok(result: ExecutionResult) -> None:
    assert result.status == "ok", result.error


def _check_streams(result: ExecutionResult) -> None:
    _ok(result)
    assert result.stdout == "to out\n"
    assert result.stderr == "to err\n"


def _check_bash_streams(result: ExecutionResult) -> None:
    # bash_kernel runs bash on a pty: stderr and stdout are one stream, published as stdout.
    _ok(result)
    assert result.stdout == "to out\nto err\n"
    assert result.stderr == ""


def _check_execute_result(result: ExecutionResult) -> None:
    _ok(result)
    assert result.result is not None
    assert result.result.data["text/plain"] == "42"
    assert result.result.execution_count == result.execution_count
    assert result.outputs == [result.result]


def _check_display(result: ExecutionResult) -> None:
    _ok(result)
    [output] = result.outputs
    assert isinstance(output, DisplayData)
    assert output.data["text/html"].strip() == "<b>rich</b>"


def _check_update_display(result: ExecutionResult) -> None:
    _ok(result)
    display, between = result.outputs
    assert isinstance(display, DisplayData)
    assert display.display_id is not None
    assert display.data["text/plain"] == "'second'"
    assert between == Stream(name="stdout", text="between\n")


def _check_update_display_two_outputs(result: ExecutionResult) -> None:
    _ok(result)
    # Both outputs with the display_id hold what the last update sent.
    assert [type(o) for o in result.outputs] == [DisplayData, DisplayData]
    assert [o.data["text/plain"] for o in result.outputs] == ["'c'", "'c'"]  # type: ignore[union-attr]


def _check_bash_update_display(result: ExecutionResult) -> None:
    _ok(result)
    # bash_kernel sends a line's plain text before the rich content found in it, so the
    # order of the display and the stream is not fixed: check each on its own.
    [display] = [o for o in result.outputs if isinstance(o, DisplayData)]
    assert display.data["text/html"].strip() == "<i>second</i>"
    assert display.display_id is not None
    assert not any(isinstance(o, UpdateDisplayData) for o in result.outputs)
    assert result.stdout == "between\n"


def _check_cleared(result: ExecutionResult) -> None:
    _ok(result)
    assert result.outputs == [Stream(name="stdout", text="new\n")]


def _check_kept(result: ExecutionResult) -> None:
    # clear_output(wait=True) clears only when the next output arrives: none did.
    _ok(result)
    assert result.outputs == [Stream(name="stdout", text="kept\n")]


def _python_error(ename: str) -> Callable[[ExecutionResult], None]:
    def check(result: ExecutionResult) -> None:
        assert result.status == "error"
        error = result.error
        assert error is not None
        assert error.ename == ename
        assert error.evalue == "boom"
        assert any("boom" in line for line in error.traceback)
        assert result.outputs[-1] == error

    return check


def _check_bash_error(result: ExecutionResult) -> None:
    # bash_kernel reports a failing command by its exit status: no ename, no traceback.
    assert result.status == "error"
    assert result.error == Error(ename="", evalue="2", traceback=[])
    assert "No such file or directory" in result.stdout


def _check_user_expressions(result: ExecutionResult) -> None:
    _ok(result)
    double = result.user_expressions["double"]
    assert double["status"] == "ok"
    assert double["data"]["text/plain"] == "42"


def _check_payload(result: ExecutionResult) -> None:
    _ok(result)
    assert [(p["source"], p["text"]) for p in result.payload] == [("set_next_input", "next")]


IMPORT_DISPLAY = "from IPython.display import HTML, clear_output, display, update_display\n"
# bash_kernel remembers display ids for its whole life: a fresh one per run.
BASH_DISPLAY_ID = "id=d$RANDOM$RANDOM$RANDOM; "

CASES = [
    *(
        case
        for kernel in PYTHONS
        for case in (
            Case(
                kernel,
                "streams",
                "print('to out')\nimport sys\nprint('to err', file=sys.stderr)",
                _check_streams,
            ),
            Case(kernel, "execute-result", "6 * 7", _check_execute_result),
            Case(
                kernel, "display", IMPORT_DISPLAY + "display(HTML('<b>rich</b>'))", _check_display
            ),
            Case(
                kernel,
                "update-display",
                IMPORT_DISPLAY
                + "handle = display('first', display_id=True)\n"
                + "print('between')\n"
                + "handle.update('second')",
                _check_update_display,
            ),
            Case(
                kernel,
                "update-display-two-outputs",
                IMPORT_DISPLAY
                + "display('a', display_id='shared-id')\n"
                + "display('b', display_id='shared-id')\n"
                + "update_display('c', display_id='shared-id')",
                _check_update_display_two_outputs,
            ),
            Case(
                kernel,
                "clear-output",
                IMPORT_DISPLAY + "print('old')\nclear_output()\nprint('new')",
                _check_cleared,
            ),
            Case(
                kernel,
                "clear-output-wait",
                IMPORT_DISPLAY + "print('old')\nclear_output(wait=True)\nprint('new')",
                _check_cleared,
            ),
            Case(
                kernel,
                "clear-output-wait-nothing-after",
                IMPORT_DISPLAY + "print('kept')\nclear_output(wait=True)",
                _check_kept,
            ),
            Case(
                kernel,
                "error",
                "raise ValueError('boom')",
                # xeus-python 0.19 sends the repr of the class as ename.
                _python_error("ValueError" if kernel == "python3" else "<class 'ValueError'>"),
            ),
            Case(
                kernel,
                "user-expressions",
                "x = 21",
                _check_user_expressions,
                {"user_expressions": {"double": "x * 2"}},
            ),
        )
    ),
    Case("python3", "payload", "get_ipython().set_next_input('next')", _check_payload),
    # bash_kernel: no execute_result (it never sends one), no clear_output (no way to ask for
    # it from bash), no user_expressions; rich output only through its displayHTML & co.
    Case("bash", "streams", "echo to out; echo to err >&2", _check_bash_streams),
    Case("bash", "display", "echo '<b>rich</b>' | displayHTML", _check_display),
    Case(
        "bash",
        "update-display",
        BASH_DISPLAY_ID
        + "echo '<i>first</i>' | displayHTML $id; echo between; "
        + "echo '<i>second</i>' | displayHTML $id",
        _check_bash_update_display,
    ),
    Case("bash", "error", "ls /nonexistent-runtimelib-dir", _check_bash_error),
]


@pytest.mark.anyio
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
async def test_execute(case: Case, shared: SharedKernels) -> None:
    async with async_client(shared(case.kernel)) as kc:
        result = await kc.execute(case.code, timeout=T, **case.kwargs)
    case.check(result)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_execute_blocking(case: Case, shared: SharedKernels) -> None:
    with blocking_client(shared(case.kernel)) as kc:
        result = kc.execute(case.code, timeout=T, **case.kwargs)
    case.check(result)


# -- raise_on_error -------------------------------------------------------------------------------

FAILING = {
    "python3": ("raise ValueError('boom')", "ValueError: boom"),
    "xpython": ("raise ValueError('boom')", "<class 'ValueError'>: boom"),
    "bash": ("ls /nonexistent-runtimelib-dir", ": 2"),
}


def _check_execution_error(kernel: str, exc: ExecutionError) -> None:
    assert str(exc) == FAILING[kernel][1]
    assert exc.result.status == "error"
    assert exc.result.error is not None
    assert exc.traceback == exc.result.error.traceback
    if kernel != "bash":  # bash_kernel sends no traceback
        assert any("boom" in line for line in exc.traceback)


@pytest.mark.anyio
@pytest.mark.parametrize("kernel", KERNELS)
async def test_raise_on_error(kernel: str, shared: SharedKernels) -> None:
    async with async_client(shared(kernel)) as kc:
        with pytest.raises(ExecutionError) as info:
            await kc.execute(FAILING[kernel][0], raise_on_error=True, timeout=T)
        ok = await kc.execute(echo(kernel, "fine"), raise_on_error=True, timeout=T)
    _check_execution_error(kernel, info.value)
    assert ok.stdout == "fine\n"


@pytest.mark.parametrize("kernel", KERNELS)
def test_raise_on_error_blocking(kernel: str, shared: SharedKernels) -> None:
    with blocking_client(shared(kernel)) as kc:
        with pytest.raises(ExecutionError) as info:
            kc.execute(FAILING[kernel][0], raise_on_error=True, timeout=T)
        ok = kc.execute(echo(kernel, "fine"), raise_on_error=True, timeout=T)
    _check_execution_error(kernel, info.value)
    assert ok.stdout == "fine\n"


# -- stop_on_error: an execute queued behind a failing one ---------------------------------------

FAIL_SLOWLY = {
    "python3": "import time\ntime.sleep(0.3)\nraise ValueError('first')",
    "xpython": "import time\ntime.sleep(0.3)\nraise ValueError('first')",
    "bash": "sleep 0.3; false",
}
#: Whether the kernel aborts the executes queued behind an error (stop_on_error). xeus-python
#: 0.19 never does; worse, when a request is queued behind a failing execute it reports that
#: execute as "ok" without its error output (seen with jupyter_client too), so its first
#: result is not checked.
ABORTS_QUEUED = {"python3": True, "xpython": False, "bash": True}


def _check_stop_on_error(
    kernel: str, stop_on_error: bool, first: ExecutionResult, second: ExecutionResult
) -> None:
    if kernel != "xpython":
        assert first.status == "error"
    if stop_on_error and ABORTS_QUEUED[kernel]:
        assert second.status == "aborted"
        assert second.outputs == []
    else:
        assert second.status == "ok", second.error
        assert second.stdout == "second\n"


@pytest.mark.anyio
@pytest.mark.parametrize("stop_on_error", [True, False])
@pytest.mark.parametrize("kernel", KERNELS)
async def test_stop_on_error(kernel: str, stop_on_error: bool, shared: SharedKernels) -> None:
    results: dict[str, ExecutionResult] = {}

    async def run(key: str, kc: AsyncKernelClient, code: str, **kw: Any) -> None:
        results[key] = await kc.execute(code, timeout=T, **kw)

    async with async_client(shared(kernel)) as kc, anyio.create_task_group() as tg:
        tg.start_soon(lambda: run("first", kc, FAIL_SLOWLY[kernel], stop_on_error=stop_on_error))
        await anyio.sleep(0.1)  # sent first (trio does not promise to run tasks in order)
        tg.start_soon(run, "second", kc, echo(kernel, "second"))
    _check_stop_on_error(kernel, stop_on_error, results["first"], results["second"])


@pytest.mark.parametrize("stop_on_error", [True, False])
@pytest.mark.parametrize("kernel", KERNELS)
def test_stop_on_error_blocking(kernel: str, stop_on_error: bool, shared: SharedKernels) -> None:
    with blocking_client(shared(kernel)) as kc, ThreadPoolExecutor(2) as pool:
        first = pool.submit(kc.execute, FAIL_SLOWLY[kernel], stop_on_error=stop_on_error, timeout=T)
        time.sleep(0.1)
        second = pool.submit(kc.execute, echo(kernel, "second"), timeout=T)
        _check_stop_on_error(kernel, stop_on_error, first.result(T), second.result(T))


# -- input() --------------------------------------------------------------------------------------
# bash_kernel has no stdin support: `read` waits on its pty forever, so no input tests for it.

INPUT_CODE = (
    "name = input('name: ')\n"
    "import getpass\n"
    "secret = getpass.getpass('password: ')\n"
    "print(name, len(secret))"
)
ANSWERS = {False: "Ada", True: "s3cret"}
EXPECTED_PROMPTS = [("name: ", False), ("password: ", True)]
#: What input() raises when the frontend says it cannot answer.
NO_STDIN = {"python3": "StdinNotImplementedError", "xpython": "<class 'RuntimeError'>"}


@pytest.mark.anyio
@pytest.mark.parametrize("kernel", PYTHONS)
async def test_input_with_handler(kernel: str, shared: SharedKernels) -> None:
    prompts: list[tuple[str, bool]] = []

    async def answer(prompt: str, password: bool) -> str:  # an awaitable handler
        prompts.append((prompt, password))
        await anyio.sleep(0)
        return ANSWERS[password]

    async with async_client(shared(kernel)) as kc:
        result = await kc.execute(INPUT_CODE, input=answer, timeout=T)
    _ok(result)
    assert result.stdout == "Ada 6\n"
    assert prompts == EXPECTED_PROMPTS


@pytest.mark.parametrize("kernel", PYTHONS)
def test_input_with_handler_blocking(kernel: str, shared: SharedKernels) -> None:
    prompts: list[tuple[str, bool]] = []

    def answer(prompt: str, password: bool) -> str:
        prompts.append((prompt, password))
        return ANSWERS[password]

    with blocking_client(shared(kernel)) as kc:
        result = kc.execute(INPUT_CODE, input=answer, timeout=T)
    _ok(result)
    assert result.stdout == "Ada 6\n"
    assert prompts == EXPECTED_PROMPTS


def _check_no_stdin(kernel: str, result: ExecutionResult) -> None:
    assert result.status == "error"
    assert result.error is not None
    assert result.error.ename == NO_STDIN[kernel]


@pytest.mark.anyio
@pytest.mark.parametrize("kernel", PYTHONS)
async def test_input_without_handler(kernel: str, shared: SharedKernels) -> None:
    async with async_client(shared(kernel)) as kc:
        result = await kc.execute("input('name: ')", timeout=T)
    _check_no_stdin(kernel, result)


@pytest.mark.parametrize("kernel", PYTHONS)
def test_input_without_handler_blocking(kernel: str, shared: SharedKernels) -> None:
    with blocking_client(shared(kernel)) as kc:
        result = kc.execute("input('name: ')", timeout=T)
    _check_no_stdin(kernel, result)


# -- interrupt (own kernels) ----------------------------------------------------------------------
# python3: SIGINT from the manager, or interrupt_request from the client (ipykernel answers it
# by signalling itself); bash: SIGINT, bash_kernel interrupts bash and answers "abort" (its
# spelling; the spec says "aborted"); xpython: the 0.19 wheel exits on SIGINT (and ignores
# interrupt_request), so the pending execute must fail with KernelDiedError at once.

INTERRUPTS = [
    ("python3", "manager"),
    ("python3", "message"),
    ("bash", "manager"),
    ("xpython", "manager"),
]


def on_own_kernels(cases: list[tuple[str, ...]]) -> list[tuple[str, ...]]:
    """``(anyio_backend, *case)`` for the async tests that start kernels of their own.

    bash_kernel spends 2.6 s starting (pexpect pauses 50 ms before each of the ~45 lines it
    feeds bash), so it runs on asyncio only; trio's part, the client and manager code, is
    the same for every kernel and runs with python3 and xpython.
    """
    return [
        (backend, *case)
        for case in cases
        for backend in ("asyncio", "trio")
        if case[0] != "bash" or backend == "asyncio"
    ]


def _check_interrupted(kernel: str, result: ExecutionResult) -> None:
    if kernel == "python3":
        assert result.status == "error"
        assert result.error is not None
        assert result.error.ename == "KeyboardInterrupt"
    else:
        assert result.status == "abort"
    assert result.stdout.startswith("sleeping\n")


@pytest.mark.anyio
@pytest.mark.usefixtures("jupyter_env")
@pytest.mark.parametrize(("anyio_backend", "kernel", "via"), on_own_kernels(INTERRUPTS))
async def test_interrupt(kernel: str, via: str, assert_gone: list[int]) -> None:
    async with AsyncKernelManager(kernel, **own_kernel_options(kernel)) as km:
        assert km.pid is not None
        assert_gone.append(km.pid)
        async with km.client() as kc:
            await kc.wait_for_ready(timeout=T)
            started = anyio.Event()
            interrupted: list[object] = []

            def on_output(output: Output) -> None:
                if isinstance(output, Stream) and "sleeping" in output.text:
                    started.set()

            async def interrupt_once_started() -> None:
                await started.wait()
                await anyio.sleep(0.2)
                interrupted.append(
                    await km.interrupt() if via == "manager" else await kc.interrupt()
                )

            code = sleep_code(kernel, 100, announce=True)
            async with anyio.create_task_group() as tg:
                tg.start_soon(interrupt_once_started)
                if kernel == "xpython":
                    with pytest.raises(KernelDiedError):
                        await kc.execute(code, on_output=on_output, timeout=PROMPT)
                    assert not km.is_alive()
                else:
                    result = await kc.execute(code, on_output=on_output, timeout=PROMPT)
                    _check_interrupted(kernel, result)
                    again = await kc.execute(echo(kernel, "alive"), timeout=T)
                    assert again.stdout == "alive\n"
            assert len(interrupted) == 1
            if via == "message":
                assert getattr(interrupted[0], "status", None) == "ok"


@pytest.mark.usefixtures("jupyter_env")
@pytest.mark.parametrize(("kernel", "via"), INTERRUPTS)
def test_interrupt_blocking(kernel: str, via: str, assert_gone: list[int]) -> None:
    with KernelManager(kernel, **own_kernel_options(kernel)) as km:
        assert km.pid is not None
        assert_gone.append(km.pid)
        with km.client() as kc:
            kc.wait_for_ready(timeout=T)
            interrupted: list[object] = []
            timers: list[threading.Timer] = []

            def interrupt() -> None:
                interrupted.append(km.interrupt() if via == "manager" else kc.interrupt())

            def on_output(output: Output) -> None:
                if not timers and isinstance(output, Stream) and "sleeping" in output.text:
                    timers.append(threading.Timer(0.2, interrupt))
                    timers[0].start()

            code = sleep_code(kernel, 100, announce=True)
            try:
                if kernel == "xpython":
                    with pytest.raises(KernelDiedError):
                        kc.execute(code, on_output=on_output, timeout=PROMPT)
                    assert not km.is_alive()
                else:
                    result = kc.execute(code, on_output=on_output, timeout=PROMPT)
                    _check_interrupted(kernel, result)
                    assert kc.execute(echo(kernel, "alive"), timeout=T).stdout == "alive\n"
            finally:
                for timer in timers:
                    timer.join(T)
            assert len(interrupted) == 1
            if via == "message":
                assert getattr(interrupted[0], "status", None) == "ok"


# -- completion, inspection, history, is_complete ----------------------------------------------
# bash_kernel implements completion only: inspect answers found=False, history is empty and
# is_complete is always "unknown" (ipykernel's base class defaults), so those have no tests.

COMPLETIONS = {"python3": ("pri", "print"), "xpython": ("pri", "print"), "bash": ("ech", "echo")}


def _check_completion(kernel: str, at_end: Any, mid: Any) -> None:
    prefix, word = COMPLETIONS[kernel]
    assert at_end.status == "ok"
    assert word in at_end.matches
    assert (at_end.cursor_start, at_end.cursor_end) == (0, len(prefix))
    assert word in mid.matches
    assert mid.cursor_end == len(prefix)


@pytest.mark.anyio
@pytest.mark.parametrize("kernel", KERNELS)
async def test_complete(kernel: str, shared: SharedKernels) -> None:
    prefix = COMPLETIONS[kernel][0]
    async with async_client(shared(kernel)) as kc:
        at_end = await kc.complete(prefix, timeout=T)
        mid = await kc.complete(prefix + " 1", cursor_pos=len(prefix), timeout=T)
    _check_completion(kernel, at_end, mid)


@pytest.mark.parametrize("kernel", KERNELS)
def test_complete_blocking(kernel: str, shared: SharedKernels) -> None:
    prefix = COMPLETIONS[kernel][0]
    with blocking_client(shared(kernel)) as kc:
        at_end = kc.complete(prefix, timeout=T)
        mid = kc.complete(prefix + " 1", cursor_pos=len(prefix), timeout=T)
    _check_completion(kernel, at_end, mid)


def _check_inspection(found: Any, inside: Any, missing: Any) -> None:
    for reply in (found, inside):
        assert reply.status == "ok"
        assert reply.found is True
        # ipykernel sends text/plain, xeus-python text/html and more
        assert "print" in " ".join(reply.data.values()).lower()
    assert missing.found is False


@pytest.mark.anyio
@pytest.mark.parametrize("kernel", PYTHONS)
async def test_inspect(kernel: str, shared: SharedKernels) -> None:
    async with async_client(shared(kernel)) as kc:
        found = await kc.inspect("print", timeout=T)
        inside = await kc.inspect("print(1)", cursor_pos=3, detail_level=1, timeout=T)
        missing = await kc.inspect("no_such_name_anywhere", timeout=T)
    _check_inspection(found, inside, missing)


@pytest.mark.parametrize("kernel", PYTHONS)
def test_inspect_blocking(kernel: str, shared: SharedKernels) -> None:
    with blocking_client(shared(kernel)) as kc:
        found = kc.inspect("print", timeout=T)
        inside = kc.inspect("print(1)", cursor_pos=3, detail_level=1, timeout=T)
        missing = kc.inspect("no_such_name_anywhere", timeout=T)
    _check_inspection(found, inside, missing)


def _check_history(marker: str, reply: Any) -> None:
    assert reply.status == "ok"
    assert 1 <= len(reply.history) <= 3
    inputs = [entry[2] for entry in reply.history]
    assert inputs[-1] == marker


@pytest.mark.anyio
@pytest.mark.parametrize("kernel", PYTHONS)
async def test_history(kernel: str, shared: SharedKernels) -> None:
    marker = f"marker_{uuid.uuid4().hex} = 1"
    async with async_client(shared(kernel)) as kc:
        _ok(await kc.execute("x = 1", timeout=T))
        _ok(await kc.execute(marker, timeout=T))
        reply = await kc.history(hist_access_type="tail", n=3, timeout=T)
    _check_history(marker, reply)


@pytest.mark.parametrize("kernel", PYTHONS)
def test_history_blocking(kernel: str, shared: SharedKernels) -> None:
    marker = f"marker_{uuid.uuid4().hex} = 1"
    with blocking_client(shared(kernel)) as kc:
        _ok(kc.execute("x = 1", timeout=T))
        _ok(kc.execute(marker, timeout=T))
        reply = kc.history(hist_access_type="tail", n=3, timeout=T)
    _check_history(marker, reply)


IS_COMPLETE = [
    ("x = 1", "complete", ""),
    ("for i in range(3):", "incomplete", "    "),
    ("1 +* 2", "invalid", ""),
]


@pytest.mark.anyio
@pytest.mark.parametrize("kernel", PYTHONS)
async def test_is_complete(kernel: str, shared: SharedKernels) -> None:
    async with async_client(shared(kernel)) as kc:
        replies = [await kc.is_complete(code, timeout=T) for code, _, _ in IS_COMPLETE]
    assert [(r.status, r.indent) for r in replies] == [(s, i) for _, s, i in IS_COMPLETE]


@pytest.mark.parametrize("kernel", PYTHONS)
def test_is_complete_blocking(kernel: str, shared: SharedKernels) -> None:
    with blocking_client(shared(kernel)) as kc:
        replies = [kc.is_complete(code, timeout=T) for code, _, _ in IS_COMPLETE]
    assert [(r.status, r.indent) for r in replies] == [(s, i) for _, s, i in IS_COMPLETE]


# -- kernel_info, the raw request, debug, subshells ---------------------------------------------

IMPLEMENTATIONS = {
    "python3": ("ipython", "python"),
    "xpython": ("xeus-python", "python"),
    "bash": ("bash_kernel", "bash"),
}


def _check_kernel_info(kernel: str, info: Any, raw: Message[Content]) -> None:
    assert (info.implementation, info.language_info.name) == IMPLEMENTATIONS[kernel]
    assert info.protocol_version.startswith("5.")
    assert raw.msg_type == "kernel_info_reply"
    assert raw.channel == "shell"
    # IPython 9 puts a random "Tip: ..." into every banner: the rest must be the same reply.
    assert isinstance(raw.content, KernelInfoReply)
    assert raw.content.banner.split("Tip:")[0] == info.banner.split("Tip:")[0]
    assert msgspec.structs.replace(raw.content, banner="") == msgspec.structs.replace(
        info, banner=""
    )


@pytest.mark.anyio
@pytest.mark.parametrize("kernel", KERNELS)
async def test_kernel_info_and_raw_request(kernel: str, shared: SharedKernels) -> None:
    async with async_client(shared(kernel)) as kc:
        info = await kc.kernel_info(timeout=T)
        raw = await kc.request(KernelInfoRequest(), timeout=T)
    _check_kernel_info(kernel, info, raw)


@pytest.mark.parametrize("kernel", KERNELS)
def test_kernel_info_and_raw_request_blocking(kernel: str, shared: SharedKernels) -> None:
    with blocking_client(shared(kernel)) as kc:
        info = kc.kernel_info(timeout=T)
        raw = kc.request(KernelInfoRequest(), timeout=T)
    _check_kernel_info(kernel, info, raw)


# bash_kernel lists "debugger" in supported_features (inherited from ipykernel's base class)
# but never answers a debug_request: no debug test for it.


def _check_debug_info(reply: Any) -> None:
    assert reply.success is True
    assert reply.command == "debugInfo"
    assert reply.type == "response"
    assert reply.body["isStarted"] is False


@pytest.mark.anyio
@pytest.mark.parametrize("kernel", PYTHONS)
async def test_debug_request(kernel: str, shared: SharedKernels) -> None:
    async with async_client(shared(kernel)) as kc:
        _check_debug_info(await kc.debug_request("debugInfo", timeout=T))


@pytest.mark.parametrize("kernel", PYTHONS)
def test_debug_request_blocking(kernel: str, shared: SharedKernels) -> None:
    with blocking_client(shared(kernel)) as kc:
        _check_debug_info(kc.debug_request("debugInfo", timeout=T))


# Subshells: ipykernel 7 and our Python kernel. xeus-python 0.19 does not list "kernel
# subshells"; bash_kernel lists it (ipykernel's base class) but runs everything through one
# bash process, so running code in a subshell next to the main shell would interleave both in
# that one bash.
# The subshell's execute stays out of the history: IPython numbers history lines per
# session, and two executes at once would collide ("Session/line number was not unique").
SUBSHELL_MAIN = "import time\ntime.sleep(1)\nprint('main done')"
SUBSHELL_CODE = "import threading\nprint(threading.current_thread().name)"


@pytest.mark.anyio
@pytest.mark.parametrize("kernel", ["python3", "runtimelib-python"])
async def test_subshells(kernel: str, shared: SharedKernels) -> None:
    order: list[str] = []
    async with async_client(shared(kernel)) as kc:
        subshell = await kc.create_subshell(timeout=T)
        assert subshell in await kc.list_subshells(timeout=T)

        async def main() -> None:
            result = await kc.execute(SUBSHELL_MAIN, timeout=T)
            assert result.stdout == "main done\n"
            order.append("main")

        async with anyio.create_task_group() as tg:
            tg.start_soon(main)
            await anyio.sleep(0.2)
            inside = await kc.execute(
                SUBSHELL_CODE, subshell_id=subshell, store_history=False, timeout=T
            )
            order.append("subshell")
        await kc.delete_subshell(subshell, timeout=T)
        assert subshell not in await kc.list_subshells(timeout=T)
    # The subshell ran while the main shell was still busy.
    assert order == ["subshell", "main"]
    assert inside.stdout == f"subshell-{subshell}\n"


@pytest.mark.parametrize("kernel", ["python3", "runtimelib-python"])
def test_subshells_blocking(kernel: str, shared: SharedKernels) -> None:
    with blocking_client(shared(kernel)) as kc, ThreadPoolExecutor(1) as pool:
        subshell = kc.create_subshell(timeout=T)
        assert subshell in kc.list_subshells(timeout=T)
        main = pool.submit(kc.execute, SUBSHELL_MAIN, timeout=T)
        time.sleep(0.2)
        inside = kc.execute(SUBSHELL_CODE, subshell_id=subshell, store_history=False, timeout=T)
        assert not main.done()  # the subshell ran while the main shell was still busy
        assert main.result(T).stdout == "main done\n"
        kc.delete_subshell(subshell, timeout=T)
        assert subshell not in kc.list_subshells(timeout=T)
    assert inside.stdout == f"subshell-{subshell}\n"


# -- comms ----------------------------------------------------------------------------------------
# A kernel-side target for comms the client opens: only ipykernel (xeus-python 0.19's
# get_ipython().kernel.comm_manager is not the manager its comm_open handler uses, so a
# target registered there is never reached). Comms the kernel opens: ipykernel and
# xeus-python (both provide comm.create_comm). bash_kernel has no comms.

ECHO_TARGET = """
def _echo_target(comm, open_msg):
    @comm.on_msg
    def _echo(msg):
        comm.send({"echo": msg["content"]["data"]})
    comm.send({"opened": open_msg["content"]["data"]})

get_ipython().kernel.comm_manager.register_target("echo", _echo_target)
"""
KERNEL_OPENS = """
from comm import create_comm
kernel_comm = create_comm(target_name={target!r}, data={{"from": "kernel"}})
kernel_comm_log = []
kernel_comm.on_msg(lambda msg: kernel_comm_log.append(msg["content"]["data"]))
kernel_comm.on_close(lambda msg: kernel_comm_log.append("closed"))
kernel_comm.send({{"hello": "client"}})
"""


#: Whether the client answers the kernel's comm_msg from its handler, i.e. while the execute
#: that sent it is still running. xeus-python 0.19 now and then never replies to an execute
#: during which a comm message arrives on shell (1-2 in 100, with a plain pyzmq client too;
#: the kernel keeps serving other requests), so there the client answers once it is done.
REPLY_FROM_HANDLER = {"python3": True, "xpython": False}


def _data(messages: list[Message[Content]]) -> list[Any]:
    return [getattr(m.content, "data", None) for m in messages]


@pytest.mark.anyio
async def test_comm_echo(shared: SharedKernels) -> None:
    async with async_client(shared.for_comms("python3")) as kc:
        _ok(await kc.execute(ECHO_TARGET, timeout=T))
        echoed = anyio.Event()
        received: list[Message[Content]] = []

        def on_msg(message: Message[Content]) -> None:
            received.append(message)
            if "echo" in getattr(message.content, "data", {}):
                echoed.set()

        comm = kc.comms.open("echo", {"hello": 1})
        comm.on_msg(on_msg)
        comm.send({"ping": 2})
        with anyio.fail_after(T):
            await echoed.wait()
        info = await kc.comm_info(target_name="echo", timeout=T)
        comm.close()
    assert received[-1].content.data == {"echo": {"ping": 2}}  # type: ignore[attr-defined]
    assert _data(comm.messages) == [{"opened": {"hello": 1}}, {"echo": {"ping": 2}}]
    assert info.comms[comm.comm_id] == {"target_name": "echo"}
    assert comm.closed


def test_comm_echo_blocking(shared: SharedKernels) -> None:
    with blocking_client(shared.for_comms("python3")) as kc:
        _ok(kc.execute(ECHO_TARGET, timeout=T))
        echoed = threading.Event()
        received: list[Message[Content]] = []

        def on_msg(message: Message[Content]) -> None:
            received.append(message)
            if "echo" in getattr(message.content, "data", {}):
                echoed.set()

        comm = kc.comms.open("echo", {"hello": 1})
        comm.on_msg(on_msg)
        comm.send({"ping": 2})
        assert echoed.wait(T)
        info = kc.comm_info(target_name="echo", timeout=T)
        comm.close()
    assert received[-1].content.data == {"echo": {"ping": 2}}  # type: ignore[attr-defined]
    assert _data(comm.messages) == [{"opened": {"hello": 1}}, {"echo": {"ping": 2}}]
    assert info.comms[comm.comm_id] == {"target_name": "echo"}


def _check_kernel_opened(opened: list[tuple[Comm, Message[CommOpen]]], log: str) -> None:
    [(comm, open_msg)] = opened
    assert open_msg.content.target_name == comm.target_name
    assert open_msg.content.data == {"from": "kernel"}
    assert _data(comm.messages) == [{"hello": "client"}]
    # The kernel side got the client's reply, then the close.
    assert log == "[{'reply': 'from client'}, 'closed']\n"


@pytest.mark.anyio
@pytest.mark.parametrize("kernel", PYTHONS)
async def test_kernel_opens_comm_to_registered_target(kernel: str, shared: SharedKernels) -> None:
    target = f"client-{uuid.uuid4().hex[:8]}"
    opened: list[tuple[Comm, Message[CommOpen]]] = []

    def on_open(comm: Comm, message: Message[CommOpen]) -> None:
        opened.append((comm, message))
        if REPLY_FROM_HANDLER[kernel]:
            comm.on_msg(lambda msg: comm.send({"reply": "from client"}))

    async with async_client(shared.for_comms(kernel)) as kc:
        kc.comms.register_target(target, on_open)
        _ok(await kc.execute(KERNEL_OPENS.format(target=target), timeout=T))
        assert opened
        comm = opened[0][0]
        if not REPLY_FROM_HANDLER[kernel]:
            comm.send({"reply": "from client"})
        comm.close()
        # The reply and the close left before this execute: the kernel has handled them.
        log = await kc.execute("print(kernel_comm_log)", timeout=T)
    _check_kernel_opened(opened, log.stdout)


@pytest.mark.parametrize("kernel", PYTHONS)
def test_kernel_opens_comm_to_registered_target_blocking(
    kernel: str, shared: SharedKernels
) -> None:
    target = f"client-{uuid.uuid4().hex[:8]}"
    opened: list[tuple[Comm, Message[CommOpen]]] = []

    def on_open(comm: Comm, message: Message[CommOpen]) -> None:
        opened.append((comm, message))
        if REPLY_FROM_HANDLER[kernel]:
            comm.on_msg(lambda msg: comm.send({"reply": "from client"}))

    with blocking_client(shared.for_comms(kernel)) as kc:
        kc.comms.register_target(target, on_open)
        _ok(kc.execute(KERNEL_OPENS.format(target=target), timeout=T))
        assert opened
        comm = opened[0][0]
        if not REPLY_FROM_HANDLER[kernel]:
            comm.send({"reply": "from client"})
        comm.close()
        log = kc.execute("print(kernel_comm_log)", timeout=T)
    _check_kernel_opened(opened, log.stdout)


#: The kernel opens a comm to a target the client never registered. ipykernel does it during
#: the execute, so the client's comm_close arrives while the execute runs. xeus-python does it
#: from a timer thread just after the execute: it loses the reply of an execute during which a
#: shell message arrives (see REPLY_FROM_HANDLER), and this comm_close would be one.
UNREGISTERED = {
    "python3": KERNEL_OPENS.format(target="nobody-listens-here"),
    "xpython": """
import threading
from comm import create_comm
kernel_comm_log = []

def _open_later():
    global kernel_comm
    kernel_comm = create_comm(target_name="nobody-listens-here", data={"from": "kernel"})
    kernel_comm.on_close(lambda msg: kernel_comm_log.append("closed"))

threading.Timer(0.05, _open_later).start()
""",
}
#: How long xeus-python's timer and the comm_close round trip may take.
OPEN_LATER_WAIT = {"python3": 0.0, "xpython": 0.4}


@pytest.mark.anyio
@pytest.mark.parametrize("kernel", PYTHONS)
async def test_kernel_opens_comm_to_unknown_target(kernel: str, shared: SharedKernels) -> None:
    async with async_client(shared.for_comms(kernel)) as kc:
        _ok(await kc.execute(UNREGISTERED[kernel], timeout=T))
        await anyio.sleep(OPEN_LATER_WAIT[kernel])
        # The client answered the comm_open with comm_close as soon as it arrived, before this
        # execute went out: the kernel has handled the close.
        log = await kc.execute("print(kernel_comm_log)", timeout=T)
        assert kc.comms.comms == {}
    assert log.stdout == "['closed']\n"


@pytest.mark.parametrize("kernel", PYTHONS)
def test_kernel_opens_comm_to_unknown_target_blocking(kernel: str, shared: SharedKernels) -> None:
    with blocking_client(shared.for_comms(kernel)) as kc:
        _ok(kc.execute(UNREGISTERED[kernel], timeout=T))
        time.sleep(OPEN_LATER_WAIT[kernel])
        log = kc.execute("print(kernel_comm_log)", timeout=T)
        assert kc.comms.comms == {}
    assert log.stdout == "['closed']\n"


# -- two clients on one kernel -------------------------------------------------------------------


def _slow_echo(kernel: str, text: str) -> str:
    if kernel == "bash":
        return f"sleep 0.3; echo {text}"
    return f"import time\ntime.sleep(0.3)\nprint({text!r})"


@pytest.mark.anyio
@pytest.mark.parametrize("kernel", KERNELS)
async def test_two_clients_get_only_their_own_outputs(kernel: str, shared: SharedKernels) -> None:
    km = shared(kernel)
    results: dict[str, ExecutionResult] = {}

    async def run(name: str, kc: AsyncKernelClient) -> None:
        results[name] = await kc.execute(_slow_echo(kernel, f"from {name}"), timeout=T)

    async with async_client(km) as a, async_client(km) as b, anyio.create_task_group() as tg:
        tg.start_soon(run, "a", a)
        tg.start_soon(run, "b", b)
    assert results["a"].outputs == [Stream(name="stdout", text="from a\n")]
    assert results["b"].outputs == [Stream(name="stdout", text="from b\n")]
    assert {results["a"].execution_count, results["b"].execution_count} != {None}


@pytest.mark.parametrize("kernel", KERNELS)
def test_two_clients_get_only_their_own_outputs_blocking(
    kernel: str, shared: SharedKernels
) -> None:
    km = shared(kernel)
    with blocking_client(km) as a, blocking_client(km) as b, ThreadPoolExecutor(2) as pool:
        fa = pool.submit(a.execute, _slow_echo(kernel, "from a"), timeout=T)
        fb = pool.submit(b.execute, _slow_echo(kernel, "from b"), timeout=T)
        ra, rb = fa.result(T), fb.result(T)
    assert ra.outputs == [Stream(name="stdout", text="from a\n")]
    assert rb.outputs == [Stream(name="stdout", text="from b\n")]


#: Whether the execute_reply comes after the outputs in what a client yields. bash_kernel sends
#: it after all outputs are out. xeus-python publishes iopub through one more thread, so its last
#: outputs are still on their way when the reply arrives: a client yields the reply before them
#: in most runs (and the kernel itself sends it first now and then). ipykernel 7 publishes
#: through its IOPub thread too: on a loaded machine (four test workers on two cores) its
#: execute_result reached the client after the reply.
REPLY_AFTER_OUTPUTS = {"python3": False, "xpython": False, "bash": True}


def _check_order(
    kernel: str, messages: list[Message[Content]], *, reply_last: bool | None = None
) -> list[Content]:
    """Check the messages one execute yields are in order; return its outputs.

    ``reply_last``: whether the reply must be among the last two (default: per kernel).
    """
    assert len({m.parent_id for m in messages}) == 1  # all ours: nothing foreign leaked in
    shell = [m for m in messages if m.channel == "shell"]
    iopub = [m for m in messages if m.channel == "iopub"]
    assert [m.msg_type for m in shell] == ["execute_reply"]
    # IOPub in the order the kernel published it: busy, the code, the outputs, idle.
    assert iopub[0].content == Status(execution_state="busy")
    assert iopub[1].msg_type == "execute_input"
    assert iopub[-1].content == Status(execution_state="idle")
    assert Status(execution_state="idle") not in [m.content for m in iopub[:-1]]
    # The stream ends once it has both the reply and the idle status.
    assert messages[-1] in (shell[0], iopub[-1])
    if REPLY_AFTER_OUTPUTS[kernel] if reply_last is None else reply_last:
        assert {m.msg_type for m in messages[-2:]} == {"execute_reply", "status"}
    return [m.content for m in iopub[2:-1]]


def _two_part(kernel: str) -> str:
    if kernel == "bash":
        return "echo one; sleep 0.3; echo two"
    return "import time\nprint('one', flush=True)\ntime.sleep(0.3)\nprint('two')"


def _check_first_client(kernel: str, messages: list[Message[Content]]) -> None:
    outputs = _check_order(kernel, messages)
    assert "".join(o.text for o in outputs if isinstance(o, Stream)) == "one\ntwo\n"
    reply = next(m.content for m in messages if m.msg_type == "execute_reply")
    assert reply.status == "ok"  # type: ignore[attr-defined]


@pytest.mark.anyio
@pytest.mark.parametrize("kernel", KERNELS)
async def test_second_client_connecting_mid_execution(kernel: str, shared: SharedKernels) -> None:
    km = shared(kernel)
    messages: list[Message[Content]] = []
    connected = False
    async with async_client(km) as first:
        async for message in first.stream(_two_part(kernel), timeout=T):
            messages.append(message)
            if isinstance(message.content, Stream) and not connected:
                connected = True
                async with AsyncKernelClient(km.connection_info) as second:  # type: ignore[arg-type]
                    await anyio.sleep(0.1)  # its subscription reaches the kernel mid-execution
                    await second.wait_for_ready(timeout=T)
                    late = await second.execute(echo(kernel, "second"), timeout=T)
                assert late.stdout == "second\n"
    assert connected
    _check_first_client(kernel, messages)


@pytest.mark.parametrize("kernel", KERNELS)
def test_second_client_connecting_mid_execution_blocking(
    kernel: str, shared: SharedKernels
) -> None:
    km = shared(kernel)
    messages: list[Message[Content]] = []
    connected = False
    with blocking_client(km) as first:
        for message in first.stream(_two_part(kernel), timeout=T):
            messages.append(message)
            if isinstance(message.content, Stream) and not connected:
                connected = True
                with KernelClient(km.connection_info) as second:  # type: ignore[arg-type]
                    time.sleep(0.1)
                    second.wait_for_ready(timeout=T)
                    late = second.execute(echo(kernel, "second"), timeout=T)
                assert late.stdout == "second\n"
    assert connected
    _check_first_client(kernel, messages)


# -- what real kernels send is not dropped -----------------------------------------------------


def _dropped(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()]


@pytest.mark.anyio
@pytest.mark.parametrize("kernel", KERNELS)
async def test_no_message_of_a_real_kernel_is_dropped(
    kernel: str, shared: SharedKernels, caplog: pytest.LogCaptureFixture
) -> None:
    # xeus-python publishes iopub_welcome (null parent_header, null metadata) to every
    # subscriber whenever one subscribes: the second client makes the first one get one too.
    caplog.set_level(logging.WARNING, logger="runtimelib")
    km = shared(kernel)
    async with async_client(km) as first:
        _ok(await first.execute(echo(kernel, "x"), timeout=T))
        async with async_client(km) as second:
            _ok(await second.execute(echo(kernel, "y"), timeout=T))
        _ok(await first.execute(echo(kernel, "z"), timeout=T))
    assert _dropped(caplog) == []


@pytest.mark.parametrize("kernel", KERNELS)
def test_no_message_of_a_real_kernel_is_dropped_blocking(
    kernel: str, shared: SharedKernels, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="runtimelib")
    km = shared(kernel)
    with blocking_client(km) as first:
        _ok(first.execute(echo(kernel, "x"), timeout=T))
        with blocking_client(km) as second:
            _ok(second.execute(echo(kernel, "y"), timeout=T))
        _ok(first.execute(echo(kernel, "z"), timeout=T))
    assert _dropped(caplog) == []


# -- a send must not hide a message that already arrived -----------------------------------------
# A zmq socket's file descriptor is edge-triggered: any operation on the socket (a send too)
# consumes the signal that a message arrived, after which only ZMQ_EVENTS tells it is there.
# Here the reply arrives while the event loop is blocked (as by any synchronous code in a
# coroutine, or a comm handler), then a comm message goes out on the same shell socket
# before the loop runs again: the client must still see the reply.

BRIEF_WORK = {
    "python3": "import time; time.sleep(0.05)",
    "xpython": "import time; time.sleep(0.05)",
}
BRIEF_WORK["bash"] = "sleep 0.05"


@pytest.mark.anyio
@pytest.mark.parametrize("kernel", KERNELS)
async def test_a_send_does_not_hide_a_reply_that_already_arrived(
    kernel: str, shared: SharedKernels
) -> None:
    async with async_client(shared.for_comms(kernel)) as kc:
        messages = kc.stream(BRIEF_WORK[kernel], timeout=2)
        first = await messages.__anext__()  # the request is out: the kernel is busy with it
        time.sleep(0.6)  # blocks the event loop while the kernel replies
        kc.comms.open("nobody-listens-here")  # a message out on the shell socket, no reply
        rest = [m async for m in messages]
    # Reply and iopub messages were all waiting when the loop ran again: any order across
    # the two sockets is fair, within each it must hold.
    _check_order(kernel, [first, *rest], reply_last=False)


@pytest.mark.parametrize("kernel", KERNELS)
def test_a_send_does_not_hide_a_reply_that_already_arrived_blocking(
    kernel: str, shared: SharedKernels
) -> None:
    with blocking_client(shared.for_comms(kernel)) as kc:
        messages = kc.stream(BRIEF_WORK[kernel], timeout=2)
        first = next(messages)
        time.sleep(0.6)
        kc.comms.open("nobody-listens-here")
        rest = list(messages)
    _check_order(kernel, [first, *rest], reply_last=False)


# -- a flood of output is never lost -------------------------------------------------------------
# The kernel prints as fast as it can and the client must take every line, in order, also when
# its own thread stops reading for a while in the middle of the flood: nothing the kernel sent
# may be lost on the client's side, and the client must keep up so that the kernel has no
# reason to drop.
#
# A real kernel's PUB socket drops output once 1,000 messages wait for one subscriber (its
# default high-water mark), and that can happen with any reader: when the kernel's own
# publishing threads are starved of CPU on this 2-core machine, a plain pyzmq reader lost lines
# of bash_kernel's 20,000-line flood in 2 of 10 runs, and xeus-python dropped runs of a few
# hundred lines in 5 of 160 floods read by the async client (and in none of 25 read by plain
# pyzmq: too few runs to tell the two apart). So the floods from real kernels stay under that
# mark, where any loss is the client's. The 20,000-line floods go to runtimelib-python, whose
# iopub never drops (no high-water mark), so every line it does not deliver is the client's
# fault; ipykernel batches its prints into a few messages, so its 20,000 lines are safe too.

FLOODS = {
    "runtimelib-python": ("for i in range({n}): print(i, flush=True)", 20_000),
    "python3": ("for i in range({n}): print(i)", 20_000),
    # Two messages a line (the text, then its newline): 500 messages, half the mark.
    "xpython": ("for i in range({n}): print(i)", 250),
    "bash": ("seq 0 {last}", 900),
}


def _flood(kernel: str) -> str:
    code, lines = FLOODS[kernel]
    return code.format(n=lines, last=lines - 1)


def _check_flood(kernel: str, result: ExecutionResult) -> None:
    """Every line of the flood arrived, in order (bash_kernel reads bash through a pty and now
    and then leaves the terminal's carriage return of a line break that fell between two
    reads). A failure names the lines that are missing."""
    _ok(result)
    lines = FLOODS[kernel][1]
    text = result.stdout.replace("\r\n", "\n") if kernel == "bash" else result.stdout
    if text != "".join(f"{i}\n" for i in range(lines)):
        got = text.split("\n")
        seen = {int(line) for line in got if line.isdigit()}
        missing = sorted(set(range(lines)) - seen)
        odd = [line for line in got[:-1] if not line.isdigit()][:5]
        pytest.fail(
            f"{len(missing)} of {lines} lines missing (first {missing[:3]}, last"
            f" {missing[-3:]}), {len(result.outputs)} outputs, odd lines {odd}"
        )


class _Stall:
    """An output callback that blocks its thread for ``seconds`` at the first output."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.outputs = 0

    def __call__(self, output: Output) -> None:
        self.outputs += 1
        if self.outputs == 1:
            time.sleep(self.seconds)  # no reading meanwhile: the kernel keeps printing


@pytest.mark.anyio
@pytest.mark.parametrize("stall", [0.0, 1.0], ids=["reading", "stalled"])
@pytest.mark.parametrize("kernel", FLOODS)
async def test_flood_arrives_whole(kernel: str, stall: float, shared: SharedKernels) -> None:
    async with async_client(shared(kernel)) as kc:
        stalled = _Stall(stall)
        result = await kc.execute(_flood(kernel), timeout=120, on_output=stalled)
    _check_flood(kernel, result)
    assert stalled.outputs >= 1


@pytest.mark.parametrize("stall", [0.0, 1.0], ids=["reading", "stalled"])
@pytest.mark.parametrize("kernel", FLOODS)
def test_flood_arrives_whole_blocking(kernel: str, stall: float, shared: SharedKernels) -> None:
    with blocking_client(shared(kernel)) as kc:
        stalled = _Stall(stall)
        result = kc.execute(_flood(kernel), timeout=120, on_output=stalled)
        _check_flood(kernel, result)
        # And without a callback, where the outputs are collected in the reading thread.
        plain = kc.execute(_flood(kernel), timeout=120)
    _check_flood(kernel, plain)
    assert stalled.outputs >= 1


@pytest.mark.anyio
@pytest.mark.parametrize("kernel", ["runtimelib-python", "python3"])
async def test_reader_without_epoll(
    kernel: str, shared: SharedKernels, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where there is no epoll (macOS, Windows), a task waits on each socket instead: the
    same requests, flood and comm exchange work."""
    import runtimelib.transports.zmq as zmq_transport

    monkeypatch.setattr(zmq_transport.asynchronous, "_epoll", None)
    async with async_client(shared.for_comms(kernel)) as kc:
        result = await kc.execute(_flood(kernel), timeout=120)
        infos = [await kc.kernel_info(timeout=T) for _ in range(20)]
        # A comm to a target the kernel lacks: its comm_close must come back to us.
        comm = kc.comms.open("nobody-listens-here")
        with anyio.fail_after(T):
            while not comm.closed:
                await anyio.sleep(0.02)
        after = await kc.execute("print('after')", timeout=T)
    _check_flood(kernel, result)
    assert len({info.implementation for info in infos}) == 1
    assert after.stdout == "after\n"


# -- many executes, many requests in flight -----------------------------------------------------

NOOP = {"python3": "n = 1", "xpython": "n = 1", "bash": "true"}
#: bash_kernel needs ~0.1 s per execute (pexpect waits 50 ms before each of the two commands
#: it sends bash per execute): 200 would take 20 s per twin; 10 show the same counting.
RUNS = {"python3": 200, "xpython": 200, "bash": 10}


@pytest.mark.anyio
@pytest.mark.parametrize("kernel", KERNELS)
async def test_200_back_to_back_executes(kernel: str, shared: SharedKernels) -> None:
    runs = RUNS[kernel]
    async with async_client(shared(kernel)) as kc:
        results = [await kc.execute(NOOP[kernel], timeout=T) for _ in range(runs)]
    assert [r.status for r in results] == ["ok"] * runs
    first = results[0].execution_count
    assert first is not None
    assert [r.execution_count for r in results] == list(range(first, first + runs))


@pytest.mark.parametrize("kernel", KERNELS)
def test_200_back_to_back_executes_blocking(kernel: str, shared: SharedKernels) -> None:
    runs = RUNS[kernel]
    with blocking_client(shared(kernel)) as kc:
        results = [kc.execute(NOOP[kernel], timeout=T) for _ in range(runs)]
    assert [r.status for r in results] == ["ok"] * runs
    first = results[0].execution_count
    assert first is not None
    assert [r.execution_count for r in results] == list(range(first, first + runs))


def _check_in_flight(kernel: str, replies: dict[str, Any]) -> None:
    assert replies["execute"].stdout == "done\n"
    assert COMPLETIONS[kernel][1] in replies["complete"].matches
    assert replies["kernel_info"].implementation == IMPLEMENTATIONS[kernel][0]
    assert replies["comm_info"].status == "ok"


@pytest.mark.anyio
@pytest.mark.parametrize("kernel", KERNELS)
async def test_requests_in_flight_at_once(kernel: str, shared: SharedKernels) -> None:
    replies: dict[str, Any] = {}

    async def keep(name: str, request: Callable[[], Any]) -> None:
        replies[name] = await request()

    async with async_client(shared(kernel)) as kc, anyio.create_task_group() as tg:
        tg.start_soon(keep, "execute", lambda: kc.execute(_slow_echo(kernel, "done"), timeout=T))
        await anyio.sleep(0.1)  # the execute is running; the others queue up behind it
        tg.start_soon(keep, "complete", lambda: kc.complete(COMPLETIONS[kernel][0], timeout=T))
        tg.start_soon(keep, "kernel_info", lambda: kc.kernel_info(timeout=T))
        tg.start_soon(keep, "comm_info", lambda: kc.comm_info(timeout=T))
    _check_in_flight(kernel, replies)


@pytest.mark.parametrize("kernel", KERNELS)
def test_requests_in_flight_at_once_blocking(kernel: str, shared: SharedKernels) -> None:
    with blocking_client(shared(kernel)) as kc, ThreadPoolExecutor(4) as pool:
        futures = {"execute": pool.submit(kc.execute, _slow_echo(kernel, "done"), timeout=T)}
        time.sleep(0.1)
        futures["complete"] = pool.submit(kc.complete, COMPLETIONS[kernel][0], timeout=T)
        futures["kernel_info"] = pool.submit(kc.kernel_info, timeout=T)
        futures["comm_info"] = pool.submit(kc.comm_info, timeout=T)
        replies = {name: future.result(T) for name, future in futures.items()}
    _check_in_flight(kernel, replies)


# -- a kernel killed mid-execute (own kernels) ---------------------------------------------------
# Two clients wait on the kernel when it is killed: the manager's client (which watches the
# process) runs a long execute, a client made from the connection info alone (which watches the
# heartbeat) has an execute queued behind it. Both must fail with KernelDiedError, promptly.

FAST_HEARTBEAT = {"heartbeat_interval": 0.2, "heartbeat_misses": 3}


@pytest.mark.anyio
@pytest.mark.usefixtures("jupyter_env")
@pytest.mark.parametrize(("anyio_backend", "kernel"), on_own_kernels([(k,) for k in KERNELS]))
async def test_killed_kernel_fails_pending_executes(kernel: str, assert_gone: list[int]) -> None:
    async with AsyncKernelManager(kernel, **own_kernel_options(kernel)) as km:
        pid = km.pid
        assert pid is not None
        assert km.connection_info is not None
        assert_gone.append(pid)
        died: dict[str, BaseException] = {}
        started = anyio.Event()

        def on_output(output: Output) -> None:
            if isinstance(output, Stream) and "sleeping" in output.text:
                started.set()

        async def run(name: str, kc: AsyncKernelClient, code: str) -> None:
            try:
                await kc.execute(code, on_output=on_output, timeout=PROMPT)
            except KernelDiedError as exc:
                died[name] = exc

        async with (
            km.client() as kc,
            AsyncKernelClient(km.connection_info, **FAST_HEARTBEAT) as direct,
        ):
            await kc.wait_for_ready(timeout=T)
            await direct.wait_for_ready(timeout=T)
            async with anyio.create_task_group() as tg:
                tg.start_soon(run, "manager client", kc, sleep_code(kernel, 100, announce=True))
                with anyio.fail_after(T):
                    await started.wait()
                tg.start_soon(run, "direct client", direct, echo(kernel, "queued"))
                await anyio.sleep(0.2)
                os.kill(pid, signal.SIGKILL)
    assert sorted(died) == ["direct client", "manager client"]


@pytest.mark.usefixtures("jupyter_env")
@pytest.mark.parametrize("kernel", KERNELS)
def test_killed_kernel_fails_pending_executes_blocking(kernel: str, assert_gone: list[int]) -> None:
    with KernelManager(kernel, **own_kernel_options(kernel)) as km:
        pid = km.pid
        assert pid is not None
        assert km.connection_info is not None
        assert_gone.append(pid)
        with (
            km.client() as kc,
            KernelClient(km.connection_info, **FAST_HEARTBEAT) as direct,
            ThreadPoolExecutor(1) as pool,
        ):
            kc.wait_for_ready(timeout=T)
            direct.wait_for_ready(timeout=T)
            queued: list[Any] = []
            killers: list[threading.Timer] = []

            def on_output(output: Output) -> None:
                if not killers and isinstance(output, Stream) and "sleeping" in output.text:
                    queued.append(pool.submit(direct.execute, echo(kernel, "q"), timeout=PROMPT))
                    killers.append(threading.Timer(0.2, os.kill, (pid, signal.SIGKILL)))
                    killers[0].start()

            try:
                with pytest.raises(KernelDiedError):
                    kc.execute(
                        sleep_code(kernel, 100, announce=True), on_output=on_output, timeout=PROMPT
                    )
            finally:
                for killer in killers:
                    killer.join(T)
            [pending] = queued
            with pytest.raises(KernelDiedError):
                pending.result(T)


# -- timeouts -------------------------------------------------------------------------------------
# On a shared kernel, so the code sleeps only a little longer than the timeout; the test then
# waits for the kernel to be free, which also shows the abandoned request's late output does
# not leak into the next result.


def _late_output(kernel: str) -> str:
    if kernel == "bash":
        return "sleep 0.6; echo late"
    return "import time\ntime.sleep(0.6)\nprint('late')"


@pytest.mark.anyio
@pytest.mark.parametrize("kernel", KERNELS)
async def test_timeout(kernel: str, shared: SharedKernels) -> None:
    async with async_client(shared(kernel)) as kc:
        with pytest.raises(KernelTimeoutError) as info:
            await kc.execute(_late_output(kernel), timeout=0.2)
        after = await kc.execute(echo(kernel, "after"), timeout=T)
    assert isinstance(info.value, TimeoutError)
    assert after.outputs == [Stream(name="stdout", text="after\n")]


@pytest.mark.parametrize("kernel", KERNELS)
def test_timeout_blocking(kernel: str, shared: SharedKernels) -> None:
    with blocking_client(shared(kernel)) as kc:
        with pytest.raises(KernelTimeoutError) as info:
            kc.execute(_late_output(kernel), timeout=0.2)
        after = kc.execute(echo(kernel, "after"), timeout=T)
    assert isinstance(info.value, TimeoutError)
    assert after.outputs == [Stream(name="stdout", text="after\n")]


# -- the blocking client inside a running event loop -----------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("kernel", KERNELS)
async def test_blocking_client_inside_a_running_event_loop(
    kernel: str, shared: SharedKernels
) -> None:
    km = shared(kernel)
    anyio.get_current_task()  # raises unless an event loop runs this coroutine
    with km.client() as kc:  # plain calls, as in a notebook cell
        kc.wait_for_ready(timeout=T)
        result = kc.execute(echo(kernel, "from a loop"), timeout=T)
        info = kc.kernel_info(timeout=T)
    assert result.stdout == "from a loop\n"
    assert info.implementation == IMPLEMENTATIONS[kernel][0]


# -- the streaming form, and on_output ---------------------------------------------------------

STREAMED = {
    "python3": "print('a', flush=True)\nprint('b')\n'c'",
    "xpython": "print('a', flush=True)\nprint('b')\n'c'",
    "bash": "echo a; echo b",
}


def _check_streamed(kernel: str, messages: list[Message[Content]]) -> None:
    outputs = _check_order(kernel, messages)
    assert "".join(o.text for o in outputs if isinstance(o, Stream)) == "a\nb\n"
    if kernel != "bash":  # bash_kernel sends no execute_result
        assert isinstance(outputs[-1], ExecuteResult)
        assert outputs[-1].data["text/plain"] == "'c'"


@pytest.mark.anyio
@pytest.mark.parametrize("kernel", KERNELS)
async def test_stream(kernel: str, shared: SharedKernels) -> None:
    async with async_client(shared(kernel)) as kc:
        messages = [m async for m in kc.stream(STREAMED[kernel], timeout=T)]
    _check_streamed(kernel, messages)


@pytest.mark.parametrize("kernel", KERNELS)
def test_stream_blocking(kernel: str, shared: SharedKernels) -> None:
    with blocking_client(shared(kernel)) as kc:
        messages = list(kc.stream(STREAMED[kernel], timeout=T))
    _check_streamed(kernel, messages)


def _check_on_output(seen: list[Output], result: ExecutionResult) -> None:
    assert seen, "on_output was never called"
    assert "".join(o.text for o in seen if isinstance(o, Stream)) == result.stdout == "a\nb\n"
    assert [o for o in seen if not isinstance(o, Stream)] == [
        o for o in result.outputs if not isinstance(o, Stream)
    ]


@pytest.mark.anyio
@pytest.mark.parametrize("kernel", KERNELS)
async def test_on_output(kernel: str, shared: SharedKernels) -> None:
    seen: list[Output] = []

    async def on_output(output: Output) -> None:  # an awaitable callback
        seen.append(output)
        await anyio.sleep(0)

    async with async_client(shared(kernel)) as kc:
        result = await kc.execute(STREAMED[kernel], on_output=on_output, timeout=T)
    _check_on_output(seen, result)


@pytest.mark.parametrize("kernel", KERNELS)
def test_on_output_blocking(kernel: str, shared: SharedKernels) -> None:
    seen: list[Output] = []
    with blocking_client(shared(kernel)) as kc:
        result = kc.execute(STREAMED[kernel], on_output=seen.append, timeout=T)
    _check_on_output(seen, result)


# -- shutdown through the client (own kernels) ---------------------------------------------------
# bash_kernel takes about 3 s to exit after shutdown_request; python kernels only.


@pytest.mark.anyio
@pytest.mark.usefixtures("jupyter_env")
@pytest.mark.parametrize("kernel", PYTHONS)
async def test_shutdown_request(kernel: str, assert_gone: list[int]) -> None:
    async with AsyncKernelManager(kernel, **own_kernel_options(kernel)) as km:
        assert km.pid is not None
        assert_gone.append(km.pid)
        async with km.client() as kc:
            await kc.wait_for_ready(timeout=T)
            reply = await kc.shutdown(timeout=T)
            assert (reply.status, reply.restart) == ("ok", False)
            with anyio.fail_after(PROMPT):
                while km.is_alive():
                    await anyio.sleep(0.05)
            # A request to a kernel that is gone fails at once.
            with pytest.raises(KernelDiedError):
                await kc.kernel_info(timeout=PROMPT)


@pytest.mark.usefixtures("jupyter_env")
@pytest.mark.parametrize("kernel", PYTHONS)
def test_shutdown_request_blocking(kernel: str, assert_gone: list[int]) -> None:
    with KernelManager(kernel, **own_kernel_options(kernel)) as km:
        assert km.pid is not None
        assert_gone.append(km.pid)
        with km.client() as kc:
            kc.wait_for_ready(timeout=T)
            reply = kc.shutdown(timeout=T)
            assert (reply.status, reply.restart) == ("ok", False)
            assert _wait_gone(km.pid, PROMPT)
            with pytest.raises(KernelDiedError):
                kc.kernel_info(timeout=PROMPT)


# -- the same outputs as jupyter_client ---------------------------------------------------------

SAMPLES = {
    "python3": [
        "print('one')\nimport sys\nprint('two', file=sys.stderr)\nprint('three')",
        "from IPython.display import HTML, display\ndisplay(HTML('<p>x</p>'))\nprint('y')\n7",
        "print('before')\nraise KeyError('k')",
        "{'a': [1, 2]}",
    ],
    "bash": [
        "echo one; echo two",
        "echo '<p>x</p>' | displayHTML; echo y",
        "echo before; ls /nonexistent-runtimelib-dir",
    ],
}
SAMPLES["xpython"] = SAMPLES["python3"]
CROSS_CASES = [(kernel, i) for kernel in KERNELS for i in range(len(SAMPLES[kernel]))]
_CELL_NUMBER = re.compile(r"In ?\[\d+\]")


def _normalized(outputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Merge consecutive streams of one name (as ExecutionResult does), drop cell numbers."""
    merged: list[dict[str, Any]] = []
    for output in outputs:
        output = dict(output)
        if output["output_type"] == "execute_result":
            output["execution_count"] = None
        if output["output_type"] == "error":
            output["traceback"] = [_CELL_NUMBER.sub("In[N]", line) for line in output["traceback"]]
        last = merged[-1] if merged else None
        if (
            last is not None
            and output["output_type"] == last["output_type"] == "stream"
            and output["name"] == last["name"]
        ):
            last["text"] += output["text"]
        else:
            merged.append(output)
    return merged


def _jupyter_client_outputs(km: KernelManager, code: str) -> list[dict[str, Any]]:
    assert km.connection_info is not None
    client = BlockingKernelClient()
    client.load_connection_info(km.connection_info.to_dict())
    client.start_channels()
    outputs: list[dict[str, Any]] = []

    def hook(msg: dict[str, Any]) -> None:
        if msg["msg_type"] in ("stream", "display_data", "execute_result", "error"):
            outputs.append(dict(nbformat.v4.output_from_msg(msg)))

    try:
        client.wait_for_ready(timeout=T)
        client.execute_interactive(code, output_hook=hook, timeout=T)
    finally:
        client.stop_channels()
    return _normalized(outputs)


async def _async_outputs(km: KernelManager, code: str) -> list[Output]:
    async with async_client(km) as kc:
        return (await kc.execute(code, timeout=T)).outputs


@pytest.fixture(scope="module")
def reference_outputs(shared: SharedKernels) -> Callable[[str, int], list[dict[str, Any]]]:
    """What jupyter_client collects for a sample, asked once per sample for all twins."""
    cache: dict[tuple[str, int], list[dict[str, Any]]] = {}

    def get(kernel: str, sample: int) -> list[dict[str, Any]]:
        if (kernel, sample) not in cache:
            cache[kernel, sample] = _jupyter_client_outputs(shared(kernel), SAMPLES[kernel][sample])
        return cache[kernel, sample]

    return get


@pytest.mark.parametrize("twin", ["blocking", "asyncio", "trio"])
@pytest.mark.parametrize(("kernel", "sample"), CROSS_CASES)
def test_outputs_match_jupyter_client(
    kernel: str,
    sample: int,
    twin: str,
    shared: SharedKernels,
    reference_outputs: Callable[[str, int], list[dict[str, Any]]],
) -> None:
    km = shared(kernel)
    code = SAMPLES[kernel][sample]
    expected = reference_outputs(kernel, sample)
    if twin == "blocking":
        with blocking_client(km) as kc:
            outputs = kc.execute(code, timeout=T).outputs
    else:
        outputs = anyio.run(_async_outputs, km, code, backend=twin)
    assert expected, "jupyter_client collected nothing"
    assert _normalized([to_nbformat(o) for o in outputs]) == expected
