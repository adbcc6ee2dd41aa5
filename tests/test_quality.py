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
    async_example, blocking_example, _attach = _readme_blocks("Running code in a kernel")
    for code, expected in ((async_example, "hello"), (blocking_example, "'Ada'")):
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
