"""``runtimelib ... --server URL``: the command on the kernels of a real Jupyter Server, run
as a user runs it (a subprocess, its output and exit code)."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from runtimelib.errors import ServerNotFoundError
from runtimelib.remote import JupyterServer

from .remote_checks import SlowLaunchServer
from .servers import Server, free_port
from .test_cli import COMMAND, PNG_REPR, _without_timing, _write
from .test_notebook import _joined_streams

pytestmark = [pytest.mark.kernel, pytest.mark.usefixtures("jupyter_env")]


@pytest.fixture(autouse=True)
def _plain_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("JUPYTER_TOKEN", raising=False)


def cli(
    *args: str, token: str | None = None, input: str | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """The command, with the token (if any) in JUPYTER_TOKEN, as users are told to give it."""
    env = dict(os.environ)
    if token is not None:
        env["JUPYTER_TOKEN"] = token
    return subprocess.run(
        [*COMMAND, *args],
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        stdin=None if input is not None else subprocess.DEVNULL,
    )


def side_by_side(
    *commands: list[str], token: str | None = None, input: str | None = None
) -> list[subprocess.CompletedProcess[str]]:
    """The commands run at the same time (each starts a Python: together they take little
    more than the time of one), as ``cli`` runs them."""
    with ThreadPoolExecutor(len(commands)) as pool:
        return list(pool.map(lambda command: cli(*command, token=token, input=input), commands))


def interrupted(
    args: list[str], token: str, when_ready: Callable[[subprocess.Popen[str]], None]
) -> subprocess.CompletedProcess[str]:
    """The command, sent SIGINT once ``when_ready`` returns, run to its end (killed if it
    does not end)."""
    process = subprocess.Popen(
        [*COMMAND, *args],
        env={**os.environ, "JUPYTER_TOKEN": token},
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        when_ready(process)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


@pytest.fixture
def server(remote_server: Server) -> Iterator[Server]:
    """The shared server; kernels a test leaves on it are shut down after the test."""
    api = JupyterServer(remote_server.url, remote_server.token)
    before = {model.id for model in api.kernels()}
    try:
        yield remote_server
    finally:
        for model in api.kernels():
            if model.id not in before:
                with contextlib.suppress(Exception):
                    api.shutdown_kernel(model.id)
        api.close()


def kernel_ids(server: Server) -> set[str]:
    with JupyterServer(server.url, server.token) as api:
        return {model.id for model in api.kernels()}


def start_kernel(server: Server, name: str) -> str:
    """A kernel started through the API (the server fixture shuts it down)."""
    with JupyterServer(server.url, server.token) as api:
        return api.start_kernel(name).id


def one_line(text: str) -> str:
    lines = text.splitlines()
    assert len(lines) == 1, text
    assert "Traceback" not in text
    return lines[0]


# -- kernelspecs and running kernels -------------------------------------------------------------


def test_kernels_lists_the_servers_kernelspecs(server: Server) -> None:
    with JupyterServer(server.url, server.token) as api:
        theirs = api.kernelspecs()
    url = server.url
    listed, quiet, table = side_by_side(
        ["kernels", "--server", url, "--json"],
        ["kernels", "-q", "--server", url],
        ["kernels", "--server", url],
        token=server.token,
    )
    assert listed.returncode == 0, listed.stderr
    specs = {spec["name"]: spec for spec in json.loads(listed.stdout)}
    assert set(specs) == set(theirs.kernelspecs)
    assert {"python3", "runtimelib-echo"} <= set(specs)
    assert specs["python3"]["language"] == "python"
    assert specs["runtimelib-echo"]["display_name"] == "Echo (runtimelib)"
    assert [name for name, spec in specs.items() if spec["default"]] == [theirs.default]
    assert set(specs["python3"]) == {"name", "display_name", "language", "path", "argv", "default"}
    assert quiet.stdout.split() == sorted(specs)
    assert table.stdout.splitlines()[0].split() == ["NAME", "LANGUAGE", "DISPLAY", "NAME"]
    assert any(
        line.split()[:2] == ["runtimelib-echo", "text"] for line in table.stdout.splitlines()
    )


def test_start_ps_exec_interrupt_restart_stop(server: Server) -> None:
    url, token = server.url, server.token
    started = cli("start", "--server", url, "-k", "python3", "--json", token=token)
    assert started.returncode == 0, started.stderr
    info = json.loads(started.stdout)
    kernel_id = info["id"]
    assert (info["kernel_name"], info["server"]) == ("python3", url)
    assert kernel_id in kernel_ids(server)
    # State lives in the server's kernel between commands; a unique id prefix is enough.
    ps, assigned = side_by_side(
        ["ps", "--server", url, "--json"],
        ["exec", "--server", url, kernel_id[:8], "-c", "x = 41"],
        token=token,
    )
    assert assigned.returncode == 0, assigned.stderr
    mine = [k for k in json.loads(ps.stdout) if k["id"] == kernel_id]
    assert len(mine) == 1
    assert mine[0]["kernel_name"] == "python3"
    assert set(mine[0]) == {"id", "kernel_name", "execution_state", "connections", "last_activity"}
    shown = cli("run", "--server", url, "--existing", kernel_id, "-c", "x + 1", token=token)
    assert (shown.returncode, shown.stdout) == (0, "42\n"), shown.stderr
    # An interrupt from another command stops what the kernel runs.
    busy = subprocess.Popen(
        [*COMMAND, "exec", "--server", url, kernel_id, "-c",
         "import time\nprint('sleeping', flush=True)\ntime.sleep(60)"],
        env={**os.environ, "JUPYTER_TOKEN": token},
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert busy.stdout is not None
        assert busy.stdout.readline() == "sleeping\n"
        interrupted = cli("interrupt", "--server", url, kernel_id, token=token)
        assert interrupted.returncode == 0, interrupted.stderr
        assert interrupted.stdout == f"interrupted {kernel_id}\n"
        _, err = busy.communicate(timeout=30)
    finally:
        if busy.poll() is None:
            busy.kill()
            busy.communicate()
    assert busy.returncode == 1
    assert "KeyboardInterrupt" in err
    restarted = cli("restart", "--server", url, kernel_id, token=token)
    assert restarted.returncode == 0, restarted.stderr
    after = cli("exec", "--server", url, kernel_id, "-c", "print('x' in dir())", token=token)
    assert after.stdout == "False\n"  # a fresh kernel, the same id
    # The restart was the server's: no kernel was started on this machine (the jupyter_env
    # fixture fails the test for any connection file left in the runtime dir).
    assert list(Path(os.environ["JUPYTER_RUNTIME_DIR"]).glob("kernel-*.json")) == []
    stopped = cli("stop", "--server", url, kernel_id, "--json", token=token)
    assert stopped.returncode == 0, stopped.stderr
    assert json.loads(stopped.stdout) == [{"id": kernel_id, "stopped": True}]
    assert kernel_id not in kernel_ids(server)
    gone = cli("exec", "--server", url, kernel_id, "-c", "1", token=token)
    assert gone.returncode == 3


def test_exec_outputs_and_exit_codes_are_as_for_local_kernels(server: Server) -> None:
    url, token = server.url, server.token
    kernel_id = start_kernel(server, "python3")
    code = "import sys\nprint('out ü')\nprint('err', file=sys.stderr)\n6 * 7"
    asking = "print('hi', input('name? '))"
    # One kernel runs the requests of several clients in turn; each gets its own outputs.
    # (Not an error among them: a kernel aborts what is queued behind one.)
    done, reported, asked = side_by_side(
        ["exec", "--server", url, kernel_id, "-c", code],
        ["exec", "--json", "--server", url, kernel_id, "-c", "print('a')"],
        ["exec", "--server", url, kernel_id, "-c", asking],
        token=token,
        input="Ada\n",
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "out ü\n42\n"
    assert "err\n" in done.stderr
    failed = cli("exec", "--server", url, kernel_id, "-c", "print('before')\n1 / 0", token=token)
    assert failed.returncode == 1
    assert failed.stdout == "before\n"
    assert "ZeroDivisionError" in failed.stderr
    assert "\x1b[" not in failed.stderr
    assert json.loads(reported.stdout)["outputs"] == [
        {"output_type": "stream", "name": "stdout", "text": "a\n"}
    ]
    assert asked.stdout == "name? hi Ada\n", asked.stderr
    slow = cli(
        "exec", "--server", url, kernel_id, "--timeout", "1", "-c", "import time; time.sleep(30)",
        token=token,
    )  # fmt: skip
    assert slow.returncode == 5
    assert "the code was still running after 1 s" in slow.stderr
    assert kernel_id in kernel_ids(server)  # someone else's kernel keeps running


# -- commands that start a kernel for themselves -------------------------------------------------


def test_run_starts_a_kernel_and_shuts_it_down(server: Server) -> None:
    url, token = server.url, server.token
    before = kernel_ids(server)
    echoed, failed = side_by_side(
        ["run", "--server", url, "-k", "runtimelib-echo", "-c", "hello"],
        ["run", "--server", url, "-k", "python3", "-c", "1 / 0"],
        token=token,
    )
    assert (echoed.returncode, echoed.stdout) == (0, "hello\n"), echoed.stderr
    assert failed.returncode == 1
    assert "ZeroDivisionError" in failed.stderr
    assert kernel_ids(server) == before


def test_ctrl_c_ends_a_run_and_its_kernel(server: Server) -> None:
    before = kernel_ids(server)
    code = "import time\nprint('sleeping', flush=True)\ntime.sleep(60)"

    def sleeping(process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        assert process.stdout.readline() == "sleeping\n"
        assert len(kernel_ids(server) - before) == 1

    args = ["run", "--server", server.url, "-k", "python3", "-c", code]
    process = interrupted(args, server.token, sleeping)
    assert process.returncode == 130
    assert "KeyboardInterrupt" in process.stderr  # the server interrupted the code
    assert kernel_ids(server) == before


def test_console_on_a_server(server: Server) -> None:
    kernel_id = start_kernel(server, "python3")
    before = kernel_ids(server)
    done, attached = side_by_side(
        ["console", "--server", server.url, "-k", "python3"],
        ["console", "--server", server.url, "--existing", kernel_id],
        token=server.token,
        input="x = 6 * 7\nprint(x)\n",
    )
    assert done.returncode == 0, done.stderr
    assert "In [2]: 42\n" in done.stdout
    assert attached.returncode == 0, attached.stderr
    assert "In [2]: 42\n" in attached.stdout
    assert kernel_ids(server) == before  # its own kernel ended, the other left running


def _notebook() -> nbformat.NotebookNode:
    return new_notebook(
        metadata={
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
        },
        cells=[
            new_code_cell("from IPython.display import display, update_display"),
            new_markdown_cell("# Outputs"),
            new_code_cell("import sys\nprint('ünïcode ✓')\nprint('e', file=sys.stderr)"),
            new_code_cell(PNG_REPR + "display(Png())"),
            new_code_cell("display('first', display_id='d')"),
            new_code_cell("update_display('second', display_id='d')"),
            new_code_cell("raise ValueError('tagged')", metadata={"tags": ["raises-exception"]}),
            new_code_cell("'last'"),
        ],
    )


def test_execute_on_a_server_writes_what_a_local_run_writes(server: Server, tmp_path: Path) -> None:
    source = _write(_notebook(), tmp_path / "nb.ipynb")
    failing = _notebook()
    failing.cells[6].metadata = {}
    broken = _write(failing, tmp_path / "broken.ipynb")
    out = tmp_path / "broken-out.ipynb"
    before = kernel_ids(server)
    remote, local, failed = side_by_side(
        ["execute", "--server", server.url, str(source), "-o", str(tmp_path / "remote.ipynb")],
        ["execute", str(source), "-o", str(tmp_path / "local.ipynb")],
        ["execute", "--server", server.url, str(broken), "-o", str(out)],
        token=server.token,
    )
    assert remote.returncode == 0, remote.stderr
    assert ": 7 cells in" in remote.stderr
    assert local.returncode == 0, local.stderr
    theirs = _without_timing(nbformat.read(tmp_path / "local.ipynb", as_version=4))
    ours = _without_timing(nbformat.read(tmp_path / "remote.ipynb", as_version=4))
    ours, theirs = _joined_streams(ours), _joined_streams(theirs)
    for index, (a, b) in enumerate(zip(ours.cells, theirs.cells, strict=True)):
        assert a == b, f"cell {index} differs"
    assert ours.metadata == theirs.metadata
    assert ours.cells[4].outputs[0].data["text/plain"] == "'second'"
    assert "iopub.status.busy" in nbformat.read(source.with_name("remote.ipynb"), 4).cells[
        2
    ].metadata.get("execution", {})
    # A failing cell: exit code 1, the notebook up to it written; no kernel left either way.
    assert failed.returncode == 1
    assert "ValueError" in failed.stderr
    assert nbformat.read(out, 4).cells[6].outputs[0].ename == "ValueError"
    assert kernel_ids(server) == before


# -- failures: one line, an exit code, never the token ------------------------------------------


def _commands(url: str, notebook: Path, *only: str) -> list[list[str]]:
    """Every command that talks to the server at ``url`` (or those named in ``only``)."""
    commands = [
        ["kernels", "--server", url],
        ["ps", "--server", url],
        ["start", "--server", url, "-k", "runtimelib-echo"],
        ["exec", "--server", url, "some-id", "-c", "1"],
        ["interrupt", "--server", url, "some-id"],
        ["restart", "--server", url, "some-id"],
        ["stop", "--server", url, "some-id"],
        ["stop", "--server", url, "--all"],
        ["run", "--server", url, "-k", "runtimelib-echo", "-c", "1"],
        ["console", "--server", url, "-k", "runtimelib-echo"],
        ["execute", "--server", url, str(notebook), "-o", str(notebook.with_name("out.ipynb"))],
    ]
    return [command for command in commands if not only or command[0] in only]


def test_a_wrong_token_exits_7_without_showing_it(server: Server, tmp_path: Path) -> None:
    wrong = f"wrong-{secrets.token_hex(8)}"
    notebook = _write(_notebook(), tmp_path / "nb.ipynb")
    before = kernel_ids(server)
    commands = _commands(server.url, notebook)
    # --token wins over JUPYTER_TOKEN; a wrong one on the command line is not echoed either.
    commands.append(["ps", "--server", server.url, "--token", wrong])
    for done in side_by_side(*commands, token=wrong):
        assert done.returncode == 7, (done.args, done.stderr)
        assert "token" in one_line(done.stderr), done.args
        assert wrong not in done.stdout + done.stderr, done.args
    given, missing = side_by_side(
        ["ps", "--server", server.url, "--token", wrong], ["ps", "--server", server.url]
    )
    assert (given.returncode, missing.returncode) == (7, 7)  # a wrong token, and none at all
    assert wrong not in given.stdout + given.stderr
    assert kernel_ids(server) == before


class _EchoingFailure(BaseHTTPRequestHandler):
    """A broken server that puts what it was sent, the token included, in its reason."""

    def _fail(self) -> None:
        body = json.dumps({"message": f"failed for {self.headers.get('Authorization')}"})
        self.send_response(500)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())

    do_GET = do_POST = do_DELETE = _fail

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def failing_server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _EchoingFailure)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_a_failing_server_exits_6_without_showing_the_token(
    failing_server: str, tmp_path: Path
) -> None:
    token = secrets.token_hex(16)
    notebook = _write(_notebook(), tmp_path / "nb.ipynb")
    commands = _commands(failing_server, notebook, "ps", "start", "exec", "stop", "execute")
    for done in side_by_side(*commands, token=token):
        assert done.returncode == 6, (done.args, done.stderr)
        # The server's reason is shown, with the token taken out of it.
        assert "(500): failed for token <token>" in one_line(done.stderr), done.args
        assert token not in done.stdout + done.stderr, done.args


def test_an_unreachable_server_exits_6(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    token = secrets.token_hex(16)
    notebook = _write(_notebook(), tmp_path / "nb.ipynb")
    commands = _commands(url, notebook, "kernels", "run", "console", "execute")
    for done in side_by_side(*commands, token=token):
        assert done.returncode == 6, (done.args, done.stderr)
        assert f"cannot reach the server at {url}" in one_line(done.stderr), done.args
        assert token not in done.stdout + done.stderr, done.args
    assert not notebook.with_name("out.ipynb").exists()


def test_a_kernel_the_server_does_not_have_exits_3(server: Server) -> None:
    url = server.url
    for done in side_by_side(
        ["exec", "--server", url, "no-such-id", "-c", "1"],
        ["interrupt", "--server", url, "no-such-id"],
        ["restart", "--server", url, "no-such-id"],
        ["stop", "--server", url, "no-such-id"],
        ["console", "--server", url, "--existing", "no-such-id"],
        token=server.token,
    ):
        assert done.returncode == 3, (done.args, done.stderr)
        assert f"no running kernel 'no-such-id' on the server at {url}" in one_line(done.stderr)


def test_a_kernelspec_the_server_does_not_have_exits_3(server: Server, tmp_path: Path) -> None:
    url = server.url
    notebook = _write(_notebook(), tmp_path / "nb.ipynb")
    before = kernel_ids(server)
    for done in side_by_side(
        ["start", "--server", url, "-k", "no-such-spec"],
        ["run", "--server", url, "-k", "no-such-spec", "-c", "1"],
        ["execute", "--server", url, "-k", "no-such-spec", str(notebook)],
        token=server.token,
    ):
        assert done.returncode == 3, (done.args, done.stderr)
        assert f"no kernelspec named 'no-such-spec' on the server at {url}" in one_line(done.stderr)
    assert kernel_ids(server) == before


@pytest.mark.xdist_group("kernel_gateway")  # one gateway for the run, not one per worker
def test_a_kernel_gateway_that_does_not_list_its_kernels(kernel_gateway: Server) -> None:
    url, token = kernel_gateway.url, kernel_gateway.token
    started = cli("start", "--server", url, "-k", "runtimelib-echo", token=token)
    kernel_id = started.stdout.strip()
    try:
        assert started.returncode == 0, started.stderr
        listed, ran, unknown = side_by_side(
            ["ps", "--server", url],
            ["exec", "--server", url, kernel_id, "-c", "on the gateway"],
            ["exec", "--server", url, "no-such-id", "-c", "1"],
            token=token,
        )
        # Kernel Gateway refuses to list kernels by default, to any token: the message says so.
        assert listed.returncode == 6
        assert "does not list its kernels" in one_line(listed.stderr)
        assert (ran.returncode, ran.stdout) == (0, "on the gateway\n"), ran.stderr
        # An id it does not have is still "no such kernel", though no prefix can be looked up.
        assert unknown.returncode == 3, unknown.stderr
    finally:
        stopped = cli("stop", "--server", url, kernel_id, token=token)
    assert stopped.returncode == 0, stopped.stderr
    with JupyterServer(url, token) as api, pytest.raises(ServerNotFoundError):
        api.kernel(kernel_id)


# -- usage, completion, imports -----------------------------------------------------------------


def test_usage_errors_with_a_server_exit_2() -> None:
    for done in side_by_side(
        ["ps", "--token", "t"],
        ["run", "--server", "http://127.0.0.1:1", "--cwd", ".", "-c", "1"],
        ["start", "--server", "http://127.0.0.1:1", "--encryption", "required"],
        ["kernels", "--server", "http://127.0.0.1:1", "remove", "python3"],
        ["ps", "--server", "http://127.0.0.1:1/?token=secret"],
    ):
        assert done.returncode == 2, (done.args, done.stderr)
        assert "error:" in one_line(done.stderr)
        assert "secret" not in done.stderr


def test_completion_offers_the_servers_kernels(server: Server, tmp_path: Path) -> None:
    kernel_id = start_kernel(server, "runtimelib-echo")
    script = cli("completion", "bash").stdout
    for command in ("kernels", "ps", "start", "exec", "run", "stop", "console", "execute"):
        assert "--server" in next(line for line in script.splitlines() if f" {command})" in line)
    (tmp_path / "complete.sh").write_text(script)
    probe = (
        f"source {tmp_path / 'complete.sh'}\n"
        f"COMP_WORDS=(runtimelib stop --server {server.url} ''); COMP_CWORD=4; _runtimelib;"
        ' echo "${COMPREPLY[*]}"\n'
        f"COMP_WORDS=(runtimelib run --server {server.url} -k runtimelib-e); COMP_CWORD=5;"
        ' _runtimelib; echo "${COMPREPLY[*]}"\n'
        "COMP_WORDS=(runtimelib ps --t); COMP_CWORD=2; _runtimelib;"
        ' echo "${COMPREPLY[*]}"\n'
    )
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "JUPYTER_TOKEN": server.token,
    }
    done = subprocess.run(
        ["bash", "-c", probe], capture_output=True, text=True, timeout=60, env=env
    )
    lines = done.stdout.splitlines()
    assert kernel_id in lines[0].split()
    assert lines[1].split() == ["runtimelib-echo"]
    assert lines[2].split() == ["--token"]


def test_httpx_is_imported_only_for_a_server() -> None:
    probe = (
        "import sys, runtimelib, runtimelib.cli\n"
        "from runtimelib.cli import main\n"
        "main(['ps', '-q']); main(['kernels', '-q'])\n"
        "print('httpx' in sys.modules, file=sys.stderr)\n"
        "main(['ps', '-q', '--server', 'http://127.0.0.1:1'])\n"
        "print('httpx' in sys.modules, file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.stderr.splitlines()[0] == "False", done.stderr
    assert done.stderr.splitlines()[-1] == "True", done.stderr


@pytest.mark.anyio
async def test_execute_notebook_async_takes_a_kernel_factory(server: Server) -> None:
    from runtimelib import execute_notebook_async
    from runtimelib.remote import AsyncRemoteKernelManager

    asked: list[str | None] = []

    def factory(name: str | None) -> AsyncRemoteKernelManager:
        asked.append(name)
        return AsyncRemoteKernelManager(name, server.url, server.token)

    nb = new_notebook(
        metadata={"kernelspec": {"name": "runtimelib-echo", "display_name": "Echo"}},
        cells=[new_code_cell("hello there")],
    )
    before = kernel_ids(server)
    done = await execute_notebook_async(nb, kernel_factory=factory)
    assert asked == ["runtimelib-echo"]
    assert [o.get("text") for o in done.cells[0].outputs] == ["hello there\n"]
    assert kernel_ids(server) == before


@pytest.mark.parametrize("command", [["start"], ["run", "-c", "1"]])
def test_ctrl_c_while_the_server_starts_the_kernel_leaves_none_behind(command: list[str]) -> None:
    # A launch that takes the server a while (a gateway on a cluster): Ctrl-C meanwhile waits
    # for the kernel's id, to shut that kernel down, and leaves with 130.
    server = SlowLaunchServer(delay=1.5)
    try:
        args = [command[0], "--server", server.url, *command[1:]]

        def launching(_: subprocess.Popen[str]) -> None:
            assert server.launching.wait(30)

        cmd = interrupted(args, "t", launching)
        assert cmd.returncode == 130, cmd.stderr
        assert (cmd.stdout, cmd.stderr) == ("", "")
        assert len(server.started) == 1
        assert server.deleted == server.started
    finally:
        server.close()
