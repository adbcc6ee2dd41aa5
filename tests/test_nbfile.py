"""Notebook files read and written without nbformat, checked byte for byte against nbformat."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nbformat.v4 import (
    new_code_cell,
    new_markdown_cell,
    new_notebook,
    new_output,
    new_raw_cell,
)

from runtimelib import nbfile

PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGP4DwAAAQEABRjYTgAAAABJRU5ErkJggg=="


def _rich() -> nbformat.NotebookNode:
    code = new_code_cell("import sys\nprint('ünïcode ✓')\n\n# trailing\n", execution_count=3)
    code.outputs = [
        new_output("stream", name="stdout", text="one\ntwo\r\nthree"),
        new_output("stream", name="stderr", text=""),
        new_output(
            "display_data",
            data={
                "text/plain": "a\nb\n",
                "text/html": "<b>x</b>\n<i>y</i>",
                "image/png": PNG,
                "image/svg+xml": "<svg>\n</svg>\n",
                "application/javascript": "let a = 1;\nlet b = 2;",
                "application/json": {"k": ["v\n", 1, None]},
                "application/vnd.custom+json": {"lines": ["x\n", "y"]},
            },
            metadata={"image/png": {"width": 1}},
        ),
        new_output("execute_result", data={"text/plain": "42"}, execution_count=3),
        new_output("error", ename="ValueError", evalue="boom", traceback=["a\nb", "c"]),
    ]
    markdown = new_markdown_cell("# Title\n\n![x](attachment:x.png)")
    markdown.attachments = {"x.png": {"image/png": PNG, "text/plain": "an\nimage"}}
    raw = new_raw_cell("raw\ntext", metadata={"format": "text/plain"})
    nb = new_notebook(
        cells=[markdown, code, raw, new_code_cell("")],
        metadata={
            "kernelspec": {"name": "python3", "display_name": "Python 3"},
            "language_info": {"name": "python"},
            "widgets": {"application/vnd.jupyter.widget-state+json": {"state": {}}},
        },
    )
    nb.cells[1].metadata["trusted"] = True  # transient: never written
    return nb


def test_dumps_writes_what_nbformat_writes(tmp_path: Path) -> None:
    nb = _rich()
    path = tmp_path / "theirs.ipynb"
    nbformat.write(nb, path)
    assert nbfile.dumps(nb) == path.read_text(encoding="utf-8")
    # The notebook itself is not changed by writing it.
    assert nb.cells[1].metadata["trusted"] is True
    assert isinstance(nb.cells[1].source, str)


def test_loads_reads_what_nbformat_reads(tmp_path: Path) -> None:
    path = tmp_path / "n.ipynb"
    nbformat.write(_rich(), path)
    text = path.read_text(encoding="utf-8")
    mine = nbfile.loads(text)
    assert mine is not None
    assert mine == nbformat.reads(text, as_version=4)
    # Attribute access, as nbformat's nodes have.
    assert mine.cells[1].outputs[0].text == "one\ntwo\r\nthree"
    assert mine.metadata.kernelspec.name == "python3"
    with pytest.raises(AttributeError):
        _ = mine.no_such_key
    # And the same bytes back.
    assert nbfile.dumps(mine) == text


text_strategy = st.text(st.characters(codec="utf-8"), max_size=40)


@settings(max_examples=150, deadline=None)
@given(
    sources=st.lists(text_strategy, min_size=1, max_size=4),
    stream=text_strategy,
    html=text_strategy,
)
def test_any_text_round_trips_as_nbformat_has_it(
    sources: list[str], stream: str, html: str
) -> None:
    cells = [new_code_cell(source) for source in sources]
    cells[0].outputs = [
        new_output("stream", name="stdout", text=stream),
        new_output("display_data", data={"text/html": html, "text/plain": stream}),
    ]
    nb = new_notebook(cells=cells)
    theirs = nbformat.writes(nb) + "\n"
    assert nbfile.dumps(nb) == theirs
    assert nbfile.loads(theirs) == nbformat.reads(theirs, as_version=4)


@pytest.mark.parametrize(
    "content",
    [
        {"nbformat": 3, "nbformat_minor": 0, "worksheets": [], "metadata": {}},
        {"nbformat": 4, "cells": []},  # no nbformat_minor, no metadata
        {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [{"cell_type": "x"}]},
        {"nbformat": "4", "nbformat_minor": 5, "metadata": {}, "cells": []},
        [1, 2],
    ],
)
def test_anything_but_plain_v4_is_left_to_nbformat(content: object) -> None:
    assert nbfile.loads(json.dumps(content)) is None


def test_text_that_is_not_json_raises_value_error() -> None:
    with pytest.raises(ValueError, match="Expecting"):
        nbfile.loads("{nope")


@pytest.mark.kernel
def test_the_command_runs_a_v4_notebook_without_importing_nbformat(
    tmp_path: Path, jupyter_env: Path
) -> None:
    nb = new_notebook(
        cells=[new_code_cell("print('hi')")],
        metadata={"kernelspec": {"name": "runtimelib-python", "display_name": "rt"}},
    )
    path = tmp_path / "n.ipynb"
    nbformat.write(nb, path)
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "runtimelib", "execute", str(path), "--inplace"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    imported = [line for line in done.stderr.splitlines() if line.startswith("import time:")]
    assert imported  # the check below is not vacuous
    assert not [line for line in imported if "nbformat" in line or "jsonschema" in line]
    assert nbformat.read(path, as_version=4).cells[0].outputs[0].text == "hi\n"


@pytest.mark.kernel
def test_the_command_converts_an_older_notebook_through_nbformat(
    tmp_path: Path, jupyter_env: Path
) -> None:
    from nbformat import v3

    old = v3.new_notebook(
        worksheets=[v3.new_worksheet(cells=[v3.new_code_cell(input="print(6 * 7)")])],
        metadata={"kernelspec": {"name": "runtimelib-python", "display_name": "rt"}},
    )
    path = tmp_path / "old.ipynb"
    path.write_text(v3.writes_json(old))
    out = tmp_path / "out.ipynb"
    done = subprocess.run(
        [sys.executable, "-m", "runtimelib", "execute", str(path), "-o", str(out)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    written = nbformat.read(out, as_version=nbformat.NO_CONVERT)
    assert written.nbformat == 4
    assert written.cells[0].outputs[0].text == "42\n"
