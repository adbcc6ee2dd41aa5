"""Parity with what people run: code written for ipykernel on runtimelib-python, and the
defects real kernels and frontends found in our kernels, clients and managers."""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import anyio
import pytest
from jupyter_client.manager import start_new_kernel

from runtimelib import AsyncKernelManager, ConnectionInfo, KernelManager, KernelSpec, errors
from runtimelib.manager import KernelProcess
from runtimelib.messages import HistoryRequest, KernelInfoRequest, Stream
from runtimelib.transports.zmq import Channel

pytestmark = [pytest.mark.kernel, pytest.mark.usefixtures("jupyter_env")]

T = 60.0
PY = "runtimelib-python"


@pytest.fixture
def py(jupyter_env: Path) -> Any:
    """A runtimelib-python kernel and its client (it starts in a fraction of a second)."""
    with KernelManager(PY) as km, km.client() as kc:
        yield kc


# -- runtimelib-python runs code written for ipykernel ---------------------------------------------


def test_a_trailing_semicolon_hides_the_value(py: Any) -> None:
    assert py.execute("6 * 7;", timeout=T).result is None
    assert py.execute("6 * 7  ;  # a comment", timeout=T).result is None
    assert py.execute("6 * 7", timeout=T).result.data["text/plain"] == "42"
    assert py.execute("x = ';'\nx", timeout=T).result.data["text/plain"] == "';'"


def test_await_at_the_top_level_of_a_cell(py: Any) -> None:
    result = py.execute(
        "import asyncio\nasync def twice(x):\n    await asyncio.sleep(0.01)\n    return 2 * x\n"
        "value = await twice(20)\nawait twice(value) // 2 + 1",
        timeout=T,
    )
    assert result.status == "ok", result.error
    assert result.result.data["text/plain"] == "41"
    # Tasks a cell starts go on in the cells' loop.
    py.execute("task = asyncio.ensure_future(twice(5))", timeout=T)
    assert py.execute("await task", timeout=T).result.data["text/plain"] == "10"


def test_getpass_asks_the_frontend_for_a_password(py: Any) -> None:
    asked: list[tuple[str, bool]] = []

    def answer(prompt: str, password: bool) -> str:
        asked.append((prompt, password))
        return "secret"

    result = py.execute(
        "import getpass\nprint(len(getpass.getpass('pw? ')))", input=answer, timeout=T
    )
    assert result.stdout == "6\n"
    assert asked == [("pw? ", True)]
    assert "GetPassWarning" not in result.stderr


def test_a_syntax_error_traceback_shows_only_the_cell(py: Any) -> None:
    error = py.execute("len?", timeout=T).error
    assert error is not None
    assert error.ename == "SyntaxError"
    text = "\n".join(error.traceback)
    assert "ast.py" not in text
    assert "python.py" not in text
    assert "<cell" in text


def test_streams_are_sent_in_whole_lines() -> None:
    # The repro of stream_split_midline: print() writes "line", " ", "3", "\n" apart, and a
    # pause between lines let a flush cut a line in two. Through jupyter_client, as nbclient.
    code = "import time\nfor i in range(6):\n    print('line', i)\n    time.sleep(0.06)"
    km, kc = start_new_kernel(kernel_name=PY)
    try:
        texts: list[str] = []
        kc.execute_interactive(
            code,
            output_hook=lambda m: m["msg_type"] == "stream" and texts.append(m["content"]["text"]),
            timeout=T,
        )
    finally:
        kc.stop_channels()
        km.shutdown_kernel()
    assert "".join(texts) == "".join(f"line {i}\n" for i in range(6))
    assert all(text.endswith("\n") for text in texts), texts


def test_a_partial_line_is_still_sent_promptly(py: Any) -> None:
    seen: list[tuple[float, str]] = []
    started = time.monotonic()

    def on_output(output: Any) -> None:
        if isinstance(output, Stream):
            seen.append((time.monotonic() - started, output.text))

    py.execute(
        "import time\nprint('loading', end='')\ntime.sleep(1)\nprint(' done')",
        on_output=on_output,
        timeout=T,
    )
    assert seen[0][1] == "loading"
    assert seen[0][0] < 0.8  # not held back until the line ends


