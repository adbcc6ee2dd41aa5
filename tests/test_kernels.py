"""The built-in kernels (runtimelib-python, runtimelib-echo) as real processes, seen from outside.

jupyter_kernel_test's conformance suite, jupyter_client's manager and blocking client, nbclient,
hostile frames sent straight to the kernel's sockets, the echo kernel's scripted behaviours and
the Python kernel's features through runtimelib's own clients (AsyncKernelClient on asyncio and
trio, and the blocking KernelClient called from inside a running event loop).

Every test (each jupyter_kernel_test class) starts its own kernel, as they start in a fraction
of a second, and ends it also when it fails; the ``assert_gone`` and ``jupyter_env`` fixtures
check that no process and no connection file is left behind.
"""

from __future__ import annotations

import base64
import contextlib
import inspect
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import anyio
import jupyter_kernel_test as jkt
import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager as JupyterKernelManager
from nbclient import NotebookClient

from runtimelib import (
    AsyncKernelClient,
    AsyncKernelManager,
    ExecutionResult,
    KernelClient,
    KernelManager,
)
from runtimelib.errors import KernelDiedError, KernelTimeoutError
from runtimelib.kernel.echo import PNG_BYTES
from runtimelib.media import MimeBundle
from runtimelib.messages import (
    ClearOutput,
    DisplayData,
    Error,
    ExecuteRequest,
    KernelInfoRequest,
    Message,
    Stream,
    UpdateDisplayData,
)
from runtimelib.protocol import Session
from runtimelib.protocol.session import DELIMITER
from runtimelib.transports.zmq import Channel

from .conftest import NBCLIENT_OPTIONS, _pid_alive

pytestmark = [pytest.mark.kernel]

