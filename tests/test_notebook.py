"""Notebook execution: the same notebooks run by runtimelib and by nbclient, cell by cell."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError as NbclientCellError
from nbformat import NotebookNode
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from runtimelib import errors
from runtimelib.notebook import execute_notebook, execute_notebook_async

from .conftest import NBCLIENT_OPTIONS, joined_streams

pytestmark = [pytest.mark.kernel, pytest.mark.usefixtures("jupyter_env")]

KERNELS = ["python3", "runtimelib-python", "xpython"]

# ipykernel and xeus-python take the display API from IPython; runtimelib-python has it built in.
PRELUDE = {
    "python3": "from IPython.display import display, update_display, clear_output",
    "xpython": "from IPython.display import display, update_display, clear_output",
    "runtimelib-python": "pass",
}

RICH = """
class Rich:
    def __init__(self, text):
        self.text = text
    def __repr__(self):
        return f"Rich({self.text!r})"
    def _repr_html_(self):
        return f"<b>{self.text}</b>"
"""

# A 1x1 transparent PNG.
PNG = (
    "b'\\x89PNG\\r\\n\\x1a\\n\\x00\\x00\\x00\\rIHDR\\x00\\x00\\x00\\x01\\x00\\x00\\x00\\x01"
    "\\x08\\x06\\x00\\x00\\x00\\x1f\\x15\\xc4\\x89\\x00\\x00\\x00\\rIDATx\\x9cc\\xf8\\x0f"
    "\\x00\\x00\\x01\\x01\\x00\\x05\\x18\\xd8N\\x00\\x00\\x00\\x00IEND\\xaeB`\\x82'"
)


def _notebook(kernel: str) -> NotebookNode:
    skipped = new_code_cell("print('must not run')", metadata={"tags": ["skip-execution"]})
    skipped.outputs = [nbformat.v4.new_output("stream", name="stdout", text="kept\n")]
    skipped.execution_count = 99
    return new_notebook(
        metadata={"kernelspec": {"name": kernel, "display_name": kernel, "language": "python"}},
        cells=[
            new_code_cell(PRELUDE[kernel]),
            new_code_cell(
                "import sys\nprint('hello')\nprint('ünïcode ✓ 日本')\n"
                "sys.stdout.flush()\nsys.stderr.write('warn\\n')"
            ),
            new_code_cell(RICH + "Rich('result')"),
            new_markdown_cell("# not code"),
            new_code_cell("display(Rich('first'), display_id='d1')\nprint('after')"),
            new_code_cell("update_display(Rich('second'), display_id='d1')"),
            new_code_cell("display(Rich('third'), display_id='d1')"),
            new_code_cell("print('a')\nclear_output()\nprint('b')"),
            new_code_cell("print('x')\nclear_output(wait=True)\nprint('y')"),
            new_code_cell("   \n"),
            skipped,
            new_code_cell(
                "class Png:\n"
                "    def __repr__(self):\n"
                "        return 'Png()'\n"
                "    def _repr_png_(self):\n"
                f"        return {PNG}\n"
                "display(Png())"
            ),
            new_code_cell("1 / 0", metadata={"tags": ["raises-exception"]}),
            new_code_cell("for i in range(3):\n    print(i)\n'done'"),
        ],
    )


def _strip_timing(nb: NotebookNode) -> NotebookNode:
    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        cell.get("metadata", {}).pop("execution", None)
    return nb


def _nbclient(nb: NotebookNode, **kwargs: Any) -> NotebookNode:
    nb = copy.deepcopy(nb)
    NotebookClient(nb, timeout=60, **NBCLIENT_OPTIONS, **kwargs).execute()
    return nb


def _assert_same(ours: NotebookNode, theirs: NotebookNode) -> None:
    ours, theirs = _strip_timing(ours), _strip_timing(theirs)
    assert len(ours.cells) == len(theirs.cells)
    for index, (mine, other) in enumerate(zip(ours.cells, theirs.cells, strict=True)):
        assert mine == other, f"cell {index} differs"
    assert ours.metadata == theirs.metadata
    # What lands on disk is the same too.
    assert nbformat.writes(ours) == nbformat.writes(theirs)


def _joined_streams(nb: NotebookNode) -> NotebookNode:
    """The notebook with its streams joined (see ``joined_streams``); the test with flushed
    writes below checks that each message is kept as its own output."""
    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        if "outputs" in cell:
            cell.outputs = joined_streams(cell.outputs)
    return nb


@pytest.mark.parametrize("kernel", KERNELS)
def test_outputs_match_nbclient(kernel: str, assert_gone: list[int]) -> None:
    source = _notebook(kernel)
    ours = execute_notebook(copy.deepcopy(source))
    _assert_same(_joined_streams(ours), _joined_streams(_nbclient(source)))
    cells = ours.cells
    # The behaviours the comparison relies on, checked on their own as well.
    assert [c.execution_count for c in cells if c.cell_type == "code"] == [
        1, 2, 3, 4, 5, 6, 7, 8, None, 99, 9, 10, 11
    ]  # fmt: skip
    assert cells[4].outputs[0].data["text/html"] == "<b>third</b>"  # updated by display_id
    # (xeus-python sends print's newline as a stream message of its own)
    assert "".join(o.text for o in cells[7].outputs) == "b\n"
    assert "".join(o.text for o in cells[8].outputs) == "y\n"
    assert cells[10].outputs[0].text == "kept\n"  # skip-execution: untouched
    assert "ZeroDivisionError" in cells[12].outputs[-1].ename  # xeus-python: "<class ...>"
    assert "image/png" in cells[11].outputs[0].data
    assert ours.metadata.language_info.name == "python"
    assert set(cells[1].metadata.execution) == {
        "iopub.status.busy",
        "iopub.execute_input",
        "shell.execute_reply",
        "iopub.status.idle",
    }


@pytest.mark.parametrize("kernel", ["python3", "runtimelib-python"])
def test_merged_streams_match_nbclient_coalescing(kernel: str) -> None:
    source = new_notebook(
        metadata={"kernelspec": {"name": kernel, "display_name": kernel}},
        cells=[
            new_code_cell(
                "import sys, time\n"
                "print('one', flush=True)\ntime.sleep(0.3)\n"
                "print('two', flush=True)\nsys.stderr.write('e1\\n'); sys.stderr.flush()\n"
                "time.sleep(0.3)\nprint('three\\rTHREE', flush=True)\n"
                "sys.stderr.write('e2\\n')\nNone"
            )
        ],
    )
    ours = execute_notebook(copy.deepcopy(source), merge_streams=True)
    _assert_same(ours, _nbclient(source, coalesce_streams=True))
    texts = {o.name: o.text for o in ours.cells[0].outputs if o.output_type == "stream"}
    assert texts == {"stdout": "one\ntwo\nTHREE\n", "stderr": "e1\ne2\n"}
    # Without merging, each stream message is its own output, as nbclient keeps them.
    unmerged = execute_notebook(copy.deepcopy(source))
    _assert_same(unmerged, _nbclient(source))
    assert len(unmerged.cells[0].outputs) > 2


def test_merged_streams_apply_backspaces() -> None:
    nb = new_notebook(
        metadata={"kernelspec": {"name": "runtimelib-python", "display_name": "rt"}},
        cells=[
            new_code_cell("print('abx\\bc', flush=True)\nprint('progress 10%\\rprogress 100%')")
        ],
    )
    nb = execute_notebook(nb, merge_streams=True)
    assert [o.text for o in nb.cells[0].outputs] == ["abc\nprogress 100%\n"]


@pytest.mark.parametrize("kernel", ["python3", "runtimelib-python"])
def test_an_error_stops_the_run_as_nbclient_does(kernel: str) -> None:
    source = new_notebook(
        metadata={"kernelspec": {"name": kernel, "display_name": kernel}},
        cells=[
            new_code_cell("print('before')"),
            new_code_cell("raise ValueError('boom')"),
            new_code_cell("print('never')"),
        ],
    )
    ours = copy.deepcopy(source)
    with pytest.raises(errors.CellExecutionError) as caught:
        execute_notebook(ours)
    assert (caught.value.cell_index, caught.value.ename) == (1, "ValueError")
    assert caught.value.evalue == "boom"
    assert caught.value.traceback
    theirs = copy.deepcopy(source)
    with pytest.raises(NbclientCellError):
        NotebookClient(theirs, timeout=60, **NBCLIENT_OPTIONS).execute()
    _assert_same(ours, theirs)
    assert ours.cells[2].outputs == []
    # allow_errors runs to the end, as nbclient's does.
    allowed = execute_notebook(copy.deepcopy(source), allow_errors=True)
    _assert_same(allowed, _nbclient(source, allow_errors=True))
    assert allowed.cells[2].outputs[0].text == "never\n"


def test_a_timeout_interrupts_the_cell() -> None:
    source = new_notebook(
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3"}},
        cells=[new_code_cell("import time\ntime.sleep(60)"), new_code_cell("print('next')")],
    )
    nb = copy.deepcopy(source)
    with pytest.raises(errors.CellTimeoutError) as caught:
        execute_notebook(nb, timeout=1)
    assert isinstance(caught.value, TimeoutError)
    assert caught.value.cell_index == 0
    assert caught.value.ename == "KeyboardInterrupt"  # the kernel was interrupted, not killed
    assert nb.cells[0].outputs[-1].ename == "KeyboardInterrupt"
    # With errors allowed, the interrupted cell keeps its error and the run goes on.
    nb = execute_notebook(copy.deepcopy(source), timeout=1, allow_errors=True)
    assert nb.cells[1].outputs[0].text == "next\n"


def test_the_kernel_runs_in_the_notebooks_folder(tmp_path: Path) -> None:
    folder = tmp_path / "with space ü"
    folder.mkdir()
    (folder / "data.txt").write_text("from the folder")
    path = folder / "nb.ipynb"
    nbformat.write(
        new_notebook(
            metadata={"kernelspec": {"name": "runtimelib-python", "display_name": "rt"}},
            cells=[new_code_cell("print(open('data.txt').read())")],
        ),
        path,
    )
    nb = execute_notebook(path)
    assert nb.cells[0].outputs[0].text == "from the folder\n"
    # cwd overrides the folder; the kernel given overrides the notebook's.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "data.txt").write_text("from cwd")
    nb = execute_notebook(path, "python3", cwd=elsewhere)
    assert nb.cells[0].outputs[0].text == "from cwd\n"
    assert nb.metadata.language_info.name == "python"


def test_an_unknown_kernel_in_the_notebook_is_a_typed_error() -> None:
    nb = new_notebook(
        metadata={"kernelspec": {"name": "no-such-kernel", "display_name": "?"}},
        cells=[new_code_cell("1")],
    )
    with pytest.raises(errors.NoSuchKernelError):
        execute_notebook(nb)


def test_a_kernel_that_dies_mid_notebook_is_reported(assert_gone: list[int]) -> None:
    nb = new_notebook(
        metadata={"kernelspec": {"name": "runtimelib-python", "display_name": "rt"}},
        cells=[new_code_cell("import os\nos._exit(3)"), new_code_cell("print('never')")],
    )
    with pytest.raises(errors.KernelDiedError):
        execute_notebook(nb)


def test_input_is_refused_not_hung() -> None:
    nb = new_notebook(
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3"}},
        cells=[new_code_cell("input('name? ')")],
    )
    with pytest.raises(errors.CellExecutionError) as caught:
        execute_notebook(nb, timeout=30)
    assert caught.value.ename == "StdinNotImplementedError"


@pytest.mark.anyio
@pytest.mark.parametrize("kernel", ["python3", "runtimelib-python"])
async def test_async_twin_matches_nbclient(kernel: str) -> None:
    source = _notebook(kernel)
    ours = await execute_notebook_async(copy.deepcopy(source))
    _assert_same(_joined_streams(ours), _joined_streams(_nbclient(source)))


@pytest.mark.anyio
async def test_async_timeout_interrupts_the_cell() -> None:
    nb = new_notebook(
        metadata={"kernelspec": {"name": "runtimelib-python", "display_name": "rt"}},
        cells=[new_code_cell("import time\ntime.sleep(60)")],
    )
    with pytest.raises(errors.CellTimeoutError) as caught:
        await execute_notebook_async(nb, timeout=1)
    assert caught.value.ename == "KeyboardInterrupt"


def test_progress_callback_sees_every_cell_that_runs() -> None:
    nb = new_notebook(
        metadata={"kernelspec": {"name": "runtimelib-python", "display_name": "rt"}},
        cells=[new_code_cell("1"), new_markdown_cell("m"), new_code_cell("2")],
    )
    seen: list[tuple[int, int, str]] = []
    execute_notebook(nb, on_cell=lambda i, n, cell: seen.append((i, n, cell.source)))
    assert seen == [(0, 2, "1"), (1, 2, "2")]


def test_a_kernel_ignoring_the_timeout_interrupt_is_given_up_on(
    monkeypatch: pytest.MonkeyPatch, assert_gone: list[int]
) -> None:
    import runtimelib.notebook

    monkeypatch.setattr(runtimelib.notebook, "INTERRUPT_GRACE", 2.0)
    nb = new_notebook(
        metadata={"kernelspec": {"name": "runtimelib-python", "display_name": "rt"}},
        cells=[
            new_code_cell(
                "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\ntime.sleep(60)"
            )
        ],
    )
    with pytest.raises(errors.CellTimeoutError) as caught:
        execute_notebook(nb, timeout=1)
    assert caught.value.cell_index == 0
    assert caught.value.ename == ""  # no reply: the kernel never answered


def test_a_notebook_converted_from_v3_is_filled_in_place() -> None:
    # nbformat's converters build nodes of nbformat.v3's own NotebookNode class.
    from nbformat import v3

    old = v3.new_notebook(
        worksheets=[v3.new_worksheet(cells=[v3.new_code_cell(input="print(6 * 7)")])],
        metadata={"kernelspec": {"name": "runtimelib-python", "display_name": "rt"}},
    )
    nb = nbformat.reads(v3.writes_json(old), as_version=4)
    assert type(nb) is not NotebookNode
    assert execute_notebook(nb) is nb
    assert nb.cells[0].outputs[0].text == "42\n"
    assert nb.metadata.language_info.name == "python"


def test_a_misspelt_run_option_fails_before_a_kernel_starts() -> None:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1")])
    with pytest.raises(TypeError, match="allow_error"):
        execute_notebook(nb, allow_error=True)  # type: ignore[call-arg]