@pytest.mark.parametrize(
    ("code", "cursor", "expected", "absent"),
    [
        ("print(len(", None, {"len", "print", "alpha_value"}, {""}),
        ("x = ", None, {"alpha_value", "abs"}, {""}),
        ("", None, {"alpha_value", "import"}, {""}),
        ("alpha_", None, {"alpha_value"}, set()),
        ("from os import pa", None, {"path", "pathsep"}, {"getcwd"}),
        ("from os.pa", None, {"path"}, set()),
        ("import jso", None, {"json"}, set()),
        ("table['", None, {"first key", "second"}, {"alpha_value"}),
        ('table["fi', None, {"first key"}, {"second"}),
        ("open('sub", None, {"subdir/"}, set()),
        ("alpha_value.bit_l", None, {"alpha_value.bit_length"}, set()),
    ],
)
def test_completion(
    py: Any, code: str, cursor: int | None, expected: set[str], absent: set[str], tmp_path: Path
) -> None:
    (tmp_path / "subdir").mkdir(exist_ok=True)
    py.execute(
        f"import os\nos.chdir({str(tmp_path)!r})\nalpha_value = 41\n"
        "table = {'first key': 1, 'second': 2}",
        timeout=T,
    )
    reply = py.complete(code, cursor, timeout=T)
    assert expected <= set(reply.matches), reply.matches
    assert not absent & set(reply.matches)
    assert reply.cursor_end == len(code)
    # What the matches replace ends at the cursor and starts where the word does.
    assert 0 <= reply.cursor_start <= reply.cursor_end


def test_completion_never_types_into_the_kernel(py: Any) -> None:
    # rlcompleter inserts a tab through readline for an empty word: never in a kernel.
    py.execute("import sys", timeout=T)
    reply = py.complete("print(", timeout=T)
    assert "" not in reply.matches
    assert "\t" not in reply.matches


# -- kernels that answer with what our types did not expect ----------------------------------------


def test_history_with_null_session_and_line_numbers_is_kept(tmp_path: Path) -> None:
    # metakernel's kernels (calysto_scheme here) answer with [null, null, "code"] entries.
    ipython_dir = Path(os.environ["IPYTHONDIR"])
    folder = ipython_dir / "metakernel" / "history"
    folder.mkdir(parents=True)
    (folder / "scheme.json").write_text(json.dumps(["(define a 1)", "(display a)"]))
    with KernelManager("calysto_scheme") as km, km.client() as kc:
        reply = kc.history(hist_access_type="tail", n=10, timeout=T)
        raw = kc.request(HistoryRequest(hist_access_type="tail", n=10), timeout=T)
    assert raw.problems == ()
    assert [entry[2] for entry in reply.history][-2:] == ["(define a 1)", "(display a)"]
    assert all(entry[0] is None and entry[1] is None for entry in reply.history)


# -- abort order -----------------------------------------------------------------------------------


def execute_replies(kc: Any, count: int) -> list[dict[str, Any]]:
    """The next ``count`` execute replies on shell. A kernel_info reply may come first: on a
    loaded machine jupyter_client's readiness loop asks again before the first answer, and
    the late answer stays queued."""
    replies: list[dict[str, Any]] = []
    while len(replies) < count:
        reply = kc.get_shell_msg(timeout=T)
        if reply["msg_type"] == "execute_reply":
            replies.append(reply)
        else:
            assert reply["msg_type"] == "kernel_info_reply", reply["msg_type"]
    return replies


@pytest.mark.parametrize("kernel", [PY, "runtimelib-echo", "python3"])
def test_the_failing_cell_is_answered_before_the_cells_it_aborts(kernel: str) -> None:
    # Through jupyter_client, whose clients wait for replies in order.
    echo = "echo" in kernel
    km, kc = start_new_kernel(kernel_name=kernel)
    try:
        first = kc.execute(
            "%sleep 0.5\n%error ZeroDivisionError x"
            if echo
            else "import time; time.sleep(0.5); 1/0"
        )
        second = kc.execute("queued" if echo else "print('queued')")
        replies = execute_replies(kc, 2)
        assert [(r["parent_header"]["msg_id"], r["content"]["status"]) for r in replies] == [
            (first, "error"),
            (second, "aborted"),
        ]
        # What a client written in jupyter_client's style sees: both replies, in order.
        # The failing cell takes a moment, so the next one is surely queued behind it.
        first = kc.execute(
            "%sleep 0.3\n%error ZeroDivisionError x"
            if echo
            else "import time; time.sleep(0.3); 1/0"
        )
        second = kc.execute("queued" if echo else "print('queued')")
        assert kc._recv_reply(first, timeout=T)["content"]["status"] == "error"
        assert kc._recv_reply(second, timeout=T)["content"]["status"] == "aborted"
    finally:
        kc.stop_channels()
        km.shutdown_kernel()


