"""The mistakes people make with the ``runtimelib`` command, and the work it must never lose.

Each test runs the real command as a subprocess and checks its exit code and its one-line
message: no traceback, nothing started that should not be, nothing left behind.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from .servers import Server as JupyterServer
from .test_cli import COMMAND, _pid_gone, _write, cli, write_stale_connection_file

pytestmark = [pytest.mark.kernel, pytest.mark.usefixtures("jupyter_env")]


def _one_line(stderr: str) -> str:
    """The command's only line on stderr (never a traceback)."""
    assert "Traceback" not in stderr, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


def _notebook(
    *cells: nbformat.NotebookNode, kernel: str = "runtimelib-python"
) -> nbformat.NotebookNode:
    return new_notebook(
        metadata={"kernelspec": {"name": kernel, "display_name": kernel}}, cells=list(cells)
    )


# -- usage errors: exit 2, before anything starts -------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["exec", "", "-c", "1"],
        ["exec", "  ", "-c", "1"],
        ["run", "--existing", "", "-c", "1"],
        ["console", "--existing", ""],
        ["interrupt", ""],
        ["restart", ""],
        ["stop", ""],
    ],
)
def test_an_empty_kernel_id_is_a_usage_error(args: list[str], jupyter_env: Path) -> None:
    done = cli(*args, timeout=30)
    assert done.returncode == 2, done.stderr
    assert "the kernel id is empty" in done.stderr
    assert "Traceback" not in done.stderr
    # Above all, no kernel was started instead.
    assert not jupyter_env.exists() or list(jupyter_env.glob("kernel-*.json")) == []


@pytest.mark.parametrize("value", ["-1", "0", "nan", "inf", "soon"])
def test_a_timeout_must_be_a_positive_number(value: str) -> None:
    for args in (["run", "-c", "1"], ["execute", "x.ipynb"], ["stop", "x"]):
        done = cli(*args, "--timeout", value, timeout=30)
        assert done.returncode == 2, (args, done.stderr)
        assert "is not a positive number of seconds" in done.stderr


def test_a_kernel_name_that_no_kernelspec_can_have_is_a_usage_error() -> None:
    done = cli("run", "-k", "../etc", "-c", "1", timeout=30)
    assert done.returncode == 2
    assert _one_line(done.stderr).startswith("runtimelib run: error: invalid kernel name '../etc'")


@pytest.mark.parametrize("command", [["run", "-c", "1"], ["start"], ["execute", "x.ipynb"]])
def test_a_working_directory_that_does_not_exist_is_a_usage_error(
    command: list[str], tmp_path: Path
) -> None:
    missing = tmp_path / "nowhere"
    done = cli(*command, "--cwd", str(missing), timeout=30)
    assert done.returncode == 2
    assert f"{missing} does not exist" in done.stderr
    assert "kernel" not in done.stderr.split("error:")[-1]  # not blamed on the kernel


def test_run_on_a_notebook_points_to_execute(tmp_path: Path) -> None:
    for name in ("analysis.ipynb", "analysis.json"):
        path = _write(_notebook(new_code_cell("1")), tmp_path / name)
        done = cli("run", str(path), timeout=30)
        assert done.returncode == 2
        assert f"is a notebook, not code: run it with `runtimelib execute {path}`" in done.stderr


@pytest.mark.parametrize(
    ("content", "why"),
    [
        ('{"a": 1}', "no 'nbformat' version"),
        ("[1, 2]", "a notebook is a JSON object with cells"),
        ('{"nbformat": 4, "nbformat_minor": 5, "cells": []}', "missing an expected key: metadata"),
        ('{"nbformat": 9, "cells": []}', "Unsupported nbformat version 9"),
        ("{not json", "it is not JSON"),
    ],
)
def test_execute_on_json_that_is_not_a_notebook(content: str, why: str, tmp_path: Path) -> None:
    path = tmp_path / "x.ipynb"
    path.write_text(content)
    done = cli("execute", str(path), timeout=30)
    assert done.returncode == 2
    line = done.stderr.strip().splitlines()[-1]
    assert line.startswith(f"runtimelib execute: error: {path} is not")
    assert why in line
    assert "Traceback" not in done.stderr


# -- execute never loses the outputs ---------------------------------------------------------------


