"""Notebooks whose outputs depend on what the runner does beyond printing outputs: Output
widgets, IPython's history, the kernel name "python". Each is built here and run by both
runtimelib and nbclient; the files they write must match."""

from __future__ import annotations

import base64
import copy
import json
import re
import sqlite3
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient
from nbformat import NotebookNode
from nbformat.v4 import new_code_cell, new_notebook

from runtimelib.notebook import execute_notebook

from .conftest import NBCLIENT_OPTIONS, joined_streams

pytestmark = [pytest.mark.kernel, pytest.mark.usefixtures("jupyter_env")]

_MODEL_ID = re.compile(r"[0-9a-f]{32}")


def _notebook(*sources: str, kernel: str = "python3") -> NotebookNode:
    return new_notebook(
        cells=[new_code_cell(source) for source in sources],
        metadata={"kernelspec": {"name": kernel, "display_name": kernel}},
    )


def _canonical(nb: NotebookNode) -> str:
    """The notebook as nbformat writes it, without what differs from run to run: timing,
    widget model ids, numbered in the order they are reached from the cells' outputs, and
    where the kernel cut its streams (a print and its newline may leave ipykernel in two
    messages on a busy machine: two stream outputs in a row that show as one)."""
    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        cell.get("metadata", {}).pop("execution", None)
        if "outputs" in cell:
            cell.outputs = joined_streams(cell.outputs)
    state = nb.metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {})
    models = state.get("state", {})
    for model in models.values():
        if isinstance(model.get("state", {}).get("outputs"), list):
            model["state"]["outputs"] = joined_streams(model["state"]["outputs"])
    ids: dict[str, str] = {}

    def visit(model_id: str) -> None:
        if model_id in ids or model_id not in models:
            return
        ids[model_id] = f"model-{len(ids)}"
        for ref in _MODEL_ID.findall(json.dumps(models[model_id], sort_keys=True)):
            visit(ref)

    for cell in nb.cells:
        for ref in _MODEL_ID.findall(json.dumps(cell.get("outputs", []), sort_keys=True)):
            visit(ref)
    unreached = sorted(models, key=lambda m: json.dumps(models[m], sort_keys=True))
    for model_id in unreached:
        visit(model_id)
    renamed = _MODEL_ID.sub(lambda m: ids.get(m.group(0), m.group(0)), nbformat.writes(nb))
    # Written again, so that the renamed models are in the order of their new names.
    return json.dumps(json.loads(renamed), indent=1, sort_keys=True, ensure_ascii=False)


def _nbclient_timeout(cell: NotebookNode) -> int:
    """nbclient's time limit for a cell: one that imports may be slow on a loaded machine;
    the others are instant. Kept short because nbclient, after it sends a widget's state to
    the kernel on the shell socket it is polling for the reply, may not wake up for that
    reply until its time limit ends (with ipykernel as with ours); it then carries on."""
    return 60 if "import" in cell.source else 5


def _both(nb: NotebookNode, **nbclient_options: Any) -> tuple[NotebookNode, NotebookNode]:
    ours = execute_notebook(copy.deepcopy(nb))
    theirs = copy.deepcopy(nb)
    options = {**NBCLIENT_OPTIONS, **nbclient_options}
    NotebookClient(theirs, timeout_func=_nbclient_timeout, **options).execute()
    return ours, theirs


def _output_widget_states(nb: NotebookNode) -> list[Any]:
    state = nb.metadata.widgets["application/vnd.jupyter.widget-state+json"]["state"]
    return [e["state"]["outputs"] for e in state.values() if e["model_name"] == "OutputModel"]


OUTPUT_WIDGET_CELLS = (
    "import ipywidgets as w\nout = w.Output()\nout",
    "with out:\n    print('inside')\n    print('more', flush=True)\nprint('outside')",
    "with out:\n    display(w.HTML('<b>shown inside</b>'))\n    1 / 1",
    "out.clear_output(wait=True)\nwith out:\n    print('after a waiting clear')",
    "second = w.Output()\nwith second:\n    print('in the second')\nsecond",
    "out.clear_output()\nprint('cell output')",
)


