"""The ``runtimelib`` command, run as a user runs it: a subprocess, its output and exit code."""

from __future__ import annotations

import contextlib
import copy
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from runtimelib.cli import build_parser

from .conftest import _pid_alive
from .test_notebook import _joined_streams

pytestmark = [pytest.mark.kernel, pytest.mark.usefixtures("jupyter_env")]

COMMAND = [sys.executable, "-m", "runtimelib"]
PNG_REPR = (
    "class Png:\n"
    "    def __repr__(self):\n"
    "        return 'Png()'\n"
    "    def _repr_png_(self):\n"
    "        import base64\n"
    "        return base64.b64decode('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4"
    "nGP4DwAAAQEABRjYTgAAAABJRU5ErkJggg==')\n"
)


@pytest.fixture(autouse=True)
def _plain_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    monkeypatch.delenv("NO_COLOR", raising=False)


def cli(
    *args: str, input: str | None = None, timeout: float = 90, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*COMMAND, *args],
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        stdin=None if input is not None else subprocess.DEVNULL,
    )


# -- help, usage, completion --------------------------------------------------------------------

SUBCOMMANDS = [
    "kernels", "run", "exec", "start", "ps", "interrupt", "restart", "stop", "prune",
    "console", "execute", "completion",
]  # fmt: skip


def test_every_subcommand_is_listed_and_has_help() -> None:
    top = cli("--help")
    assert top.returncode == 0
    for name in SUBCOMMANDS:
        assert name in top.stdout
        sub = cli(name, "--help")
        assert sub.returncode == 0, sub.stderr
        assert sub.stdout.startswith(f"usage: runtimelib {name}")
        assert "exit codes" in sub.stdout
    assert cli("--version").stdout.startswith("runtimelib ")


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["run"],
        ["run", "-c", "1", "file.py"],
        ["no-such-command"],
        ["stop"],
        ["completion", "fish"],
    ],
)
def test_usage_errors_exit_2(args: list[str]) -> None:
    done = cli(*args)
    assert done.returncode == 2
    assert "usage:" in (done.stderr + done.stdout)


def test_completion_script_completes_commands_and_kernels(tmp_path: Path) -> None:
    script = cli("completion", "bash")
    assert script.returncode == 0
    (tmp_path / "complete.sh").write_text(script.stdout)
    probe = (
        f"source {tmp_path / 'complete.sh'}\n"
        'COMP_WORDS=(runtimelib ex); COMP_CWORD=1; _runtimelib; echo "${COMPREPLY[*]}"\n'
        "COMP_WORDS=(runtimelib run -k runtimelib-p); COMP_CWORD=3; _runtimelib;"
        ' echo "${COMPREPLY[*]}"\n'
        "COMP_WORDS=(runtimelib execute --all); COMP_CWORD=2; _runtimelib;"
        ' echo "${COMPREPLY[*]}"\n'
    )
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    done = subprocess.run(
        ["bash", "-c", probe], capture_output=True, text=True, timeout=60, env=env
    )
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["exec", "execute"]
    assert lines[1].split() == ["runtimelib-python"]
    assert lines[2].split() == ["--allow-errors"]
    # Every option the parser knows is in the script.
    for action in build_parser()._actions:
        for option in action.option_strings:
            assert option in script.stdout
    assert "bashcompinit" in cli("completion", "zsh").stdout


# -- kernels ------------------------------------------------------------------------------------


def test_kernels_lists_installed_specs() -> None:
    listed = cli("kernels", "--json")
    assert listed.returncode == 0
    specs = {spec["name"]: spec for spec in json.loads(listed.stdout)}
    assert {"python3", "runtimelib-python", "runtimelib-echo", "bash"} <= set(specs)
    assert specs["bash"]["language"] == "bash"
    assert specs["runtimelib-python"]["display_name"]
    assert Path(specs["runtimelib-python"]["path"], "kernel.json").is_file()
    names = cli("kernels", "-q").stdout.split()
    assert names == sorted(specs)
    table = cli("kernels").stdout
    assert table.splitlines()[0].split() == ["NAME", "LANGUAGE", "DISPLAY", "NAME", "PATH"]
    assert "\x1b[" not in table  # no colour when the output is not a terminal


