"""The source passes the project's type and lint checks (mypy --strict, ruff)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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
    snippet = readme.split("## A short tour", 1)[1].split("```python", 1)[1].split("```", 1)[0]
    for code in (snippet, (ROOT / "examples" / "tour.py").read_text()):
        result = subprocess.run(
            [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, result.stderr
        assert "hi" in result.stdout or "reply       ok" in result.stdout