# -- subshells ------------------------------------------------------------------------------------


NO_SUBSHELLS = """
from runtimelib.kernel import Kernel


class Plain(Kernel):
    supports_subshells = False


Plain.launch()
"""


def test_create_subshell_on_a_kernel_without_subshells_raises(tmp_path: Path) -> None:
    (tmp_path / "plain.py").write_text(NO_SUBSHELLS)
    spec = KernelSpec(
        name="plain",
        resource_dir=tmp_path,
        argv=[sys.executable, str(tmp_path / "plain.py"), "-f", "{connection_file}"],
    )
    with KernelManager(spec=spec) as km, km.client() as kc:
        assert kc.kernel_info(timeout=T).supported_features == []
        with pytest.raises(errors.KernelReplyError, match="did not create a subshell"):
            kc.create_subshell(timeout=T)
        with pytest.raises(errors.KernelReplyError, match="did not list its subshells"):
            kc.list_subshells(timeout=T)
        with pytest.raises(errors.KernelReplyError, match="did not delete subshell x"):
            kc.delete_subshell("x", timeout=T)
        assert kc.kernel_info(timeout=T).implementation == "runtimelib"  # still serving


@pytest.mark.parametrize("kernel", [PY, "runtimelib-echo"])
def test_our_kernels_run_subshells_next_to_the_main_shell(kernel: str) -> None:
    echo = "echo" in kernel
    slow = "%sleep 1\nmain done" if echo else "import time\ntime.sleep(1)\nprint('main done')"
    with KernelManager(kernel) as km, km.client() as kc, ThreadPoolExecutor(2) as pool:
        assert "kernel subshells" in kc.kernel_info(timeout=T).supported_features
        first, second = kc.create_subshell(timeout=T), kc.create_subshell(timeout=T)
        assert sorted(kc.list_subshells(timeout=T)) == sorted([first, second])
        main = pool.submit(kc.execute, slow, timeout=T)
        time.sleep(0.2)
        where = "import threading\nprint(threading.current_thread().name)"
        inside = kc.execute("in the subshell" if echo else where, subshell_id=first, timeout=T)
        assert not main.done()  # answered while the main shell was busy
        assert inside.stdout == ("in the subshell\n" if echo else f"subshell-{first}\n")
        assert main.result(T).stdout == "main done\n"
        # A subshell that fails aborts what was queued in it, and nothing in the others.
        failing = "%sleep 0.3\n%error ValueError no" if echo else "time.sleep(0.3); 1/0"
        failed = pool.submit(kc.execute, failing, subshell_id=second, timeout=T)
        time.sleep(0.1)
        queued = pool.submit(kc.execute, "queued", subshell_id=second, timeout=T)
        time.sleep(0.05)
        assert kc.execute("'main'" if not echo else "main", timeout=T).reply.status == "ok"
        assert failed.result(T).reply.status == "error"
        assert queued.result(T).reply.status == "aborted"
        # What a subshell was sent before it was deleted is still answered.
        late = pool.submit(kc.execute, slow, subshell_id=first, timeout=T)
        time.sleep(0.2)
        kc.delete_subshell(first, timeout=T)
        assert late.result(T).stdout == "main done\n"
        assert kc.list_subshells(timeout=T) == [second]
        # A subshell that is not there: a typed error, and the kernel serves on.
        with pytest.raises(errors.KernelReplyError, match="SubshellNotFound"):
            kc.delete_subshell(first, timeout=T)
        gone = kc.execute("1", subshell_id=first, timeout=T)
        assert (gone.reply.status, gone.reply.ename) == ("error", "SubshellNotFound")
        assert kc.execute("2" if echo else "print(2)", timeout=T).stdout == "2\n"