@pytest.mark.parametrize("kernel", ["python3", "runtimelib-python"])
def test_output_widgets_capture_as_nbclient_does(kernel: str) -> None:
    ours, theirs = _both(_notebook(*OUTPUT_WIDGET_CELLS, kernel=kernel))
    assert _canonical(ours) == _canonical(theirs)
    # What the comparison rests on, on its own: the capture went into the widgets' state.
    texts = [
        c.outputs[0].text if c.outputs and "text" in c.outputs[0] else None for c in ours.cells
    ]
    assert texts[1] == "outside\n"
    assert texts[5] == "cell output\n"
    assert ["in the second\n"] in [[o.get("text") for o in s] for s in _output_widget_states(ours)]


WIDGET_STATE_CELLS = (
    "import ipywidgets as w\n"
    "a = w.IntSlider(value=3, description='a')\nb = w.IntText()\n"
    "link = w.jslink((a, 'value'), (b, 'value'))\nw.VBox([a, b])",
    "image = w.Image(value=bytes(range(256)), format='png')\nimage",
    "a.value = 7\nimage.value = bytes(range(10, 30))\nimage.width = '40'",
    "w.interact(lambda x: print(x * 2), x=4);",
)


@pytest.mark.parametrize("kernel", ["python3", "runtimelib-python"])
def test_widget_state_is_stored_as_nbclient_stores_it(kernel: str) -> None:
    nb = _notebook(*WIDGET_STATE_CELLS, kernel=kernel)
    ours, theirs = _both(nb)
    assert _canonical(ours) == _canonical(theirs)
    # The same from run to run: the stored state, buffers and all, does not depend on timing.
    again = execute_notebook(copy.deepcopy(nb))
    assert _canonical(again) == _canonical(ours)
    state = ours.metadata.widgets["application/vnd.jupyter.widget-state+json"]["state"]
    images = [entry for entry in state.values() if entry["model_name"] == "ImageModel"]
    assert [entry["buffers"][0]["path"] for entry in images] == [["value"]]
    assert images[0]["buffers"][0]["data"] == base64.b64encode(bytes(range(10, 30))).decode()
    sliders = [entry for entry in state.values() if entry["model_name"] == "IntSliderModel"]
    assert sorted(entry["state"]["value"] for entry in sliders) == [4, 7]


def test_ipython_history_stays_in_memory(jupyter_env: Path) -> None:
    check = (
        "from IPython import get_ipython\n"
        "assert get_ipython().history_manager.hist_file == ':memory:'\n"
        "print('history in memory')"
    )
    ours, theirs = _both(_notebook(check, "x = 'a secret'"))
    assert _canonical(ours) == _canonical(theirs)
    assert ours.cells[0].outputs[0].text == "history in memory\n"
    # Nothing of the run reached the user's history database.
    database = Path(jupyter_env.parent / "ipython" / "profile_default" / "history.sqlite")
    if database.exists():
        with sqlite3.connect(database) as db:
            sources = [row[0] for row in db.execute("select source from history")]
        assert "x = 'a secret'" not in sources


def test_the_kernel_name_python_runs_on_python3() -> None:
    ours, theirs = _both(_notebook("import sys\nprint(sys.version_info[0])", kernel="python"))
    assert _canonical(ours) == _canonical(theirs)
    assert ours.cells[0].outputs[0].text == "3\n"


def test_the_first_cells_streams_come_out_in_the_order_written() -> None:
    # The first cell goes to the kernel as soon as it answers kernel_info.
    cell = "import sys\nprint('out')\nprint('err', file=sys.stderr)"
    ours, theirs = _both(_notebook(cell))
    assert _canonical(ours) == _canonical(theirs)
    assert [(o.name, o.text) for o in ours.cells[0].outputs] == [
        ("stdout", "out\n"),
        ("stderr", "err\n"),
    ]