def test_a_broken_kernelspec_is_reported_not_fatal(jupyter_env: Path) -> None:
    broken = Path(os.environ["JUPYTER_PATH"]) / "kernels" / "broken"
    broken.mkdir()
    (broken / "kernel.json").write_text("{not json")
    listed = cli("kernels", "-q")
    assert listed.returncode == 0
    assert "runtimelib-python" in listed.stdout.split()
    assert "broken" in listed.stderr


# -- run ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("kernel", ["python3", "runtimelib-python"])
def test_run_streams_output_and_results(kernel: str) -> None:
    code = "import sys\nprint('out ü')\nprint('err', file=sys.stderr)\n6 * 7"
    done = cli("run", "-k", kernel, "-c", code)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "out ü\n42\n"
    assert "err\n" in done.stderr


def test_run_on_bash() -> None:
    done = cli("run", "-k", "bash", "-c", "echo hello from bash")
    assert (done.returncode, done.stdout) == (0, "hello from bash\n")


@pytest.mark.parametrize("kernel", ["python3", "runtimelib-python"])
def test_run_an_error_exits_1_with_the_traceback(kernel: str) -> None:
    done = cli("run", "-k", kernel, "-c", "print('before')\n1 / 0")
    assert done.returncode == 1
    assert done.stdout == "before\n"
    assert "ZeroDivisionError" in done.stderr
    assert "\x1b[" not in done.stderr  # the kernel's colours are stripped off a terminal