# -- restarts with a connected client -------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("kernel", ["xpython", PY])
async def test_a_request_right_after_a_restart_reaches_the_new_kernel(kernel: str) -> None:
    async with AsyncKernelManager(kernel) as km, km.client() as kc:
        await kc.execute("print('before')", timeout=T)
        for _ in range(3):
            await km.restart()
            result = await kc.execute("print('after')", timeout=T)
            assert result.stdout == "after\n"


@pytest.mark.parametrize("kernel", ["runtimelib.kernel.python", "runtimelib.kernel.echo"])
def test_a_subscriber_that_joins_before_the_first_request_hears_starting(
    kernel: str, tmp_path: Path
) -> None:
    # The "starting" status goes out as iopub is bound, before anyone can hear it. A Jupyter
    # Server watching a kernel it auto-restarted subscribes anew and must hear it (as it does
    # from ipykernel) to show the kernel starting, not the old kernel's last state.
    info = ConnectionInfo.new()
    path = tmp_path / "kernel.json"
    info.write(path)
    process = KernelProcess(
        [sys.executable, "-m", kernel, "-f", str(path)], env=os.environ, connection_file=path
    )
    try:
        with Channel.connect(info, "iopub") as early:
            heard = [early.recv(timeout=T) for _ in range(2)]
            assert [m.msg_type for m in heard] == ["iopub_welcome", "status"]
            assert heard[1].content.execution_state == "starting"
            assert heard[1].parent_header is None
            with Channel.connect(info, "shell") as shell:
                shell.send(shell.message(KernelInfoRequest()))
                assert shell.recv(timeout=T).msg_type == "kernel_info_reply"
            # Once a request was served the kernel is no longer starting: a later subscriber
            # is welcomed and hears nothing more.
            with Channel.connect(info, "iopub") as late:
                assert late.recv(timeout=T).msg_type == "iopub_welcome"
                with pytest.raises(errors.KernelTimeoutError):
                    late.recv(timeout=0.5)
    finally:
        process.kill()
        process.wait(10)
        process.release()


# -- the kernel name "python" ----------------------------------------------------------------------


def test_the_kernel_name_python_is_the_native_python_kernel() -> None:
    with KernelManager("python") as km, km.client() as kc:
        assert km.kernel_name == "python3"
        assert kc.kernel_info(timeout=T).implementation == "ipython"


# -- ipc -------------------------------------------------------------------------------------------


def test_ipc_sockets_live_in_the_runtime_dir_and_go_with_the_kernel(
    jupyter_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "kernel-cwd"
    elsewhere.mkdir()
    launcher = tmp_path / "launcher-cwd"
    launcher.mkdir()
    monkeypatch.chdir(launcher)
    # A runtime dir short enough for socket paths (pytest's temporary folders are not).
    runtime = Path(tempfile.mkdtemp(prefix="rt-"))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(runtime))
    with KernelManager(PY, transport="ipc", cwd=elsewhere) as km, km.client() as kc:
        assert km.connection_info is not None
        prefix = Path(km.connection_info.ip)
        assert prefix.is_absolute()
        assert prefix.parent == runtime
        assert prefix.name.startswith("kernel-ipc-")
        sockets = [Path(f"{prefix}-{port}") for port in km.connection_info.ports.values()]
        assert all(path.exists() for path in sockets)
        assert kc.execute("import os; print(os.getcwd())", timeout=T).stdout.strip() == str(
            elsewhere
        )
    assert not any(path.exists() for path in sockets)
    assert list(launcher.iterdir()) == []  # nothing made where the launcher runs
    assert list(runtime.iterdir()) == []
    runtime.rmdir()


def test_ipc_with_a_runtime_dir_too_deep_for_a_socket_path(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(deep))
    with KernelManager(PY, transport="ipc") as km, km.client() as kc:
        assert km.connection_info is not None
        prefix = km.connection_info.ip
        assert len(prefix) < 100
        assert kc.execute("print(1)", timeout=T).stdout == "1\n"
    assert not Path(prefix).parent.exists()


def test_async_ipc_kernel(tmp_path: Path) -> None:
    async def main() -> str:
        async with AsyncKernelManager(PY, transport="ipc") as km, km.client() as kc:
            return (await kc.execute("print('ipc')", timeout=T)).stdout

    assert anyio.run(main) == "ipc\n"


# -- IPython's display functions -------------------------------------------------------------------


