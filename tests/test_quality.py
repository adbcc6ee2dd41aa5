"""The source passes the project's type and lint checks (mypy --strict, ruff)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _check(*args: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict_on_src() -> None:
    _check("mypy", "--strict", "src")


def test_ruff_lint() -> None:
    _check("ruff", "check", "src", "tests", "bench", "examples")


def test_ruff_format() -> None:
    _check("ruff", "format", "--check", "src", "tests", "bench", "examples")


def test_readme_tour_and_example_run(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    snippet = readme.split("## The protocol without a kernel", 1)[1]
    snippet = snippet.split("```python", 1)[1].split("```", 1)[0]
    for code in (snippet, (ROOT / "examples" / "tour.py").read_text()):
        result = subprocess.run(
            [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, result.stderr
        assert "hi" in result.stdout or "reply       ok" in result.stdout


def _readme_blocks(section: str) -> list[str]:
    text = (ROOT / "README.md").read_text().split(f"## {section}", 1)[1].split("\n## ", 1)[0]
    return [block.split("```", 1)[0] for block in text.split("```python")[1:]]


@pytest.mark.kernel
def test_readme_kernel_examples_run(tmp_path: Path) -> None:
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime")}
    blocks = _readme_blocks("Running code in a kernel")
    async_example, blocking_example, _attach, subshells = blocks
    for code, expected in (
        (async_example, "hello"),
        (blocking_example, "'Ada'"),
        (subshells, "subshell-"),
    ):
        result = subprocess.run(
            [sys.executable, "-c", code],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=False,
            env=env,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        assert expected in result.stdout
    assert list((tmp_path / "runtime").glob("kernel-*.json")) == []


@pytest.mark.kernel
def test_readme_kernel_writing_example_runs(tmp_path: Path) -> None:
    (code,) = _readme_blocks("Writing a kernel")
    (tmp_path / "shout.py").write_text(code)
    spec = tmp_path / "path" / "kernels" / "shout"
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "shout", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": "Shout"}))
    env = {
        **os.environ,
        "JUPYTER_PATH": str(tmp_path / "path"),
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
        "PYTHONPATH": str(tmp_path),
    }
    driver = (
        "from runtimelib import KernelManager\n"
        "with KernelManager('shout') as km, km.client() as kc:\n"
        "    print(kc.execute('hello').stdout)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", driver],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        env=env,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "HELLO" in result.stdout


def _setup_commands() -> list[str]:
    text = (ROOT / "README.md").read_text().split("## Set up", 1)[1].split("\n## ", 1)[0]
    return [block.split("```", 1)[0].strip() for block in text.split("```sh\n")[1:]]


def test_readme_has_exactly_two_setup_commands() -> None:
    main, tests = _setup_commands()
    assert main.startswith("python -m pip install . && ")
    assert tests == 'python -m pip install -e ".[test]" && python -m pytest'
    # CI runs exactly that command (quietly), as its last step, in a virtual environment it
    # creates for the run.
    ci = (ROOT / ".ci" / "run").read_text()
    assert ci.strip().splitlines()[-1].replace(" -q", "") == tests
    assert "-m venv" in ci
    assert ci.index("-m venv") < ci.index("/bin/activate") < ci.index("pip install")


@pytest.mark.kernel
@pytest.mark.timeout(600)
def test_readme_main_command_on_a_bare_machine(tmp_path: Path) -> None:
    # A fresh clone and a virtual environment with nothing but pip: the README's first
    # command must install runtimelib and run its main job, on the built-in kernel.
    main, _ = _setup_commands()
    clone = tmp_path / "clone"
    subprocess.run(
        ["git", "clone", "--quiet", str(ROOT), str(clone)], check=True, capture_output=True
    )
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True)
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PYTHON", "VIRTUAL_ENV", "PIP_REQUIRE"))
    }
    env["PATH"] = f"{venv / 'bin'}:{env['PATH']}"
    env["JUPYTER_RUNTIME_DIR"] = str(tmp_path / "runtime")
    env["JUPYTER_DATA_DIR"] = str(tmp_path / "data")  # no kernels of this machine's user
    env["JUPYTER_PATH"] = ""
    done = subprocess.run(
        ["bash", "-c", main], cwd=clone, env=env, capture_output=True, text=True, timeout=540
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Hello from a kernel: CPython" in done.stdout
    assert "streaming, step 3 of 3" in done.stdout
    assert "6/7" in done.stdout
    listed = subprocess.run(
        ["python", "-m", "runtimelib", "kernels", "-q"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    # Nothing but runtimelib's own kernels: hello.py ran on the built-in one.
    assert listed.stdout.split() == ["runtimelib-echo", "runtimelib-python"]
    assert list((tmp_path / "runtime").glob("kernel-*.json")) == []