def test_colour_is_forced_on_request(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORCE_COLOR", "1")
    done = cli("run", "-k", "python3", "-c", "1 / 0")
    assert "\x1b[" in done.stderr


def test_run_a_file_and_standard_input(tmp_path: Path) -> None:
    script = tmp_path / "script.py"
    script.write_text("print('from a file')\n")
    done = cli("run", "-k", "runtimelib-python", str(script))
    assert (done.returncode, done.stdout) == (0, "from a file\n")
    done = cli("run", "-k", "runtimelib-python", "-", input="print('from stdin')\n")
    assert (done.returncode, done.stdout) == (0, "from stdin\n")
    missing = cli("run", "-k", "runtimelib-python", str(tmp_path / "missing.py"))
    assert missing.returncode == 2
    assert "cannot read" in missing.stderr


@pytest.mark.parametrize("kernel", ["python3", "runtimelib-python"])
def test_run_forwards_standard_input_to_input(kernel: str) -> None:
    code = "name = input('name? ')\nprint('hello', name)"
    done = cli("run", "-k", kernel, "-c", code, input="Ada\n")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "name? hello Ada\n"


def test_run_summarises_and_saves_rich_outputs(tmp_path: Path) -> None:
    code = (
        PNG_REPR
        + "class Html:\n    def _repr_html_(self):\n        return '<b>bold</b>'\n"
        + "display(Png())\ndisplay(Html())\n"
        + "display({'text/plain': 'plain fallback', 'text/html': '<i>x</i>'}, raw=True)"
    )
    done = cli("run", "-k", "runtimelib-python", "-c", code)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "[image/png 1x1, 67 B]"
    assert "Html object" in lines[1]  # text/plain wins over HTML on a terminal
    assert lines[2] == "plain fallback"
    media = tmp_path / "media"
    saved = cli("run", "-k", "runtimelib-python", "--save-media", str(media), "-c", code)
    assert saved.returncode == 0
    assert (media / "output-1.png").read_bytes().startswith(b"\x89PNG")
    assert (media / "output-2.html").read_text() == "<b>bold</b>"
    assert str(media / "output-1.png") in saved.stdout


def test_run_json_reports_the_outputs() -> None:
    done = cli("run", "--json", "-k", "runtimelib-python", "-c", "print('a')\n1 + 1")
    report = json.loads(done.stdout)
    assert report["status"] == "ok"
    assert report["outputs"] == [
        {"output_type": "stream", "name": "stdout", "text": "a\n"},
        {
            "output_type": "execute_result",
            "data": {"text/plain": "2"},
            "metadata": {},
            "execution_count": 1,
        },
    ]
    failed = cli("run", "--json", "-k", "runtimelib-python", "-c", "1/0")
    assert failed.returncode == 1
    assert json.loads(failed.stdout)["outputs"][0]["ename"] == "ZeroDivisionError"


def test_run_kernel_failures_have_their_exit_codes() -> None:
    unknown = cli("run", "-k", "no-such-kernel", "-c", "1")
    assert unknown.returncode == 3
    assert "no kernelspec named 'no-such-kernel'" in unknown.stderr
    dies = cli("run", "-k", "exits-at-once", "-c", "1")
    assert dies.returncode == 4
    assert "boom: no luck" in dies.stderr  # the kernel's own last words
    slow = cli(
        "run", "-k", "runtimelib-python", "--timeout", "1", "-c", "import time; time.sleep(30)"
    )
    assert slow.returncode == 5
    assert "the code was still running after 1 s" in slow.stderr
    crash = cli("run", "-k", "runtimelib-python", "-c", "import os; os._exit(7)")
    assert crash.returncode == 4
    assert "died" in crash.stderr or "exited" in crash.stderr


@contextlib.contextmanager
def _running(code: str) -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen(
        [*COMMAND, "run", "-k", "runtimelib-python", "-c", code],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()


def write_stale_connection_file(runtime: Path, kernel_id: str, **extra: object) -> Path:
    """The connection file (0600) of a kernel that is not running: nothing on its ports."""
    runtime.mkdir(exist_ok=True)
    path = runtime / f"kernel-{kernel_id}.json"
    fields = {
        "shell_port": 1, "iopub_port": 2, "stdin_port": 3, "control_port": 4,
        "hb_port": 5, "ip": "127.0.0.1", "key": "", "transport": "tcp",
        "signature_scheme": "hmac-sha256",
    }  # fmt: skip
    path.write_text(json.dumps({**fields, **extra}))
    path.chmod(0o600)
    return path


def _pid_gone(pid: int, timeout: float = 15.0) -> bool:
    """Whether process ``pid`` exits within ``timeout`` (a zombie, not yet reaped by the
    process that inherited it, has exited)."""
    deadline = time.monotonic() + timeout
    while _pid_alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def test_ctrl_c_interrupts_the_kernel() -> None:
    code = "import os, time\nprint(os.getpid(), flush=True)\ntime.sleep(60)"
    with _running(code) as process:
        assert process.stdout is not None
        kernel_pid = int(process.stdout.readline())
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=30)
        assert process.returncode == 130  # interrupted at the user's request
        assert "KeyboardInterrupt" in err  # where the code was when it was interrupted
        assert "interrupting the kernel (Ctrl-C again to stop it)" in err
        assert _pid_gone(kernel_pid)


def test_a_second_ctrl_c_stops_the_kernel() -> None:
    code = (
        "import os, signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n"
        "print(os.getpid(), flush=True)\ntime.sleep(60)"
    )
    with _running(code) as process:
        assert process.stdout is not None
        kernel_pid = int(process.stdout.readline())
        process.send_signal(signal.SIGINT)
        time.sleep(0.5)
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=30)
        assert process.returncode == 130
        assert _pid_gone(kernel_pid)


# -- kernels in the background ------------------------------------------------------------------