def test_ipython_display_functions_publish_through_the_kernel(py: Any) -> None:
    shown = py.execute(
        "from IPython.display import display, HTML, Markdown\n"
        "display(HTML('<b>x</b>'), Markdown('*y*'))",
        timeout=T,
    )
    assert shown.stdout == ""  # not the repr printed
    assert [o.data.get("text/html") for o in shown.outputs] == ["<b>x</b>", None]
    assert shown.outputs[1].data["text/markdown"] == "*y*"
    cleared = py.execute(
        "from IPython.display import clear_output\nprint('a')\nclear_output()\nprint('b')",
        timeout=T,
    )
    assert cleared.stdout == "b\n"  # 'a' was cleared, and no escape sequence was printed
    assert "\x1b" not in "".join(o.text for o in cleared.outputs if isinstance(o, Stream))
    handle = py.execute(
        "from IPython.display import display, update_display\n"
        "h = display('first', display_id=True)\nh.update('second')\n"
        "update_display('third', display_id=h.display_id)",
        timeout=T,
    )
    assert handle.outputs[0].data["text/plain"] == "'third'"  # updated in place
    last = py.execute("from IPython.display import HTML\nHTML('<i>last</i>')", timeout=T)
    assert last.result.data["text/html"] == "<i>last</i>"


def test_ipython_display_options(py: Any) -> None:
    result = py.execute(
        "from IPython.display import display, publish_display_data, Image\n"
        "class Both:\n"
        "    def _repr_html_(self): return '<p>h</p>'\n"
        "    def _repr_markdown_(self): return 'm'\n"
        "display(Both(), exclude=['text/markdown'], metadata={'text/html': {'isolated': True}})\n"
        "publish_display_data({'text/plain': 'raw', 'application/x-thing': 'thing'})",
        timeout=T,
    )
    assert result.status == "ok", result.error
    first, second = result.outputs
    assert "text/markdown" not in first.data
    assert first.metadata == {"text/html": {"isolated": True}}
    assert second.data == {"text/plain": "raw", "application/x-thing": "thing"}


# -- widgets on runtimelib-python ------------------------------------------------------------------


def test_ipywidgets_open_comms_and_take_the_frontends_messages(py: Any) -> None:
    # The frontend keeps the widgets' comms open (a registered target), as JupyterLab does.
    py.comms.register_target("jupyter.widget", lambda comm, message: None)
    shown = py.execute(
        "import ipywidgets as w\n"
        "s = w.IntSlider(value=3)\n"
        "b = w.Button(description='go')\n"
        "clicks = []\n"
        "b.on_click(lambda _: (clicks.append(1), print('clicked!')))\n"
        "w.VBox([s, b])",
        timeout=T,
    )
    view = shown.result.data["application/vnd.jupyter.widget-view+json"]
    assert view["model_id"] in py.comms.comms  # the VBox's comm, opened to the frontend
    slider, button = py.execute("print(s.model_id, b.model_id)", timeout=T).stdout.split()
    assert {slider, button} <= set(py.comms.comms)
    # The frontend moves the slider and clicks the button.
    py.comms.comms[slider].send({"method": "update", "state": {"value": 7}, "buffer_paths": []})
    clicked = []
    py.router.listeners.append(
        lambda m: m.msg_type == "stream" and clicked.append(m.raw_content["text"])
    )
    py.comms.comms[button].send({"method": "custom", "content": {"event": "click"}})
    deadline = time.monotonic() + 10
    while "clicked!\n" not in clicked and time.monotonic() < deadline:
        time.sleep(0.02)
    assert clicked == ["clicked!\n"]  # the callback's print reached the frontend
    assert py.execute("print(s.value, len(clicks))", timeout=T).stdout == "7 1\n"


def test_a_comm_handler_that_raises_leaves_the_kernel_serving(py: Any) -> None:
    # The comm package logs a failing handler (as under ipykernel); nothing reaches the
    # frontend, and the kernel goes on.
    py.execute(
        "import comm\n"
        "def boom(c, msg):\n"
        "    c.on_msg(lambda m: 1 / 0)\n"
        "comm.get_comm_manager().register_target('boom', boom)",
        timeout=T,
    )
    opened = py.comms.open("boom", {})
    opened.send({"go": 1})
    assert py.execute("print('still here')", timeout=T).stdout == "still here\n"
    assert (
        opened.comm_id in py.execute("print(list(comm.get_comm_manager().comms))", timeout=T).stdout
    )