PYTHON = "runtimelib-python"
ECHO = "runtimelib-echo"
KERNELS = (PYTHON, ECHO)
#: Bound on one request: generous for a loaded machine, well under pytest-timeout.
T = 30.0
#: How long a dead kernel may take to be reported: "promptly", not after a long timeout.
PROMPT = 10.0
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _wait_gone(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _pid_alive(pid):
            return True
        time.sleep(0.05)
    return not _pid_alive(pid)


def say(kernel: str, text: str) -> str:
    """Code that writes ``text`` and a newline to stdout."""
    return f"print({text!r})" if kernel == PYTHON else f"%stdout {text}"


def sleep_code(kernel: str, seconds: int) -> str:
    """Code that announces on stdout that it is sleeping (so it is surely running), then sleeps."""
    if kernel == PYTHON:
        return f"print('sleeping', flush=True)\nimport time\ntime.sleep({seconds})"
    return f"%stdout sleeping\n%sleep {seconds}"


def input_code(kernel: str) -> tuple[str, str]:
    """Code asking for a line with the prompt "Who? ", and what it prints when given "Ada"."""
    if kernel == PYTHON:
        return "name = input('Who? ')\nprint('hello', name)", "hello Ada\n"
    return "%input Who?", "Ada\n"


# -- 1. jupyter_kernel_test's conformance suite ---------------------------------------------------


class _PrivateRuntimeDir:
    """Runs a jupyter_kernel_test class with a private runtime dir, checked clean afterwards.

    jupyter_kernel_test starts the kernel by name through jupyter_client, which finds
    runtimelib-python in ``{sys.prefix}/share/jupyter/kernels`` (the environment's kernelspecs
    stay visible; only the runtime dir, where connection files go, is private).
    """

    km: JupyterKernelManager
    _runtime: ClassVar[str]
    _saved_runtime: ClassVar[str | None]
    _pid: ClassVar[int | None]

    @classmethod
    def setUpClass(cls) -> None:
        cls._runtime = tempfile.mkdtemp(prefix="runtimelib-jkt-")
        cls._saved_runtime = os.environ.get("JUPYTER_RUNTIME_DIR")
        os.environ["JUPYTER_RUNTIME_DIR"] = cls._runtime
        try:
            super().setUpClass()  # type: ignore[misc]
        except BaseException:
            cls._restore()
            raise
        cls._pid = cls.km.provisioner.pid if cls.km.provisioner is not None else None  # type: ignore[attr-defined]

    @classmethod
    def tearDownClass(cls) -> None:
        try:
            super().tearDownClass()  # type: ignore[misc]
            assert cls._pid is not None
            assert _wait_gone(cls._pid), "the kernel is still running"
            leftovers = sorted(p.name for p in Path(cls._runtime).glob("kernel-*.json"))
            assert leftovers == [], f"connection files left behind: {leftovers}"
        finally:
            cls._restore()

    @classmethod
    def _restore(cls) -> None:
        if cls._saved_runtime is None:
            os.environ.pop("JUPYTER_RUNTIME_DIR", None)
        else:
            os.environ["JUPYTER_RUNTIME_DIR"] = cls._saved_runtime
        shutil.rmtree(cls._runtime, ignore_errors=True)


@pytest.mark.timeout(90)
class TestPythonKernelConformance(_PrivateRuntimeDir, jkt.KernelTests):
    """Every check jupyter_kernel_test 0.7 has, with every sample the kernel can support."""

    kernel_name = PYTHON
    language_name = "python"
    file_extension = ".py"

    code_hello_world = "print('hello, world')"
    code_stderr = "import sys\nprint('oops', file=sys.stderr)"

    completion_samples: ClassVar[list[dict[str, Any]]] = [
        {"text": "zi", "matches": {"zip"}},
        {"text": "str.isdig", "matches": {"str.isdigit"}},
    ]
    complete_code_samples: ClassVar[list[str]] = [
        "1",
        "print('hello, world')",
        # A block ends with an empty line (the final newline), as in IPython.
        "for i in range(3):\n    pass\n",
        "x = (1,\n     2)",
        "def f():\n    return 1\n    ",  # a console's pre-typed indent on the empty line
    ]
    incomplete_code_samples: ClassVar[list[str]] = [
        "for i in range(3):",
        "def f():\n    x = 1",
        "if True:\n    if True:\n        pass",
        "def f(x):",
        "(1,",
        "'''docstring",
    ]
    invalid_code_samples: ClassVar[list[str]] = ["a = = 1", "def (x):", "1 +* 2"]

    code_page_something = "help(len)"  # a "page" payload, as IPython's len? makes

    code_generate_error = "raise ValueError('boom')"
    code_execute_result: ClassVar[list[dict[str, str]]] = [
        {"code": "6*7", "result": "42"},
        {"code": "'a' + 'b'", "result": "'ab'"},
        {
            "code": "class Bold:\n    def _repr_html_(self):\n        return '<b>b</b>'\nBold()",
            "mime": "text/html",
            "result": "<b>b</b>",
        },
    ]
    code_display_data: ClassVar[list[dict[str, str]]] = [
        {"code": "display('plain')", "mime": "text/plain"},
        {
            "code": "display({'text/html': '<i>x</i>', 'text/plain': 'x'}, raw=True)",
            "mime": "text/html",
        },
    ]
    # Matches exactly one of the code_execute_result samples (the unique search must find 1).
    code_history_pattern = "6*7"
    supported_history_operations = ("tail", "range", "search")
    code_inspect_sample = "print"
    code_clear_output = "print('gone')\nclear_output()"


@pytest.mark.timeout(60)
class TestPythonKernelIopubWelcome(_PrivateRuntimeDir, jkt.IopubWelcomeTests):
    """The kernel's iopub is an XPUB that welcomes each subscriber (JEP 65)."""

    kernel_name = PYTHON
    support_iopub_welcome = True


@pytest.mark.parametrize("name", KERNELS)
def test_jupyter_client_finds_the_kernelspecs(name: str) -> None:
    spec = KernelSpecManager().get_kernel_spec(name)
    assert Path(spec.resource_dir).parent == Path(sys.prefix) / "share" / "jupyter" / "kernels"
    module = "runtimelib.kernel.python" if name == PYTHON else "runtimelib.kernel.echo"
    assert spec.argv[1:4] == ["-m", module, "-f"]


# -- 2. jupyter_client's KernelManager and BlockingKernelClient -----------------------------------


@contextlib.contextmanager
def jupyter_client_kernel(name: str, pids: list[int]) -> Iterator[tuple[JupyterKernelManager, Any]]:
    """A kernel started by jupyter_client and a ready BlockingKernelClient of it."""
    km = JupyterKernelManager(kernel_name=name)
    km.start_kernel()
    kc = None
    try:
        assert km.provisioner is not None
        pids.append(km.provisioner.pid)  # type: ignore[attr-defined]
        kc = km.client()
        kc.start_channels()
        kc.wait_for_ready(timeout=T)
        yield km, kc
    finally:
        if kc is not None:
            kc.stop_channels()
        if km.has_kernel:
            km.shutdown_kernel(now=True)


def _interactive(kc: Any, code: str, **kwargs: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """execute_interactive, returning the reply and the iopub messages it saw."""
    seen: list[dict[str, Any]] = []
    kwargs.setdefault("timeout", T)
    reply = kc.execute_interactive(code, output_hook=seen.append, **kwargs)
    return reply, seen


def _stdout_of(messages: list[dict[str, Any]]) -> str:
    return "".join(
        m["content"]["text"]
        for m in messages
        if m["msg_type"] == "stream" and m["content"]["name"] == "stdout"
    )


@pytest.mark.usefixtures("jupyter_env")
@pytest.mark.parametrize("name", KERNELS)
def test_jupyter_client_lifecycle(name: str, assert_gone: list[int]) -> None:
    """Execute, interrupt, restart, execute again and shut down, all through jupyter_client."""
    with jupyter_client_kernel(name, assert_gone) as (km, kc):
        reply, seen = _interactive(kc, say(name, "from jupyter_client"))
        assert reply["content"]["status"] == "ok"
        assert _stdout_of(seen) == "from jupyter_client\n"
        states = [m["content"]["execution_state"] for m in seen if m["msg_type"] == "status"]
        assert states == ["busy", "idle"]

        msg_id = kc.execute(sleep_code(name, 60))
        deadline = time.monotonic() + T
        while True:  # wait until the code surely runs: an interrupt before that is lost
            assert time.monotonic() < deadline, "the code never started"
            msg = kc.get_iopub_msg(timeout=T)
            if msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "stream":
                break
        km.interrupt_kernel()
        reply = kc.get_shell_msg(timeout=T)
        assert reply["parent_header"]["msg_id"] == msg_id
        assert reply["content"]["status"] == "error"
        assert reply["content"]["ename"] == "KeyboardInterrupt"

        old_pid = km.provisioner.pid  # type: ignore[union-attr]
        km.restart_kernel()
        process = km.provisioner.process  # type: ignore[union-attr]
        assert_gone.append(process.pid)
        assert process.pid != old_pid
        assert _wait_gone(old_pid)
        kc.wait_for_ready(timeout=T)
        reply, seen = _interactive(kc, say(name, "restarted"))
        assert reply["content"]["status"] == "ok"
        assert reply["content"]["execution_count"] == 1  # a fresh kernel
        assert _stdout_of(seen) == "restarted\n"

        km.shutdown_kernel()
        assert not km.is_alive()
        assert _wait_gone(process.pid)
        # It obeyed the shutdown_request: a clean exit, not SIGTERM or SIGKILL.
        assert process.wait(1) == 0


@pytest.mark.usefixtures("jupyter_env")
@pytest.mark.parametrize("name", KERNELS)
def test_jupyter_client_input(name: str, assert_gone: list[int]) -> None:
    """input() answered through execute_interactive's stdin_hook and ``kc.input()``.

    jupyter_client's ``input()`` sends the input_reply with an empty parent_header (so do
    jupyter_console and execute_interactive's default hook); ipykernel accepts it.
    """
    prompts: list[tuple[str, bool]] = []
    with jupyter_client_kernel(name, assert_gone) as (_km, kc):

        def answer(msg: dict[str, Any]) -> None:
            prompts.append((msg["content"]["prompt"].strip(), msg["content"]["password"]))
            kc.input("Ada")

        code, printed = input_code(name)
        # An answered input takes milliseconds; a kernel that ignores the answer waits for ever.
        try:
            reply, seen = _interactive(kc, code, allow_stdin=True, stdin_hook=answer, timeout=5)
        except TimeoutError:
            pytest.fail(f"input_reply sent for the prompts {prompts}, but the kernel still waits")
        assert prompts == [("Who?", False)]
        assert reply["content"]["status"] == "ok"
        assert _stdout_of(seen) == printed


# -- 3. nbclient runs a notebook ------------------------------------------------------------------


@pytest.mark.usefixtures("jupyter_env")
def test_nbclient_executes_a_notebook(tmp_path: Path) -> None:
    v4 = nbformat.v4
    nb = v4.new_notebook()
    nb.cells = [
        v4.new_markdown_cell("# not code"),
        v4.new_code_cell("print('hello')"),
        v4.new_code_cell("6 * 7"),
        v4.new_code_cell("handle = display('first', display_id=True)\nhandle.update('second')"),
        v4.new_code_cell("update_display('third', display_id=handle.display_id)"),
        v4.new_code_cell("print('gone')\nclear_output()\nprint('kept')"),
        v4.new_code_cell("raise ValueError('expected')", metadata={"tags": ["raises-exception"]}),
        v4.new_code_cell("print('after the error')"),
    ]
    client = NotebookClient(
        nb,
        timeout=int(T),
        startup_timeout=int(T),
        kernel_name=PYTHON,
        resources={"metadata": {"path": str(tmp_path)}},
        **NBCLIENT_OPTIONS,
    )
    client.execute()
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert [cell.execution_count for cell in code] == [1, 2, 3, 4, 5, 6, 7]
    hello, answer, display, update, cleared, error, after = (cell.outputs for cell in code)
    assert [(o.output_type, o.name, o.text) for o in hello] == [("stream", "stdout", "hello\n")]
    [result] = answer
    assert result.output_type == "execute_result"
    assert result.data["text/plain"] == "42"
    assert result.execution_count == 2
    # The update in the same cell and the one from the next cell both reached the display.
    [shown] = display
    assert shown.output_type == "display_data"
    assert shown.data["text/plain"] == "'third'"
    assert update == []
    assert [(o.output_type, o.text) for o in cleared] == [("stream", "kept\n")]
    [raised] = error
    assert (raised.output_type, raised.ename, raised.evalue) == ("error", "ValueError", "expected")
    assert [o.text for o in after] == ["after the error\n"]
    assert nb.metadata.language_info.name == "python"


# -- 4. hostile input on the kernel's sockets -----------------------------------------------------


@contextlib.contextmanager
def kernel_and_client(name: str, pids: list[int]) -> Iterator[tuple[KernelManager, KernelClient]]:
    """A runtimelib KernelManager's kernel and a ready blocking client of it."""
    with KernelManager(name, shutdown_timeout=2.0) as km:
        assert km.pid is not None
        pids.append(km.pid)
        with km.client() as kc:
            yield km, kc


@contextlib.contextmanager
def raw_channel(km: KernelManager, channel: str = "shell") -> Iterator[Channel]:
    """A DEALER on one of the kernel's sockets, signing with the kernel's key."""
    assert km.connection_info is not None
    with Channel.connect(km.connection_info, channel) as ch:
        ch.socket.linger = 0
        yield ch


def header(session: Session, msg_type: str) -> dict[str, Any]:
    return {
        "msg_id": uuid.uuid4().hex,
        "session": session.session_id,
        "username": "mallory",
        "date": "2026-01-01T00:00:00.000000Z",
        "msg_type": msg_type,
        "version": "5.4",
    }


def signed(
    session: Session,
    head: dict[str, Any] | bytes,
    content: bytes,
    *,
    parent: bytes = b"{}",
    metadata: bytes = b"{}",
) -> list[bytes]:
    """Frames with a correct signature over whatever JSON parts (valid or not) are given."""
    head_b = head if isinstance(head, bytes) else json.dumps(head).encode()
    signature = session.signer.sign((head_b, parent, metadata, content))
    return [DELIMITER, signature, head_b, parent, metadata, content]


def exchange(ch: Channel, *messages: list[bytes], copies: int = 1) -> list[Message[Any]]:
    """Send each of ``messages`` (``copies`` times), then a good kernel_info_request on the same
    socket; return everything that came back before the probe's reply.

    The kernel serves one socket's requests in order, so an answer to the frames would have
    arrived before the probe's reply: no waiting for something that should not happen.
    """
    for frames in messages:
        for _ in range(copies):
            ch.socket.send_multipart(frames)
    probe = ch.message(KernelInfoRequest())
    ch.send(probe)
    before: list[Message[Any]] = []
    deadline = time.monotonic() + T
    while True:
        left = deadline - time.monotonic()
        assert left > 0, "no kernel_info_reply after the hostile frames"
        message = ch.recv(left)
        if message.parent_id == probe.msg_id:
            assert message.msg_type == "kernel_info_reply"
            return before
        before.append(message)


def answers_to(messages: list[Message[Any]], head: dict[str, Any]) -> list[Message[Any]]:
    return [m for m in messages if m.parent_id == head["msg_id"]]


def assert_healthy(name: str, km: KernelManager, kc: KernelClient) -> None:
    """The kernel still answers kernel_info and runs code."""
    assert km.is_alive()
    assert kc.kernel_info(timeout=T).implementation == name
    result = kc.execute(say(name, "still here"), timeout=T)
    assert result.status == "ok", result.error
    assert result.stdout == "still here\n"


def _execute_frames(session: Session, code: str) -> tuple[str, list[bytes]]:
    message = session.message(ExecuteRequest(code=code), channel="shell")
    return message.msg_id, [bytes(f) for f in session.serialize(message)]


@pytest.mark.usefixtures("jupyter_env")
@pytest.mark.parametrize("name", KERNELS)
def test_a_bad_signature_is_dropped(name: str, assert_gone: list[int]) -> None:
    code = "forged = True" if name == PYTHON else "%stdout forged"
    with kernel_and_client(name, assert_gone) as (km, kc), raw_channel(km) as ch:
        wrong_key_id, wrong_key = _execute_frames(Session(b"not the key"), code)
        unsigned_id, unsigned = _execute_frames(ch.session, code)
        unsigned[1] = b""
        garbled_id, garbled = _execute_frames(ch.session, code)
        garbled[1] = garbled[1][::-1]
        forged_ids = [wrong_key_id, unsigned_id, garbled_id]
        answers = exchange(ch, wrong_key, unsigned, garbled)
        assert [m for m in answers if m.parent_id in forged_ids] == []
        assert_healthy(name, km, kc)
        # Nothing ran: the health check's execute was the first.
        assert kc.execute(say(name, "x"), timeout=T).execution_count == 2
        if name == PYTHON:
            check = kc.execute("'forged' in globals()", timeout=T)
            assert check.result is not None
            assert check.result.data["text/plain"] == "False"


@pytest.mark.usefixtures("jupyter_env")
@pytest.mark.parametrize("name", KERNELS)
def test_a_replayed_message_runs_once(name: str, assert_gone: list[int]) -> None:
    code = "runs = globals().get('runs', 0) + 1" if name == PYTHON else "%stdout ran"
    with kernel_and_client(name, assert_gone) as (km, kc), raw_channel(km) as ch:
        msg_id, frames = _execute_frames(ch.session, code)
        replies = [m for m in exchange(ch, frames, copies=2) if m.parent_id == msg_id]
        assert [(m.msg_type, m.content.status) for m in replies] == [("execute_reply", "ok")]
        assert_healthy(name, km, kc)
        assert kc.execute(say(name, "x"), timeout=T).execution_count == 3
        if name == PYTHON:
            check = kc.execute("runs", timeout=T)
            assert check.result is not None
            assert check.result.data["text/plain"] == "1"


def _garbage(session: Session) -> list[list[bytes]]:
    """Frames no kernel should choke on (and none of which is a request it should answer)."""
    good_head = header(session, "execute_request")
    content = json.dumps({"code": "1"}).encode()
    return [
        [os.urandom(200)],
        [b""],
        [os.urandom(64) for _ in range(8)],  # no delimiter
        [b"a", b"b", b"c", b"d", b"e", b"f", b"g"],  # no delimiter
        [DELIMITER],
        [DELIMITER, b"sig", b"{}"],  # too few frames
        [DELIMITER] * 6,
        signed(session, b"not json", content),
        signed(session, b"[1, 2, 3]", content),
        signed(session, b"\xff\xfe\xfd", content),
        signed(session, b'{"msg_id": "x"}', content),  # no msg_type
        signed(session, good_head, b'{"code": NaN}'),
        signed(session, good_head, b"[]"),
        signed(session, good_head, b"\xff\xfe"),
        signed(session, good_head, content, parent=b"[]"),
        signed(session, good_head, content, metadata=b'"a string"'),
        signed(session, header(session, "execute_reply"), b'{"status": "ok"}'),  # not a request
        *([os.urandom(32), DELIMITER, os.urandom(32)] for _ in range(200)),
    ]


@pytest.mark.usefixtures("jupyter_env")
@pytest.mark.parametrize("name", KERNELS)
def test_garbage_frames_are_survived(name: str, assert_gone: list[int]) -> None:
    with kernel_and_client(name, assert_gone) as (km, kc):
        for channel in ("stdin", "control", "shell"):
            with raw_channel(km, channel) as ch:
                garbage = _garbage(ch.session)
                if channel == "stdin":
                    # stdin takes no requests to probe with; the shell probes below follow.
                    for frames in garbage:
                        ch.socket.send_multipart(frames)
                else:
                    assert exchange(ch, *garbage) == [], f"an answer to garbage on {channel}"
            assert_healthy(name, km, kc)


WRONG_TYPES: list[tuple[str, dict[str, Any]]] = [
    ("execute_request", {"code": 5}),
    ("execute_request", {"silent": False}),  # no code
    ("execute_request", {"code": "1", "user_expressions": [1]}),
    ("complete_request", {"code": "pri", "cursor_pos": "3"}),
    ("inspect_request", {"code": 3, "cursor_pos": 0}),
]


@pytest.mark.usefixtures("jupyter_env")
@pytest.mark.parametrize("name", KERNELS)
def test_wrong_typed_content_gets_an_error_reply(name: str, assert_gone: list[int]) -> None:
    with kernel_and_client(name, assert_gone) as (km, kc), raw_channel(km) as ch:
        for msg_type, content in WRONG_TYPES:
            head = header(ch.session, msg_type)
            answers = exchange(ch, signed(ch.session, head, json.dumps(content).encode()))
            replies = answers_to(answers, head)
            case = f"{msg_type} {content}"
            assert [m.msg_type for m in replies] == [msg_type[: -len("request")] + "reply"], case
            assert replies[0].raw_content["status"] == "error", case
            assert_healthy(name, km, kc)
        # Nothing ran but the health checks' executes.
        count = kc.execute(say(name, "x"), timeout=T).execution_count
        assert count == len(WRONG_TYPES) + 1


ODD_VALUES: list[tuple[str, dict[str, Any]]] = [
    ("complete_request", {"code": "pri", "cursor_pos": 10**6}),
    ("inspect_request", {"code": "print", "cursor_pos": -5}),
    ("is_complete_request", {"code": "\x00"}),
    ("history_request", {"hist_access_type": "search", "pattern": "[(", "output": True}),
    ("history_request", {"hist_access_type": "range", "start": -3, "stop": 10**9}),
    ("execute_request", {"code": "", "extra": {"nested": [1, 2]}}),
    ("kernel_info_request", {"unexpected": None}),
]


@pytest.mark.usefixtures("jupyter_env")
@pytest.mark.parametrize("name", KERNELS)
def test_odd_but_well_typed_values_get_a_reply(name: str, assert_gone: list[int]) -> None:
    with kernel_and_client(name, assert_gone) as (km, kc), raw_channel(km) as ch:
        for msg_type, content in ODD_VALUES:
            head = header(ch.session, msg_type)
            answers = exchange(ch, signed(ch.session, head, json.dumps(content).encode()))
            replies = answers_to(answers, head)
            case = f"{msg_type} {content}"
            assert [m.msg_type for m in replies] == [msg_type[: -len("request")] + "reply"], case
            assert_healthy(name, km, kc)


@pytest.mark.usefixtures("jupyter_env")
@pytest.mark.parametrize("name", KERNELS)
def test_an_unknown_request_type(name: str, assert_gone: list[int]) -> None:
    with kernel_and_client(name, assert_gone) as (km, kc):
        for channel in ("shell", "control"):
            with raw_channel(km, channel) as ch:
                head = header(ch.session, "foo_request")
                replies = answers_to(exchange(ch, signed(ch.session, head, b'{"bar": 1}')), head)
                # The spec asks for nothing here: no reply is fine, but a reply is an error.
                assert [(m.msg_type, m.raw_content.get("status")) for m in replies] in (
                    [],
                    [("foo_reply", "error")],
                ), channel
            assert_healthy(name, km, kc)


@pytest.mark.usefixtures("jupyter_env")
@pytest.mark.parametrize("name", KERNELS)
def test_huge_frames(name: str, assert_gone: list[int]) -> None:
    big = 64 * 1024 * 1024
    with kernel_and_client(name, assert_gone) as (km, kc), raw_channel(km) as ch:
        # One huge garbage frame, then a valid request carrying a huge (unsigned) buffer.
        request = ch.message(KernelInfoRequest(), buffers=(b"\1" * big,))
        head = json.loads(bytes(ch.session.serialize(request)[2]))
        answers = exchange(ch, [b"\0" * big], [bytes(f) for f in ch.session.serialize(request)])
        assert [m.msg_type for m in answers_to(answers, head)] == ["kernel_info_reply"]
        # A huge, valid execute: 16 MiB of comment.
        code = "#" + "x" * (16 * 1024 * 1024) + "\n" + say(name, "big")
        result = kc.execute(code, timeout=T)
        assert result.status == "ok", result.error
        assert result.stdout.endswith("big\n")
        assert_healthy(name, km, kc)


# -- runtimelib's clients: one driver for the async twin (asyncio, trio) and the blocking one ----

FLAVOURS = [("asyncio", "async"), ("trio", "async"), ("asyncio", "blocking")]


@pytest.fixture(params=FLAVOURS, ids=["asyncio", "trio", "blocking"])
def flavour(request: pytest.FixtureRequest) -> tuple[str, str]:
    """Which event loop runs the test, and which client twin it drives."""
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def anyio_backend(flavour: tuple[str, str]) -> str:
    """The blocking twin runs inside an asyncio loop, as in a notebook cell."""
    return flavour[0]


async def _maybe(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


@dataclass
class Driver:
    """A started kernel and a client of it; the same calls for both twins."""

    km: KernelManager | AsyncKernelManager
    kc: KernelClient | AsyncKernelClient

    async def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """``kc.<method>(...)``, awaited if the twin is async; bounded by T unless told."""
        kwargs.setdefault("timeout", T)
        return await _maybe(getattr(self.kc, method)(*args, **kwargs))

    async def send(self, message: Message[Any]) -> None:
        """Send a message without waiting for anything."""
        await _maybe(self.kc.send(message))

    async def execute(self, code: str, **kwargs: Any) -> ExecutionResult:
        result: ExecutionResult = await self.call("execute", code, **kwargs)
        return result

    async def ok(self, code: str, **kwargs: Any) -> ExecutionResult:
        result = await self.execute(code, **kwargs)
        assert result.status == "ok", result.error
        return result

    async def stream(
        self,
        code: str,
        on_message: Callable[[Message[Any]], Any] | None = None,
        **kwargs: Any,
    ) -> list[Message[Any]]:
        """Every message of one execution, in arrival order; ``on_message`` sees each."""
        kwargs.setdefault("timeout", T)
        messages: list[Message[Any]] = []
        iterator = self.kc.stream(code, **kwargs)
        if isinstance(iterator, Iterator):
            for message in iterator:
                messages.append(message)
                if on_message is not None:
                    await _maybe(on_message(message))
        else:
            async for message in iterator:
                messages.append(message)
                if on_message is not None:
                    await _maybe(on_message(message))
        return messages

    async def interrupt(self) -> None:
        await _maybe(self.km.interrupt())

    async def shutdown(self, *, now: bool = False) -> None:
        await _maybe(self.km.shutdown(now=now))

    @property
    def process(self) -> Any:
        assert self.km.process is not None
        return self.km.process


@contextlib.asynccontextmanager
async def started(
    name: str, flavour: tuple[str, str], pids: list[int], **options: Any
) -> AsyncIterator[Driver]:
    """Start ``name`` with the manager of the flavour's twin; always shut it down."""
    options.setdefault("shutdown_timeout", 2.0)
    if flavour[1] == "async":
        async with AsyncKernelManager(name, **options) as akm:
            assert akm.pid is not None
            pids.append(akm.pid)
            async with akm.client() as akc:
                yield Driver(akm, akc)
    else:
        with KernelManager(name, **options) as km:
            assert km.pid is not None
            pids.append(km.pid)
            with km.client() as kc:
                yield Driver(km, kc)


def _interrupt_when_running(driver: Driver) -> Callable[[Message[Any]], Any]:
    """An on_message hook interrupting the kernel once the code said it is sleeping."""
    done = False

    async def hook(message: Message[Any]) -> None:
        nonlocal done
        if not done and isinstance(message.content, Stream) and "sleeping" in message.content.text:
            done = True
            await driver.interrupt()

    return hook


def _reply_of(messages: list[Message[Any]]) -> Any:
    [reply] = [m.content for m in messages if m.msg_type == "execute_reply"]
    return reply


async def _check_interrupted(k: Driver, name: str) -> None:
    """Interrupt a long sleep once it runs: an error reply and output, and the kernel goes on."""
    messages = await k.stream(sleep_code(name, 100), _interrupt_when_running(k))
    reply = _reply_of(messages)
    assert (reply.status, reply.ename) == ("error", "KeyboardInterrupt")
    errors = [m.content for m in messages if isinstance(m.content, Error)]
    assert [e.ename for e in errors] == ["KeyboardInterrupt"]
    # The traceback shows the user's code, not the kernel's machinery.
    assert not any("runtimelib" in line for line in errors[0].traceback)
    assert (await k.ok(say(name, "awake"))).stdout == "awake\n"


# -- 5. the echo kernel's scripted behaviours -----------------------------------------------------


def _check_streams(result: ExecutionResult) -> None:
    assert result.stdout == "plain line\nto out\n"
    assert result.stderr == "to err\n"


def _check_result(result: ExecutionResult) -> None:
    assert result.result is not None
    assert result.result.data == {"text/plain": "forty-two"}
    assert result.result.execution_count == result.execution_count


def _check_html(result: ExecutionResult) -> None:
    [shown] = result.outputs
    assert isinstance(shown, DisplayData)
    assert shown.data["text/html"] == "<b>bold</b>"


def _check_markdown(result: ExecutionResult) -> None:
    [shown] = result.outputs
    assert isinstance(shown, DisplayData)
    assert shown.data["text/markdown"] == "*em*"


def _check_png(result: ExecutionResult) -> None:
    [shown] = result.outputs
    assert isinstance(shown, DisplayData)
    image = MimeBundle(shown.data, shown.metadata).get_bytes("image/png")
    assert image.startswith(PNG_SIGNATURE)
    assert image == PNG_BYTES


def _check_display_update(result: ExecutionResult) -> None:
    shown, between = result.outputs
    assert isinstance(shown, DisplayData)
    assert shown.display_id == "d1"
    assert shown.data == {"text/plain": "v2"}
    assert between == Stream(name="stdout", text="between\n")


def _check_clear(result: ExecutionResult) -> None:
    assert result.outputs == [Stream(name="stdout", text="after\n")]


def _check_clear_wait_kept(result: ExecutionResult) -> None:
    # clear_output(wait=True) clears only once the next output arrives: none did.
    assert result.outputs == [Stream(name="stdout", text="before\n")]


ECHO_CASES: dict[str, tuple[str, Callable[[ExecutionResult], None]]] = {
    "streams": ("plain line\n%stdout to out\n%stderr to err", _check_streams),
    "result": ("%result forty-two", _check_result),
    "html": ("%html <b>bold</b>", _check_html),
    "markdown": ("%markdown *em*", _check_markdown),
    "png": ("%png", _check_png),
    "display-update": ("%display d1 v1\n%stdout between\n%update d1 v2", _check_display_update),
    "clear": ("%stdout before\n%clear\n%stdout after", _check_clear),
    "clear-wait": ("%stdout before\n%clear wait\n%stdout after", _check_clear),
    "clear-wait-kept": ("%stdout before\n%clear wait", _check_clear_wait_kept),
}


@pytest.mark.anyio
@pytest.mark.usefixtures("jupyter_env")
async def test_echo_outputs(flavour: tuple[str, str], assert_gone: list[int]) -> None:
    async with started(ECHO, flavour, assert_gone) as k:
        for case, (code, check) in ECHO_CASES.items():
            result = await k.execute(code)
            assert result.status == "ok", (case, result.error)
            try:
                check(result)
            except AssertionError as exc:
                raise AssertionError(f"echo case {case!r}: {result.outputs}") from exc
        # What the frontend is told, before the collector applies it.
        messages = await k.stream("%display d2 v1\n%update d2 v2\n%clear wait")
        updates = [m.content for m in messages if isinstance(m.content, UpdateDisplayData)]
        assert [(u.display_id, u.data) for u in updates] == [("d2", {"text/plain": "v2"})]
        clears = [m.content for m in messages if isinstance(m.content, ClearOutput)]
        assert clears == [ClearOutput(wait=True)]


@pytest.mark.anyio
@pytest.mark.usefixtures("jupyter_env")
async def test_echo_errors_and_introspection(
    flavour: tuple[str, str], assert_gone: list[int]
) -> None:
    async with started(ECHO, flavour, assert_gone) as k:
        result = await k.execute("%stdout first\n%error Oops it broke\n%stdout never")
        assert result.status == "error"
        assert result.error is not None
        assert (result.error.ename, result.error.evalue) == ("Oops", "it broke")
        assert result.reply is not None
        assert (result.reply.ename, result.reply.evalue) == ("Oops", "it broke")
        assert result.stdout == "first\n"
        unknown = await k.execute("%nonsense")
        assert unknown.error is not None
        assert unknown.error.ename == "UnknownCommand"
        assert (await k.ok("%stdout fine")).stdout == "fine\n"  # it goes on after errors

        info = await k.call("kernel_info")
        assert (info.implementation, info.language_info.name) == (ECHO, "echo")
        assert (await k.call("is_complete", "more\\")).status == "incomplete"
        assert (await k.call("is_complete", "done")).status == "complete"


@pytest.mark.anyio
@pytest.mark.usefixtures("jupyter_env")
async def test_echo_sleep_is_interrupted(flavour: tuple[str, str], assert_gone: list[int]) -> None:
    async with started(ECHO, flavour, assert_gone) as k:
        await _check_interrupted(k, ECHO)


@pytest.mark.anyio
@pytest.mark.usefixtures("jupyter_env")
async def test_echo_input_and_password(flavour: tuple[str, str], assert_gone: list[int]) -> None:
    asked: list[tuple[str, bool]] = []

    def handler(prompt: str, password: bool) -> str:
        asked.append((prompt, password))
        return f"answer {len(asked)}"

    async with started(ECHO, flavour, assert_gone) as k:
        result = await k.ok("%input Name:\n%password Secret:", input=handler)
        assert asked == [("Name:", False), ("Secret:", True)]
        assert result.stdout == "answer 1\nanswer 2\n"
        for command in ("input", "password"):
            refused = await k.execute(f"%{command} Again:")
            assert refused.status == "error"
            assert refused.error is not None
            assert refused.error.ename == "StdinNotImplementedError"
        assert len(asked) == 2


@pytest.mark.anyio
@pytest.mark.usefixtures("jupyter_env")
async def test_echo_flood_arrives_whole(flavour: tuple[str, str], assert_gone: list[int]) -> None:
    n = 20_000
    async with started(ECHO, flavour, assert_gone) as k:
        result = await k.ok(f"%flood {n}", timeout=60)
        assert result.stdout == "".join(f"{i}\n" for i in range(n))


@pytest.mark.anyio
@pytest.mark.usefixtures("jupyter_env")
async def test_echo_crash_is_reported(flavour: tuple[str, str], assert_gone: list[int]) -> None:
    async with started(ECHO, flavour, assert_gone) as k:
        process = k.process
        with pytest.raises(KernelDiedError):
            await k.execute("%crash 3", timeout=PROMPT)
        assert _wait_gone(process.pid)
        assert process.returncode == 3


@pytest.mark.anyio
@pytest.mark.usefixtures("jupyter_env")
@pytest.mark.parametrize("ignore_term", [False, True], ids=["hang", "ignore-sigterm-and-hang"])
async def test_echo_hang_is_ended_by_shutdown(
    ignore_term: bool, flavour: tuple[str, str], assert_gone: list[int]
) -> None:
    budget = 1.0
    async with started(ECHO, flavour, assert_gone, shutdown_timeout=budget) as k:
        process = k.process
        code = "%ignore-sigterm\n%hang" if ignore_term else "%hang"
        await k.send(k.kc.session.message(ExecuteRequest(code=code), channel="shell"))
        with pytest.raises(KernelTimeoutError):  # it is stuck: shell requests wait for ever
            await k.call("kernel_info", timeout=1.0)
        assert process.is_alive()
        start = time.monotonic()
        await k.shutdown()
        elapsed = time.monotonic() - start
        assert not process.is_alive()
        if ignore_term:
            assert process.returncode == -signal.SIGKILL
        else:
            # An event loop stuck in a call has no SIGTERM handler to run: SIGTERM kills it.
            assert process.returncode in (-signal.SIGTERM, -signal.SIGKILL)
        # The budget, plus the manager's 2 s wait after SIGKILL, plus slack for a busy machine.
        assert elapsed < budget + 2.0 + 3.0


@pytest.mark.anyio
@pytest.mark.usefixtures("jupyter_env")
async def test_echo_ignoring_sigterm_is_killed(
    flavour: tuple[str, str], assert_gone: list[int]
) -> None:
    async with started(ECHO, flavour, assert_gone, shutdown_timeout=1.0) as k:
        process = k.process
        await k.ok("%ignore-sigterm")
        await k.shutdown(now=True)
        assert _wait_gone(process.pid, 5.0)
        assert process.returncode == -signal.SIGKILL


# -- 6. the Python kernel through runtimelib's clients --------------------------------------------

RICH = """
import base64
class Html:
    def _repr_html_(self):
        return '<b>rich</b>'
class Png:
    def _repr_png_(self):
        return base64.b64decode({png!r})
class Bundle:
    def _repr_mimebundle_(self, include=None, exclude=None):
        data = {{'application/json': {{'a': [1, 2]}}, 'text/plain': 'B!'}}
        return data, {{'application/json': {{'expanded': True}}}}
"""


@pytest.mark.anyio
@pytest.mark.usefixtures("jupyter_env")
async def test_python_outputs(flavour: tuple[str, str], assert_gone: list[int]) -> None:
    async with started(PYTHON, flavour, assert_gone) as k:
        # Prints and displays keep their order (stdout is flushed before each display).
        code = "print('one')\ndisplay('two')\nprint('three')\ndisplay('four')\nprint('five')"
        messages = await k.stream(code)
        outputs = [
            m.content.text if isinstance(m.content, Stream) else m.content.data["text/plain"]
            for m in messages
            if isinstance(m.content, (Stream, DisplayData))
        ]
        assert outputs == ["one\n", "'two'", "three\n", "'four'", "five\n"]

        # Rich results through the display protocol.
        await k.ok(RICH.format(png=base64.b64encode(PNG_BYTES).decode()))
        html = (await k.ok("Html()")).result
        assert html is not None
        assert html.data["text/html"] == "<b>rich</b>"
        assert "text/plain" in html.data
        png = (await k.ok("Png()")).result
        assert png is not None
        assert isinstance(png.data["image/png"], str)  # base64 on the wire
        assert png.bundle.get_bytes("image/png") == PNG_BYTES
        bundle = (await k.ok("Bundle()")).result
        assert bundle is not None
        assert bundle.data == {"application/json": {"a": [1, 2]}, "text/plain": "B!"}
        assert bundle.metadata == {"application/json": {"expanded": True}}

        # display_id updates, from the same execution and from a later one.
        result = await k.ok(
            "h = display('first', display_id=True)\nprint('between')\nh.update('second')"
        )
        shown, between = result.outputs
        assert isinstance(shown, DisplayData)
        assert shown.display_id is not None
        assert shown.data["text/plain"] == "'second'"
        assert between == Stream(name="stdout", text="between\n")
        messages = await k.stream("update_display('third', display_id=h.display_id)")
        updates = [m.content for m in messages if isinstance(m.content, UpdateDisplayData)]
        assert [(u.display_id, u.data["text/plain"]) for u in updates] == [
            (shown.display_id, "'third'")
        ]

        # clear_output, at once and with wait.
        cleared = await k.ok("print('old')\nclear_output(wait=True)\nprint('new')")
        assert cleared.outputs == [Stream(name="stdout", text="new\n")]
        kept = await k.ok("print('kept')\nclear_output(wait=True)")
        assert kept.outputs == [Stream(name="stdout", text="kept\n")]
        now = await k.ok("print('gone')\nclear_output()")
        assert now.outputs == []


@pytest.mark.anyio
@pytest.mark.usefixtures("jupyter_env")
async def test_python_errors_input_and_interrupt(
    flavour: tuple[str, str], assert_gone: list[int]
) -> None:
    asked: list[tuple[str, bool]] = []

    def handler(prompt: str, password: bool) -> str:
        asked.append((prompt, password))
        return "Ada"

    async with started(PYTHON, flavour, assert_gone) as k:
        # The traceback shows the user's cell and lines, not the kernel's frames.
        await k.ok("x = 1")
        result = await k.execute("def inner():\n    raise ValueError('deep')\n\ninner()")
        assert result.status == "error"
        error = result.error
        assert error is not None
        assert (error.ename, error.evalue) == ("ValueError", "deep")
        text = "\n".join(error.traceback)
        assert '"<cell 2>", line 4' in text
        assert '"<cell 2>", line 2, in inner' in text
        assert "raise ValueError('deep')" in text
        assert "runtimelib" not in text
        assert result.reply is not None
        assert result.reply.traceback == error.traceback

        code, printed = input_code(PYTHON)
        answered = await k.ok(code, input=handler)
        assert asked == [("Who? ", False)]
        assert answered.stdout == printed
        refused = await k.execute(code)
        assert refused.status == "error"
        assert refused.error is not None
        assert refused.error.ename == "StdinNotImplementedError"

        await _check_interrupted(k, PYTHON)


@pytest.mark.anyio
@pytest.mark.usefixtures("jupyter_env")
async def test_python_completes_module_names_after_import(
    flavour: tuple[str, str], assert_gone: list[int]
) -> None:
    async with started(PYTHON, flavour, assert_gone) as k:
        reply = await k.call("complete", "import o")
        assert "os" in reply.matches
        assert (reply.cursor_start, reply.cursor_end) == (7, 8)


@pytest.mark.anyio
@pytest.mark.usefixtures("jupyter_env")
async def test_python_introspection(flavour: tuple[str, str], assert_gone: list[int]) -> None:
    async with started(PYTHON, flavour, assert_gone) as k:
        await k.ok(
            "import os\nclass K:\n    value_one = 1\nk = K()\n"
            'def frob(x, y=2):\n    """Frobnicate x with y."""\n    return x'
        )
        reply = await k.call("complete", "os.pa")
        assert "os.path" in reply.matches
        assert (reply.cursor_start, reply.cursor_end) == (0, 5)
        reply = await k.call("complete", "x = k.valu")
        assert reply.matches == ["k.value_one"]
        assert (reply.cursor_start, reply.cursor_end) == (4, 10)

        inspected = await k.call("inspect", "frob(1", 2)
        assert inspected.found
        assert "Frobnicate x with y." in inspected.data["text/plain"]
        assert "frob(x, y=2)" in inspected.data["text/plain"]
        assert not (await k.call("inspect", "no_such_name")).found

        assert (await k.call("is_complete", "x = 1")).status == "complete"
        loop = await k.call("is_complete", "for i in x:")
        assert (loop.status, loop.indent) == ("incomplete", "    ")
        nested = await k.call("is_complete", "for i in x:\n    if i:")
        assert (nested.status, nested.indent) == ("incomplete", "        ")
        assert (await k.call("is_complete", "a = = 1")).status == "invalid"


def _entries(reply: Any) -> list[Any]:
    return [json.loads(json.dumps(entry)) for entry in reply.history]


@pytest.mark.anyio
@pytest.mark.usefixtures("jupyter_env")
async def test_python_history(flavour: tuple[str, str], assert_gone: list[int]) -> None:
    async with started(PYTHON, flavour, assert_gone) as k:
        for code in ("a = 1", "a + 1", "a * 10", "a + 1"):
            await k.ok(code)
        await k.ok("'not stored'", store_history=False)

        tail = await k.call("history", hist_access_type="tail", n=2, output=True)
        assert _entries(tail) == [[1, 3, ["a * 10", "10"]], [1, 4, ["a + 1", "2"]]]
        ranged = await k.call("history", hist_access_type="range", start=1, stop=3, output=True)
        assert _entries(ranged) == [[1, 1, ["a = 1", None]], [1, 2, ["a + 1", "2"]]]
        found = await k.call("history", hist_access_type="search", pattern="a +*", output=True)
        assert _entries(found) == [[1, 2, ["a + 1", "2"]], [1, 4, ["a + 1", "2"]]]
        unique = await k.call(
            "history", hist_access_type="search", pattern="a +*", unique=True, output=True
        )
        # Which of the equal inputs is kept is not specified: only that one is.
        assert [entry[2] for entry in _entries(unique)] == [["a + 1", "2"]]
        inputs = await k.call("history", hist_access_type="tail", n=10)
        assert _entries(inputs) == [
            [1, 1, "a = 1"],
            [1, 2, "a + 1"],
            [1, 3, "a * 10"],
            [1, 4, "a + 1"],
        ]


@pytest.mark.anyio
@pytest.mark.usefixtures("jupyter_env")
async def test_python_user_expressions_and_silent(
    flavour: tuple[str, str], assert_gone: list[int]
) -> None:
    async with started(PYTHON, flavour, assert_gone) as k:
        result = await k.ok("x = 6", user_expressions={"answer": "x * 7", "oops": "1/0"})
        assert result.execution_count == 1
        answer = result.user_expressions["answer"]
        assert answer["status"] == "ok"
        assert answer["data"]["text/plain"] == "42"
        oops = result.user_expressions["oops"]
        assert (oops["status"], oops["ename"]) == ("error", "ZeroDivisionError")
        assert result.outputs == []

        messages = await k.stream("side = 'effect'\n41 + 1", silent=True)
        assert _reply_of(messages).status == "ok"
        kinds = {m.msg_type for m in messages}
        assert "execute_input" not in kinds
        assert "execute_result" not in kinds
        after = await k.ok("side")
        assert after.execution_count == 2  # the silent execution did not count
        assert after.result is not None
        assert after.result.data["text/plain"] == "'effect'"


@pytest.mark.anyio
@pytest.mark.usefixtures("jupyter_env")
async def test_python_many_prints_all_arrive(
    flavour: tuple[str, str], assert_gone: list[int]
) -> None:
    n = 20_000
    async with started(PYTHON, flavour, assert_gone) as k:
        result = await k.ok(f"for i in range({n}):\n    print(i)", timeout=60)
        assert result.stdout == "".join(f"{i}\n" for i in range(n))


def test_stream_text_goes_out_in_the_order_it_was_written() -> None:
    """The code's thread and the flusher thread both send a stream's text: one that took its
    text first and was then preempted before publishing must still publish first (20,000
    prints once arrived with a later chunk ahead of an earlier one)."""
    from runtimelib.kernel.python_io import OutStream

    class Kernel:
        shield = contextlib.nullcontext()

        def __init__(self) -> None:
            self.sent: list[str] = []
            self.publishing = threading.Event()

        def publish_now(self, content: Any, parent: Any) -> None:
            if not self.publishing.is_set():
                self.publishing.set()
                time.sleep(0.3)  # preempted between taking its text and publishing it
            self.sent.append(content.text)

    kernel = Kernel()
    stream = OutStream(kernel, "stdout")
    stream.write("first\n")
    flusher = threading.Thread(target=stream.flush)
    flusher.start()
    assert kernel.publishing.wait(5)
    stream.write("second\n")
    stream.flush()
    flusher.join()
    assert kernel.sent == ["first\n", "second\n"]


# -- a kernel outlives no parent ------------------------------------------------------------------

LAUNCHER = """
import sys, time
from runtimelib import KernelManager
km = KernelManager(sys.argv[1], guard=False)
km.start()
print(km.pid, km.connection_file, flush=True)
time.sleep(600)
"""


def _read_line(stream: Any, timeout: float) -> str:
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.append(stream.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    assert lines, "the launcher did not report its kernel"
    assert lines[0], "the launcher exited without reporting its kernel"
    return lines[0]


@pytest.mark.usefixtures("jupyter_env")
@pytest.mark.parametrize("name", KERNELS)
def test_kernel_exits_when_its_parent_is_killed(name: str, assert_gone: list[int]) -> None:
    # No orphan guard in the launcher: only the kernel's own watch on its parent can end it.
    launcher = subprocess.Popen(
        [sys.executable, "-c", LAUNCHER, name],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    pid = None
    connection_file = None
    try:
        pid_text, connection_file = _read_line(launcher.stdout, T).split(maxsplit=1)
        pid = int(pid_text)
        assert_gone.append(pid)
        connection_file = connection_file.strip()
        assert _pid_alive(pid)
        launcher.kill()
        launcher.wait(T)
        assert _wait_gone(pid, 10.0), "the kernel outlived its parent"
    finally:
        if launcher.poll() is None:
            launcher.kill()
            launcher.wait(T)
        if pid is not None and _pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
            _wait_gone(pid)
        if launcher.stdout is not None:
            launcher.stdout.close()
        # The dead launcher could not remove its connection file; the test does.
        if connection_file:
            Path(connection_file).unlink(missing_ok=True)


# -- found while testing --------------------------------------------------------------------------


@pytest.mark.usefixtures("jupyter_env")
def test_a_manager_starts_again_after_shutdown(assert_gone: list[int]) -> None:
    """One KernelManager, shut down and started again: each start works, nothing "dies".

    The watcher thread of the previous process must not take the next start for a death.
    """
    deaths: list[int | None] = []
    km = KernelManager(ECHO, shutdown_timeout=2.0)
    km.on_death.append(lambda _km, code: deaths.append(code))
    try:
        for cycle in range(20):
            km.start()
            assert km.pid is not None
            assert_gone.append(km.pid)
            assert km.connection_file is not None
            assert km.connection_file.exists(), f"cycle {cycle}: connection file removed"
            km.shutdown()
    finally:
        km.shutdown(now=True)
    assert deaths == []


# -- the Python kernel answers control while code runs --------------------------------------------


@pytest.mark.anyio
@pytest.mark.usefixtures("jupyter_env")
async def test_python_kernel_serves_control_while_code_runs(assert_gone: list[int]) -> None:
    async with AsyncKernelManager("runtimelib-python") as km, km.client() as kc:
        assert km.pid is not None
        assert_gone.append(km.pid)
        started = anyio.Event()
        outcome: list[Any] = []

        async def busy() -> None:
            code = "import time\nprint('sleeping', flush=True)\ntime.sleep(60)"
            outcome.append(await kc.execute(code, on_output=lambda _: started.set(), timeout=30))

        async with anyio.create_task_group() as tg:
            tg.start_soon(busy)
            await started.wait()
            # kernel_info on control and an interrupt_request, both while the cell sleeps.
            info = await kc.request(KernelInfoRequest(), channel="control", timeout=5)
            assert info.msg_type == "kernel_info_reply"
            await kc.interrupt(timeout=5)
        [result] = outcome
        assert (result.status, result.error.ename) == ("error", "KeyboardInterrupt")
        assert (await kc.execute("print('awake')", timeout=10)).stdout == "awake\n"

        # A shutdown_request ends a kernel stuck in a loop, without SIGTERM from the manager.
        async def spin() -> None:
            # The loop never ends: cancelled below, or failed by the kernel's exit first.
            with contextlib.suppress(KernelDiedError):
                await kc.execute("while True:\n    pass")

        async with anyio.create_task_group() as tg:
            tg.start_soon(spin)
            await anyio.sleep(0.3)
            await kc.shutdown(timeout=5)
            tg.cancel_scope.cancel()
        process = km.process
        assert process is not None
        with anyio.fail_after(10):
            assert await process.wait_async() == 0


@pytest.mark.usefixtures("jupyter_env")
def test_python_kernel_interrupts_a_printing_loop_without_getting_stuck(
    assert_gone: list[int],
) -> None:
    # Interrupts landing inside print()'s publishing (which takes locks) are deferred to the
    # user's code, so no lock is left held and the kernel answers the next request.
    with KernelManager("runtimelib-python") as km, km.client() as kc:
        assert km.pid is not None
        assert_gone.append(km.pid)
        for _ in range(5):
            code = "print('sleeping', flush=True)\nwhile True:\n    print('x' * 50, flush=True)"
            interrupted = False

            def on_output(output: Any) -> None:
                nonlocal interrupted
                if not interrupted:
                    interrupted = True
                    km.interrupt()

            result = kc.execute(code, on_output=on_output, timeout=30)
            assert result.error is not None
            assert result.error.ename == "KeyboardInterrupt"
            assert kc.execute("print('ok')", timeout=10).stdout == "ok\n"