@pytest.mark.parametrize("kernel", ["runtimelib-python", "python3"])
def test_start_ps_exec_interrupt_restart_stop(kernel: str, jupyter_env: Path) -> None:
    started = cli("start", "-k", kernel, "--json")
    assert started.returncode == 0, started.stderr
    info = json.loads(started.stdout)
    kernel_id, pid = info["id"], info["pid"]
    try:
        assert Path(info["connection_file"]).parent == jupyter_env
        listed = json.loads(cli("ps", "--json").stdout)
        assert [(k["id"], k["alive"], k["kernel_name"]) for k in listed] == [
            (kernel_id, True, kernel)
        ]
        time.sleep(1.5)  # longer than a kernel takes to notice that its launcher is gone
        assert cli("ps", "-q").stdout.split() == [kernel_id]
        # State lives in the kernel between commands; a unique id prefix is enough.
        assert cli("exec", kernel_id[:8], "-c", "x = 41").returncode == 0
        assert cli("exec", kernel_id, "-c", "print(x + 1)").stdout == "42\n"
        assert cli("run", "--existing", info["connection_file"], "-c", "print(x)").stdout == "41\n"
        assert cli("interrupt", kernel_id).returncode == 0
        restarted = cli("restart", kernel_id)
        assert restarted.returncode == 0, restarted.stderr
        assert _pid_gone(pid)
        after = cli("exec", kernel_id, "-c", "print('x' in dir())")
        assert after.stdout == "False\n"  # a fresh kernel, same id and file
        new_pid = int(cli("exec", kernel_id, "-c", "import os; print(os.getpid())").stdout)
    finally:
        stopped = cli("stop", kernel_id, "--json")
    assert stopped.returncode == 0, stopped.stderr
    assert json.loads(stopped.stdout) == [
        {
            "id": kernel_id,
            "stopped": True,
            "was_alive": True,
            "pid": new_pid,
            "by": "shutdown_request",
        }
    ]
    assert _pid_gone(new_pid)
    assert cli("ps", "-q").stdout == ""
    assert cli("exec", kernel_id, "-c", "1").returncode == 3


def test_stop_all_and_prune(jupyter_env: Path) -> None:
    ids = [
        json.loads(cli("start", "-k", "runtimelib-echo", "--json").stdout)["id"] for _ in range(2)
    ]
    stale = write_stale_connection_file(jupyter_env, "stale", kernel_name="gone")
    old = time.time() - 3600
    os.utime(stale, (old, old))
    pruned = cli("prune", "--json")
    assert json.loads(pruned.stdout) == {
        "removed": [{"id": "stale", "connection_file": str(stale)}],
        "too_young": [],
    }
    assert not stale.exists()
    stopped = cli("stop", "--all", "--json")
    assert sorted(r["id"] for r in json.loads(stopped.stdout)) == sorted(ids)
    assert list(jupyter_env.glob("kernel-*.json")) == []


def test_managing_a_kernel_that_is_not_there() -> None:
    for command in ("interrupt", "restart", "stop"):
        done = cli(command, "no-such-id")
        assert done.returncode == 3, command
        assert "no running kernel 'no-such-id'" in done.stderr


# -- notebooks ----------------------------------------------------------------------------------


def _write(nb: nbformat.NotebookNode, path: Path) -> Path:
    nbformat.write(nb, path)
    return path