def test_execute_checks_where_it_writes_before_the_first_cell(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    path = _write(
        _notebook(new_code_cell(f"open({str(marker)!r}, 'w').close()")), tmp_path / "n.ipynb"
    )
    for target, why in (
        (tmp_path / "missing" / "dir" / "out.ipynb", "does not exist"),
        (tmp_path, "it is a directory"),
    ):
        done = cli("execute", str(path), "-o", str(target), timeout=60)
        assert done.returncode == 2, done.stderr
        assert why in done.stderr
        assert "Traceback" not in done.stderr
        assert not marker.exists()  # no cell ran, so no work was lost


def test_execute_saves_the_outputs_when_the_destination_vanishes(tmp_path: Path) -> None:
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    cells = [
        new_code_cell("print('precious')"),
        new_code_cell(f"import shutil; shutil.rmtree({str(out_dir)!r})"),
    ]
    path = _write(_notebook(*cells), tmp_path / "n.ipynb")
    done = cli("execute", str(path), "-o", str(out_dir / "out.ipynb"), timeout=60)
    assert done.returncode == 2
    message = done.stderr.strip().splitlines()[-1]
    assert "cannot write" in message
    rescue = Path(message.rsplit("the executed notebook was saved in ", 1)[1])
    try:
        saved = nbformat.read(rescue, as_version=4)
        assert saved.cells[0].outputs[0]["text"] == "precious\n"
    finally:
        rescue.unlink()


def test_execute_writes_atomically_and_keeps_the_file_mode(tmp_path: Path) -> None:
    folder = tmp_path / "notebooks"
    folder.mkdir()
    path = _write(_notebook(new_code_cell("print('hi')")), folder / "n.ipynb")
    path.chmod(0o640)
    done = cli("execute", str(path), "--inplace", timeout=60)
    assert done.returncode == 0, done.stderr
    assert path.stat().st_mode & 0o777 == 0o640
    assert nbformat.read(path, as_version=4).cells[0].outputs[0]["text"] == "hi\n"
    # Byte for byte what nbformat itself writes.
    assert path.read_text() == nbformat.writes(nbformat.read(path, as_version=4)) + "\n"
    assert sorted(p.name for p in folder.iterdir()) == ["n.ipynb"]  # no temporary file left


def test_a_failing_notebook_names_the_cell_as_people_count_and_says_what_was_written(
    tmp_path: Path,
) -> None:
    cells = [
        new_markdown_cell("# title"),
        new_code_cell("x = 1"),
        new_code_cell("raise ValueError('boom')"),
        new_code_cell("'never'"),
    ]
    path = _write(_notebook(*cells, kernel="python3"), tmp_path / "n.ipynb")
    out = tmp_path / "out.ipynb"
    done = cli("execute", str(path), "-o", str(out), timeout=60)
    assert done.returncode == 1
    assert f"{path}: cell 3 of 4 (In [2]) raised ValueError: boom" in done.stderr
    assert "Cell In[2]" in done.stderr  # the kernel's traceback, numbered the same way
    assert f"{path}: the notebook up to the failing cell is in {out}" in done.stderr
    assert nbformat.read(out, as_version=4).cells[2].outputs[0]["ename"] == "ValueError"


def test_one_cell_is_one_cell(tmp_path: Path) -> None:
    path = _write(_notebook(new_code_cell("1")), tmp_path / "n.ipynb")
    done = cli("execute", str(path), timeout=60)
    assert done.returncode == 0, done.stderr
    assert f"{path}: 1 cell in " in done.stderr


# -- run and exec ------------------------------------------------------------------------------


@pytest.mark.parametrize("kernel", ["runtimelib-python", "python3"])
def test_input_at_the_end_of_standard_input_raises_eof_error(kernel: str) -> None:
    done = cli("run", "-k", kernel, "-c", "input('name? ')", input="", timeout=60)
    assert done.returncode == 1
    assert "EOFError" in done.stderr
    answered = cli("run", "-k", kernel, "-c", "print(input() + '!')", input="Ada\n", timeout=60)
    assert answered.stdout.endswith("Ada!\n")


def test_ctrl_c_on_exec_stops_waiting_and_leaves_the_kernel_running() -> None:
    started = json.loads(cli("start", "-k", "runtimelib-python", "--json").stdout)
    kernel_id, pid = started["id"], started["pid"]
    try:
        process = subprocess.Popen(
            [
                *COMMAND,
                "exec",
                kernel_id,
                "-c",
                "import time\nprint('go', flush=True)\ntime.sleep(60)",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert process.stdout is not None
        assert process.stdout.readline() == "go\n"
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=30)
        assert process.returncode == 130
        assert "interrupting the kernel (Ctrl-C again to stop waiting)" in err
        # The kernel was interrupted, not stopped: it serves the next command.
        assert cli("exec", kernel_id, "-c", "print(6 * 7)").stdout == "42\n"
        assert not _pid_gone(pid, timeout=0.1)
    finally:
        cli("stop", kernel_id)


def test_interrupt_says_what_it_did() -> None:
    kernel_id = json.loads(cli("start", "-k", "runtimelib-echo", "--json").stdout)["id"]
    try:
        done = cli("interrupt", kernel_id)
        assert done.returncode == 0
        assert done.stdout == f"interrupted {kernel_id}\n"
    finally:
        cli("stop", kernel_id)


# -- stopping for certain ---------------------------------------------------------------------

STUCK = (
    "import os, signal, time\n"
    "signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
    "print(os.getpid(), flush=True)\n"
    "while True:\n"
    "    time.sleep(0.05)\n"
)


@pytest.mark.parametrize("kernel", ["runtimelib-python", "python3"])
def test_stop_ends_a_kernel_stuck_in_code_that_ignores_interrupts(
    kernel: str, jupyter_env: Path
) -> None:
    started = json.loads(cli("start", "-k", kernel, "--json").stdout)
    kernel_id, pid = started["id"], started["pid"]
    busy = subprocess.Popen(
        [*COMMAND, "exec", kernel_id, "-c", STUCK],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert busy.stdout is not None
        assert int(busy.stdout.readline()) == pid
        listed = json.loads(cli("ps", "--json").stdout)
        assert [(k["id"], k["pid"]) for k in listed] == [(kernel_id, pid)]
        stopped = cli("stop", kernel_id, "--timeout", "2", "--json")
        assert stopped.returncode == 0, stopped.stderr
        (report,) = json.loads(stopped.stdout)
        assert report["stopped"] is True
        assert report["pid"] == pid
        # Gone for certain when the command says so, not some time later.
        assert _pid_gone(pid, timeout=0.5)
        assert list(jupyter_env.glob("kernel-*.json")) == []
    finally:
        busy.kill()
        busy.communicate()
        if not _pid_gone(pid, timeout=0.1):
            os.kill(pid, signal.SIGKILL)


def test_ps_shows_the_pid_of_a_started_kernel() -> None:
    started = json.loads(cli("start", "-k", "runtimelib-echo", "--json").stdout)
    try:
        table = cli("ps").stdout.splitlines()
        assert table[0].split() == ["ID", "KERNEL", "PID", "STATE", "CONNECTION", "FILE"]
        assert table[1].split()[:4] == [
            started["id"],
            "runtimelib-echo",
            str(started["pid"]),
            "alive",
        ]
    finally:
        cli("stop", started["id"])


def test_prune_says_what_it_kept(jupyter_env: Path) -> None:
    young = write_stale_connection_file(jupyter_env, "young", kernel_name="gone")
    done = cli("prune", timeout=30)
    assert done.returncode == 0
    assert "kept 1 file of kernels that do not answer, younger than 30 s" in done.stderr
    assert young.exists()
    assert "removed" in cli("prune", "--min-age", "0").stdout
    assert not young.exists()
    assert "nothing to prune" in cli("prune").stderr


# -- a kernel that another program owns -------------------------------------------------------


def test_restart_of_a_jupyter_server_kernel_goes_through_the_server(
    jupyter_server: JupyterServer, jupyter_env: Path
) -> None:
    url, token, server_pid = jupyter_server[:3]
    kernel = _api(url, token, "POST", "/api/kernels", {"name": "python3"})
    kernel_id = kernel["id"]
    try:
        path = jupyter_env / f"kernel-{kernel_id}.json"
        _wait_for(path.exists, "the server's connection file")
        before = _kernel_pids(path)
        assert len(before) == 1
        assert _parent(before[0]) == server_pid
        done = cli("restart", kernel_id, "--timeout", "30", timeout=60)
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith(f"restarted {kernel_id}")
        # The server started the new kernel itself (it is the server's child), no second one
        # was started, and the server still has it.
        after = _kernel_pids(path)
        assert len(after) == 1
        assert after != before
        assert _parent(after[0]) == server_pid
        assert _api(url, token, "GET", f"/api/kernels/{kernel_id}")["id"] == kernel_id
        assert cli("exec", kernel_id, "-c", "print(6 * 7)").stdout == "42\n"
    finally:
        _api(url, token, "DELETE", f"/api/kernels/{kernel_id}")
        _wait_for(lambda: not _kernel_pids(path), "the kernel's exit")


def _parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def _kernel_pids(connection_file: Path) -> list[int]:
    """Processes whose command line names the connection file."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if str(connection_file).encode() in argv:
            found.append(int(entry.name))
    return sorted(found)


def _wait_for(condition: object, what: str, timeout: float = 30.0) -> None:
    assert callable(condition)
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"waited {timeout} s for {what}"
        time.sleep(0.1)


def _api(url: str, token: str, method: str, path: str, body: object = None) -> dict[str, object]:
    import urllib.request

    request = urllib.request.Request(
        url + path,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"token {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        data = response.read()
    return json.loads(data) if data else {}


# -- kernelspecs --------------------------------------------------------------------------------

SHOUT = """
from runtimelib.kernel import Kernel
from runtimelib.messages import ExecuteReply, LanguageInfo


class ShoutKernel(Kernel):
    implementation = "shout"
    language_info = LanguageInfo(name="shout", mimetype="text/plain")

    async def do_execute(self, code, *, silent, store_history, user_expressions, allow_stdin):
        await self.stream(code.upper() + "\\n")
        return ExecuteReply(execution_count=self.execution_count)
"""


def test_install_and_remove_a_kernel_class_and_a_folder(tmp_path: Path, jupyter_env: Path) -> None:
    (tmp_path / "shout.py").write_text(SHOUT)
    prefix = tmp_path / "prefix"
    done = cli("kernels", "install", "shout:ShoutKernel", "--prefix", str(prefix), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    installed = prefix / "share" / "jupyter" / "kernels" / "shout"
    assert done.stdout == f"installed shout in {installed}\n"
    env = {**os.environ, "JUPYTER_PATH": str(prefix / "share" / "jupyter")}
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    ran = subprocess.run(
        [*COMMAND, "run", "-k", "shout", "-c", "hello"],
        capture_output=True, text=True, timeout=60, env=env, cwd=elsewhere,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout == "HELLO\n"
    # Installing again needs --replace; a folder installs too.
    again = cli("kernels", "install", "shout:ShoutKernel", "--prefix", str(prefix), cwd=tmp_path)
    assert again.returncode == 2
    assert "already installed" in again.stderr
    copy = cli("kernels", "install", str(installed), "--name", "loud", "--prefix", str(prefix))
    assert copy.returncode == 0, copy.stderr
    listed = subprocess.run(
        [*COMMAND, "kernels", "-q"], capture_output=True, text=True, timeout=60, env=env
    )
    assert {"shout", "loud"} <= set(listed.stdout.split())
    removed = subprocess.run(
        [*COMMAND, "kernels", "remove", "shout", "loud"],
        capture_output=True, text=True, timeout=60, env=env,
    )  # fmt: skip
    assert removed.returncode == 0, removed.stderr
    assert not installed.exists()


@pytest.mark.parametrize(
    ("source", "code", "message"),
    [
        ("no_such_module:K", 2, "cannot import no_such_module"),
        ("json:JSONDecoder", 2, "is not a runtimelib Kernel class"),
        ("not-a-path", 2, "neither a folder nor MODULE:CLASS"),
    ],
)
def test_install_errors(source: str, code: int, message: str, tmp_path: Path) -> None:
    done = cli("kernels", "install", source, "--prefix", str(tmp_path), timeout=30)
    assert done.returncode == code
    assert message in done.stderr
    assert "Traceback" not in done.stderr


def test_remove_of_an_unknown_kernelspec_exits_3() -> None:
    done = cli("kernels", "remove", "no-such-kernel", timeout=30)
    assert done.returncode == 3
    assert "no kernelspec named 'no-such-kernel'" in done.stderr


def test_the_readme_bash_step_registers_the_kernel(tmp_path: Path) -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    assert "python -m bash_kernel.install --sys-prefix" in readme
    installed = subprocess.run(
        [sys.executable, "-m", "bash_kernel.install", "--prefix", str(tmp_path)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert installed.returncode == 0, installed.stderr
    env = {**os.environ, "JUPYTER_PATH": str(tmp_path / "share" / "jupyter")}
    script = tmp_path / "script.sh"
    script.write_text("echo from bash $((6 * 7))\n")
    ran = subprocess.run(
        [*COMMAND, "run", "-k", "bash", str(script)],
        capture_output=True, text=True, timeout=90, env=env,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    assert "from bash 42" in ran.stdout