def _without_timing(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        cell.get("metadata", {}).pop("execution", None)
    return nb


def _showcase(kernel: str) -> nbformat.NotebookNode:
    prelude = "from IPython.display import display, update_display, clear_output"
    return new_notebook(
        metadata={"kernelspec": {"name": kernel, "display_name": kernel, "language": "python"}},
        cells=[
            new_code_cell(prelude if kernel == "python3" else "pass"),
            new_markdown_cell("# Streams, unicode, images, displays"),
            new_code_cell(
                "import sys\nprint('ünïcode ✓')\nsys.stdout.flush()\nprint('e', file=sys.stderr)"
            ),
            new_code_cell(PNG_REPR + "display(Png())"),
            new_code_cell("display('first', display_id='d')\n"),
            new_code_cell("update_display('second', display_id='d')"),
            new_code_cell("print('gone')\nclear_output(wait=True)\nprint('kept')"),
            new_code_cell("raise ValueError('tagged')", metadata={"tags": ["raises-exception"]}),
            new_code_cell("'last'"),
        ],
    )


@pytest.mark.parametrize("kernel", ["python3", "runtimelib-python"])
def test_execute_writes_what_jupyter_execute_writes(kernel: str, tmp_path: Path) -> None:
    source = _write(_showcase(kernel), tmp_path / "show case.ipynb")
    ours = cli("execute", str(source), "-o", str(tmp_path / "ours.ipynb"))
    assert ours.returncode == 0, ours.stderr
    assert ": 8 cells in" in ours.stderr  # the markdown cell does not run
    theirs = subprocess.run(
        [str(Path(sys.executable).with_name("jupyter-execute")), str(source), "--output", "theirs"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert theirs.returncode == 0, theirs.stderr
    mine = _without_timing(nbformat.read(tmp_path / "ours.ipynb", as_version=4))
    other = _without_timing(nbformat.read(tmp_path / "theirs.ipynb", as_version=4))
    # Two runs are two kernels: where a stream message ends is the kernel's timing (ipykernel
    # can send a stderr "e" and its newline apart on a loaded machine).
    mine, other = _joined_streams(mine), _joined_streams(other)
    for index, (a, b) in enumerate(zip(mine.cells, other.cells, strict=True)):
        assert a == b, f"cell {index} differs"
    assert mine.metadata == other.metadata
    assert mine.cells[4].outputs[0].data["text/plain"] == "'second'"
    # Without -o or --inplace nothing is written.
    before = source.read_text()
    assert cli("execute", str(source)).returncode == 0
    assert source.read_text() == before


def test_execute_errors_inplace_and_json(tmp_path: Path) -> None:
    nb = new_notebook(
        metadata={"kernelspec": {"name": "runtimelib-python", "display_name": "rt"}},
        cells=[
            new_code_cell("print('one')"),
            new_code_cell("1 / 0"),
            new_code_cell("print('three')"),
        ],
    )
    path = _write(nb, tmp_path / "fails.ipynb")
    failed = cli("execute", str(path), "--inplace")
    assert failed.returncode == 1
    assert "ZeroDivisionError" in failed.stderr
    written = nbformat.read(path, as_version=4)
    assert written.cells[0].outputs[0].text == "one\n"  # outputs up to the error are kept
    assert written.cells[2].outputs == []
    report = json.loads(cli("execute", str(path), "--json").stdout)
    assert report["status"] == "error"
    assert report["error"]["cell"] == 1
    assert report["error"]["ename"] == "ZeroDivisionError"
    allowed = cli("execute", str(path), "--allow-errors", "--inplace", "--json")
    assert allowed.returncode == 0
    assert json.loads(allowed.stdout)["cells_run"] == 3
    assert nbformat.read(path, as_version=4).cells[2].outputs[0].text == "three\n"


def test_execute_timeout_kernel_choice_and_cwd(tmp_path: Path) -> None:
    nb = new_notebook(
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3"}},
        cells=[new_code_cell("import os, sys\nprint(os.getcwd())\nprint(sys.implementation.name)")],
    )
    path = _write(nb, tmp_path / "where.ipynb")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = tmp_path / "out.ipynb"
    done = cli(
        "execute", str(path), "-k", "runtimelib-python", "--cwd", str(elsewhere), "-o", str(out)
    )
    assert done.returncode == 0, done.stderr
    written = nbformat.read(out, as_version=4)
    assert written.cells[0].outputs[0].text == f"{elsewhere}\ncpython\n"
    assert written.metadata.language_info.name == "python"
    slow = _write(
        new_notebook(
            metadata={"kernelspec": {"name": "runtimelib-python", "display_name": "rt"}},
            cells=[new_code_cell("import time\ntime.sleep(60)")],
        ),
        tmp_path / "slow.ipynb",
    )
    timed_out = cli("execute", str(slow), "--timeout", "1", "--json")
    assert timed_out.returncode == 5
    assert json.loads(timed_out.stdout)["status"] == "timeout"


def test_execute_bad_input(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.ipynb"
    garbage.write_text("{this is not a notebook")
    done = cli("execute", str(garbage))
    assert done.returncode == 2
    assert "garbage.ipynb is not a notebook: it is not JSON" in done.stderr
    assert cli("execute", str(tmp_path / "missing.ipynb")).returncode == 2
    assert cli("execute", str(garbage), str(garbage), "-o", "x.ipynb").returncode == 2
    unknown = _write(
        new_notebook(metadata={"kernelspec": {"name": "nope", "display_name": "?"}}, cells=[]),
        tmp_path / "unknown.ipynb",
    )
    assert cli("execute", str(unknown)).returncode == 3


@pytest.mark.parametrize("kernel", ["runtimelib-python", "python3"])
def test_interrupt_a_busy_kernel_from_another_command(kernel: str) -> None:
    kernel_id = json.loads(cli("start", "-k", kernel, "--json").stdout)["id"]
    busy = subprocess.Popen(
        [
            *COMMAND,
            "exec",
            kernel_id,
            "-c",
            "import time\nprint('sleeping', flush=True)\ntime.sleep(60)",
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert busy.stdout is not None
        assert busy.stdout.readline() == "sleeping\n"
        interrupted = cli("interrupt", kernel_id)
        assert interrupted.returncode == 0, interrupted.stderr
        _, err = busy.communicate(timeout=30)
        assert busy.returncode == 1
        assert "KeyboardInterrupt" in err
        assert cli("exec", kernel_id, "-c", "print('still here')").stdout == "still here\n"
    finally:
        if busy.poll() is None:
            busy.kill()
        busy.communicate()
        assert cli("stop", kernel_id).returncode == 0


def test_execute_draws_a_progress_bar_only_on_a_terminal(tmp_path: Path) -> None:
    import pty

    nb = new_notebook(
        metadata={"kernelspec": {"name": "runtimelib-python", "display_name": "rt"}},
        cells=[new_code_cell("first = 1"), new_code_cell("second = 2")],
    )
    path = _write(nb, tmp_path / "bar.ipynb")
    controller, terminal = pty.openpty()
    try:
        with subprocess.Popen(
            [*COMMAND, "execute", str(path)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=terminal,
        ) as process:
            os.close(terminal)
            terminal = -1
            drawn = b""
            with contextlib.suppress(OSError):  # EIO once the command has exited
                while chunk := os.read(controller, 4096):
                    drawn += chunk
            assert process.wait(timeout=60) == 0
    finally:
        os.close(controller)
        if terminal >= 0:
            os.close(terminal)
    text = drawn.decode()
    assert "bar.ipynb [" in text
    assert "1/2 first = 1" in text
    assert "2/2 second = 2" in text
    assert "\x1b[K" in text  # the line is redrawn in place
    # Piped, there is no bar: just the summary.
    piped = cli("execute", str(path))
    assert "[" not in piped.stderr.replace("[2m", "")
    assert "2 cells in" in piped.stderr


@pytest.mark.parametrize(
    ("kernel", "code"), [("runtimelib-python", "help(len)"), ("python3", "len?")]
)
def test_run_shows_what_the_kernel_pages(kernel: str, code: str) -> None:
    done = cli("run", "-k", kernel, "-c", code)
    assert done.returncode == 0, done.stderr
    assert "Return the number of items in a container." in done.stdout


def _gone_pid() -> int:
    """The pid of a process that has exited."""
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def test_restart_of_a_kernel_that_is_not_running(jupyter_env: Path) -> None:
    # Another program's kernel (no process record) whose heartbeat is silent.
    foreign = write_stale_connection_file(jupyter_env, "foreign")
    # One that runtimelib started, whose connection file does not name its kernelspec.
    record = {"pid": _gone_pid(), "host": "", "owner": None}
    nameless = write_stale_connection_file(jupyter_env, "nameless", runtimelib_process=record)
    nameless.chmod(0o644)  # other users may read it: a warning, on one line of its own
    try:
        done = cli("restart", "foreign")
        assert done.returncode == 3
        assert "kernel foreign is not running" in done.stderr
        done = cli("restart", "nameless")
        assert done.returncode == 4
        warning, error = done.stderr.splitlines()
        assert warning.startswith("runtimelib: warning: ")
        assert "accessible to other users" in warning
        assert error.endswith("does not say which kernel it runs; it cannot be started again")
    finally:
        foreign.unlink()
        nameless.unlink()
