"""Running a notebook's code cells on one kernel, writing outputs the way nbclient does.

``NotebookRun`` is the sans-IO part: which cells run, and what each kernel message does to a
cell (output records as nbformat v4 writes them, ``display_id`` updates across the whole
notebook, ``clear_output`` with and without ``wait``, execution counts, timing metadata,
widget state). ``execute_notebook`` and ``execute_notebook_async`` drive it with a kernel.

A notebook is either nbformat's (a NotebookNode, as these functions take and return) or the
lighter ``nbfile.Node`` that the command reads without importing nbformat: every record
added to it is made of the notebook's own kind. nbformat is imported only when needed.
"""

from __future__ import annotations

import base64
import os
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypedDict, Union, cast

import anyio
import msgspec

from . import nbfile
from .errors import CellExecutionError, CellTimeoutError, KernelTimeoutError
from .kernelspec import default_kernel_name
from .messages import CommMsg, ExecuteReply, KernelInfoRequest, Message
from .notebook_widgets import OutputWidgets

if TYPE_CHECKING:
    from nbformat import NotebookNode
    from typing_extensions import Unpack

    from .client import AsyncKernelClient, KernelClient
    from .manager.base import EncryptionPolicy

__all__ = [
    "NotebookRun",
    "RunOptions",
    "execute_notebook",
    "execute_notebook_async",
    "read_notebook",
]

#: After a timeout interrupted a cell, how long the kernel has to end it before we give up.
INTERRUPT_GRACE = 10.0

#: Called before each cell runs: (position among the cells to run, how many run, the cell).
CellCallback = Callable[[int, int, "NotebookNode"], None]

_WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
_OUTPUT_TYPES = frozenset({"stream", "display_data", "execute_result", "error"})
_BACKSPACE = re.compile("[^\n]\x08")
_CARRIAGE_RETURN = re.compile(r".*\r(?=[^\n])")


def read_notebook(
    nb_or_path: NotebookNode | Mapping[str, Any] | str | os.PathLike[str],
) -> tuple[NotebookNode, Path | None]:
    """The notebook (as nbformat v4) and the folder it was read from, if it came from a file.

    A notebook node (nbformat's, or ``nbfile.Node``) is used as it is (and filled in place);
    a plain dict is converted (and the result is a new notebook).
    """
    if isinstance(nb_or_path, nbfile.Node):
        return cast("NotebookNode", nb_or_path), None
    import nbformat

    if isinstance(nb_or_path, (str, os.PathLike)):
        path = Path(nb_or_path)
        nb = nbformat.read(path, as_version=4)  # type: ignore[no-untyped-call]
        return cast("NotebookNode", nb), path.parent.absolute()
    if isinstance(nb_or_path, dict) and hasattr(type(nb_or_path), "__getattr__"):
        # A node with attribute access: nbformat's own, or the kind its converters make
        # (a notebook converted from v3 is made of nbformat.v3's NotebookNode).
        nb = nb_or_path
    else:
        nb = nbformat.from_dict(nb_or_path)  # type: ignore[no-untyped-call]
    if nb.get("nbformat", 4) < 4:
        nb = nbformat.convert(nb, 4)  # type: ignore[no-untyped-call]
    return cast("NotebookNode", nb), None


def _node_maker(nb: Mapping[str, Any]) -> Callable[[Mapping[str, Any]], Any]:
    """What turns plain JSON data into records of the same kind as ``nb``'s."""
    if isinstance(nb, nbfile.Node):
        return nbfile.from_dict
    import nbformat

    return cast("Callable[[Mapping[str, Any]], Any]", nbformat.from_dict)


def _timestamp(message: Message[Any]) -> str:
    date = message.header.date
    return date.strftime("%Y-%m-%dT%H:%M:%S.%fZ") if date is not None else ""


class NotebookRun:
    """What running one notebook does to it, one kernel message at a time (sans-IO).

    ``merge_streams`` joins every stream of the same name in a cell into one output, as
    nbclient's ``coalesce_streams`` does: ``\\r`` overwrites the line, stdout is kept before an
    adjacent stderr; a backspace also erases the character before it (nbclient leaves
    backspaces in). It is off by default because nbclient's own default keeps each stream
    message an output of its own.
    """

    def __init__(
        self,
        nb: NotebookNode,
        *,
        allow_errors: bool = False,
        skip_tag: str = "skip-execution",
        merge_streams: bool = False,
        record_timing: bool = True,
        store_widget_state: bool = True,
    ) -> None:
        self.nb = nb
        self._node = _node_maker(nb)
        self.allow_errors = allow_errors
        self.skip_tag = skip_tag
        self.merge_streams = merge_streams
        self.record_timing = record_timing
        self.store_widget_state = store_widget_state
        #: How many code cells were sent to the kernel so far.
        self.executed = 0
        #: The execute_reply of the cell running now, once it arrived.
        self.reply: ExecuteReply | None = None
        # display_id -> cell index -> positions in that cell's outputs
        self._displays: dict[str, dict[int, list[int]]] = {}
        self._clear_pending = False
        self._widget_state: dict[str, dict[str, Any]] = {}
        self._widget_buffers: dict[str, dict[tuple[str, ...], dict[str, Any]]] = {}
        self._output_widgets = OutputWidgets(self._node, self._widget_state)

    # -- which cells, which kernel -------------------------------------------------------------

    def named_kernel(self, given: str | None = None) -> str | None:
        """The kernel given, else the notebook's kernelspec; None when neither names one."""
        name = given or (self.nb.get("metadata", {}).get("kernelspec") or {}).get("name")
        return name if isinstance(name, str) and name else None

    def cells_to_run(self) -> list[int]:
        """The indices of the code cells that run: not blank, not tagged ``skip_tag``."""
        return [
            index
            for index, cell in enumerate(self.nb.cells)
            if cell.cell_type == "code"
            and cell.source.strip()
            and self.skip_tag not in cell.get("metadata", {}).get("tags", [])
        ]

    def allows_errors(self, index: int) -> bool:
        """Whether an error in this cell lets the run go on."""
        tags = self.nb.cells[index].get("metadata", {}).get("tags", [])
        return self.allow_errors or "raises-exception" in tags

    # -- a cell's life -------------------------------------------------------------------------

    def set_kernel_info(self, reply: Message[Any]) -> None:
        """Record the kernel's ``language_info`` in the notebook metadata."""
        language_info = reply.raw_content.get("language_info")
        if isinstance(language_info, dict):
            self.nb.metadata["language_info"] = self._node(language_info)

    def begin(self, index: int) -> None:
        """A cell is about to be sent: empty its outputs."""
        cell = self.nb.cells[index]
        self.executed += 1
        self.reply = None
        cell.outputs = []
        self._clear_pending = False
        if self.record_timing:
            cell.setdefault("metadata", self._node({}))["execution"] = self._node({})

    def on_message(self, index: int, message: Message[Any]) -> None:
        """Apply one message of the cell's execution (iopub, or the execute_reply)."""
        cell = self.nb.cells[index]
        msg_type = message.msg_type
        if message.channel == "shell":
            if isinstance(message.content, ExecuteReply):
                self.reply = message.content
                if self.record_timing:
                    cell.metadata.execution["shell.execute_reply"] = _timestamp(message)
            return
        content = message.raw_content
        if self.record_timing:
            self._record_timing(cell, message, content)
        transient = content.get("transient")
        display_id = transient.get("display_id") if isinstance(transient, dict) else None
        if display_id and msg_type in ("execute_result", "display_data", "update_display_data"):
            self._update_display(display_id, content)
        if "execution_count" in content:
            cell.execution_count = content["execution_count"]
        if msg_type == "clear_output":
            wait = bool(content.get("wait"))
            if self._output_widgets.capture(message, None, wait=wait):
                return  # it clears the Output widget capturing this request
            if wait:
                self._clear_pending = True
            else:
                self._clear(index)
        elif msg_type.startswith("comm_"):
            self._on_comm(message, content)
            self._output_widgets.on_comm(msg_type, content)
        elif msg_type in _OUTPUT_TYPES:
            output = self._node(_output(msg_type, content))
            if not self._output_widgets.capture(message, output):
                self._add_output(index, output, display_id)

    def take_outbox(self) -> list[Message[CommMsg]]:
        """The comm messages for the kernel that the last messages made (an Output widget's
        new outputs, sent back as a frontend would): to send on shell, in order."""
        outbox, self._output_widgets.outbox = self._output_widgets.outbox, []
        messages = []
        for parent, comm_id, data in outbox:
            message = Message.new(CommMsg(comm_id=comm_id, data=data), channel="shell")
            messages.append(msgspec.structs.replace(message, parent_header=parent))
        return messages

    def end(self, index: int, *, timed_out: bool = False) -> None:
        """The cell's execution is complete (or gave up on): finish the cell, and raise
        CellExecutionError (CellTimeoutError after a timeout) if it failed and errors are not
        allowed for it.
        """
        cell = self.nb.cells[index]
        reply = self.reply
        cell.execution_count = self.executed
        if self.merge_streams:
            cell.outputs = _merge_streams(cell.outputs)
        failed = reply is None or reply.status == "error"
        if not failed or (self.allows_errors(index) and reply is not None):
            return
        ename = reply.ename if reply is not None and isinstance(reply.ename, str) else ""
        evalue = reply.evalue if reply is not None and isinstance(reply.evalue, str) else ""
        traceback = (
            reply.traceback if reply is not None and isinstance(reply.traceback, list) else []
        )
        where = self.describe(index)
        if timed_out:
            raise CellTimeoutError(
                f"{where} ran past its timeout and was interrupted",
                cell_index=index,
                ename=ename,
                evalue=evalue,
                traceback=traceback,
            )
        raise CellExecutionError(
            f"{where} raised {ename}: {evalue}",
            cell_index=index,
            ename=ename,
            evalue=evalue,
            traceback=traceback,
        )

    def describe(self, index: int) -> str:
        """A cell as people find it: its place counted from 1 among all the notebook's cells,
        and the execution count its prompt shows (``In [2]``, as in the kernel's traceback).
        """
        count = self.nb.cells[index].get("execution_count")
        prompt = f" (In [{count}])" if isinstance(count, int) else ""
        return f"cell {index + 1} of {len(self.nb.cells)}{prompt}"

    def finish(self) -> None:
        """After the last cell: store the widgets' state in the notebook metadata."""
        if not self._widget_state:
            return
        states = {}
        for model_id, state in self._widget_state.items():
            if "_model_name" not in state:
                continue
            entry = {
                "model_name": state.get("_model_name"),
                "model_module": state.get("_model_module"),
                "model_module_version": state.get("_model_module_version"),
                "state": state,
            }
            buffers = self._widget_buffers.get(model_id)
            if buffers:
                entry["buffers"] = list(buffers.values())
            states[model_id] = entry
        self.nb.metadata["widgets"] = self._node(
            {_WIDGET_STATE: {"state": states, "version_major": 2, "version_minor": 0}}
        )

    # -- outputs -------------------------------------------------------------------------------

    def _record_timing(self, cell: NotebookNode, message: Message[Any], content: Any) -> None:
        timing = cell.metadata.execution
        if message.msg_type == "status":
            state = content.get("execution_state")
            if state in ("busy", "idle"):
                timing[f"iopub.status.{state}"] = _timestamp(message)
        elif message.msg_type == "execute_input":
            timing["iopub.execute_input"] = _timestamp(message)

    def _add_output(self, index: int, output: Any, display_id: str | None) -> None:
        outputs = self.nb.cells[index].outputs
        if self._clear_pending:
            self._clear(index)
        if display_id:
            self._displays.setdefault(display_id, {}).setdefault(index, []).append(len(outputs))
        outputs.append(output)

    def _clear(self, index: int) -> None:
        self.nb.cells[index].outputs.clear()
        self._clear_pending = False
        for positions in self._displays.values():
            if index in positions:
                positions[index] = []

    def _update_display(self, display_id: str, content: dict[str, Any]) -> None:
        data = self._node(content.get("data", {}))
        metadata = self._node(content.get("metadata", {}))
        for index, positions in self._displays.get(display_id, {}).items():
            outputs = self.nb.cells[index].outputs
            for position in positions:
                outputs[position]["data"] = data
                outputs[position]["metadata"] = metadata

    def _on_comm(self, message: Message[Any], content: dict[str, Any]) -> None:
        data = content.get("data")
        if not self.store_widget_state or not isinstance(data, dict):
            return
        state = data.get("state")
        if not isinstance(state, dict):
            return
        comm_id = content.get("comm_id", "")
        self._widget_state.setdefault(comm_id, {}).update(state)
        paths = data.get("buffer_paths") or []
        if paths:
            buffers = self._widget_buffers.setdefault(comm_id, {})
            for path, buffer in zip(paths, message.buffers, strict=False):
                buffers[tuple(path)] = {
                    "data": base64.b64encode(bytes(buffer)).decode("ascii"),
                    "encoding": "base64",
                    "path": path,
                }


def _output(msg_type: str, content: dict[str, Any]) -> dict[str, Any]:
    """An nbformat v4 output record from an iopub message's content."""
    if msg_type == "stream":
        record = {"name": content.get("name", "stdout"), "text": content.get("text", "")}
    elif msg_type == "error":
        record = {
            "ename": content.get("ename", ""),
            "evalue": content.get("evalue", ""),
            "traceback": content.get("traceback", []),
        }
    else:
        record = {"data": content.get("data", {}), "metadata": content.get("metadata", {})}
        if msg_type == "execute_result":
            record["execution_count"] = content.get("execution_count")
    return {"output_type": msg_type, **record}


def _merge_streams(outputs: list[NotebookNode]) -> list[NotebookNode]:
    merged: list[NotebookNode] = []
    streams: dict[str, NotebookNode] = {}
    for output in outputs:
        if output.output_type != "stream":
            merged.append(output)
        elif output.name in streams:
            streams[output.name].text += output.text
        else:
            streams[output.name] = output
            merged.append(output)
    for stream in streams.values():
        text = stream.text
        while True:
            shorter = _BACKSPACE.sub("", text)
            if len(shorter) == len(text):
                break
            text = shorter
        stream.text = _CARRIAGE_RETURN.sub("", text)
    # stdout and stderr race each other: keep stdout first where the two are adjacent.
    for position, output in enumerate(merged[:-1]):
        following = merged[position + 1]
        if (output.output_type, following.output_type) == ("stream", "stream") and (
            output.name,
            following.name,
        ) == ("stderr", "stdout"):
            merged[position], merged[position + 1] = following, output
    return merged


# -- drivers -----------------------------------------------------------------------------------

#: The kernel names nbclient (through jupyter_client) takes for ipykernel.
_IPYKERNEL_NAMES = frozenset({"python", "python2", "python3"})


def _kernel_arguments(name: str) -> list[str]:
    """What nbclient adds to ipykernel's command: its history in memory, so running a notebook
    writes nothing into the user's IPython history database."""
    return ["--HistoryManager.hist_file=:memory:"] if name in _IPYKERNEL_NAMES else []


NotebookSource = Union["NotebookNode", Mapping[str, Any], str, "os.PathLike[str]"]


class NotebookKernel(Protocol):
    """What a notebook run needs of a kernel manager: clients, and interrupting late cells."""

    def client(self) -> KernelClient: ...
    def interrupt(self) -> None: ...


class AsyncNotebookKernel(Protocol):
    """NotebookKernel for asyncio and trio (AsyncKernelManager, AsyncRemoteKernelManager)."""

    def client(self) -> AsyncKernelClient: ...
    async def interrupt(self) -> None: ...


#: A run's kernel manager, from the kernel named by the caller or notebook (None: neither).
KernelFactory = Callable[[str | None], AbstractContextManager[NotebookKernel]]
AsyncKernelFactory = Callable[[str | None], AbstractAsyncContextManager[AsyncNotebookKernel]]


class RunOptions(TypedDict, total=False):
    """How a notebook is run and written, as both ``execute_notebook`` twins take it (the
    keyword arguments of NotebookRun)."""

    #: A cell that raises does not stop the run (default False).
    allow_errors: bool
    #: Cells with this tag are not run (default "skip-execution").
    skip_tag: str
    #: Join each cell's streams of one name into one output (default False).
    merge_streams: bool
    #: Write the cells' execution timestamps into their metadata (default True).
    record_timing: bool
    #: Write the widgets' state into the notebook's metadata (default True).
    store_widget_state: bool


class _Driver:
    """What both ``execute_notebook`` twins do around their I/O: the run, the kernel's name
    and options, and the order of the cells with the progress callback."""

    def __init__(
        self,
        nb_or_path: NotebookSource,
        kernel_name: str | None,
        cwd: str | os.PathLike[str] | None,
        startup_timeout: float,
        transport_encryption: EncryptionPolicy | None,
        options: RunOptions,
    ) -> None:
        nb, folder = read_notebook(nb_or_path)
        self.run = NotebookRun(nb, **options)
        name = self.run.named_kernel(kernel_name) or default_kernel_name()
        self.manager_options: dict[str, Any] = {
            "kernel_name": name,
            "cwd": cwd or folder,
            "startup_timeout": startup_timeout,
            "extra_arguments": _kernel_arguments(name),
            "transport_encryption": transport_encryption,
        }

    def cells(self, on_cell: CellCallback | None) -> Iterator[int]:
        """The indices of the cells to run, telling ``on_cell`` before each one."""
        indices = self.run.cells_to_run()
        for position, index in enumerate(indices):
            if on_cell is not None:
                on_cell(position, len(indices), self.run.nb.cells[index])
            yield index


def execute_notebook(
    nb_or_path: NotebookSource,
    kernel_name: str | None = None,
    *,
    timeout: float | None = None,
    startup_timeout: float = 60.0,
    cwd: str | os.PathLike[str] | None = None,
    on_cell: CellCallback | None = None,
    transport_encryption: EncryptionPolicy | None = None,
    kernel_factory: KernelFactory | None = None,
    **options: Unpack[RunOptions],
) -> NotebookNode:
    """Run every code cell of a notebook in order on one new kernel; return the notebook.

    Outputs are written as nbclient writes them. The kernel is the one named, else the
    notebook's, else the default; it runs in ``cwd``, by default the notebook's folder.
    ``timeout`` (seconds per cell) interrupts a cell that runs longer. A cell that raises stops
    the run with CellExecutionError unless ``allow_errors`` or the cell's ``raises-exception``
    tag; the notebook keeps the outputs up to that cell either way. ``on_cell(position,
    count, cell)`` is called before each cell runs. ``transport_encryption`` is the kernel
    manager's (CurveZMQ). ``kernel_factory`` makes a manager of another kind (a remote one,
    say; ``cwd`` and encryption are then its own). The other options are RunOptions.
    """
    from .manager import KernelManager

    driver = _Driver(nb_or_path, kernel_name, cwd, startup_timeout, transport_encryption, options)
    run = driver.run
    make = kernel_factory or (lambda _: KernelManager(**driver.manager_options))
    with make(run.named_kernel(kernel_name)) as km, km.client() as kc:
        kc.comms.close_unknown = False  # widgets' comms stay open, as with nbclient
        run.set_kernel_info(kc.request(KernelInfoRequest(), timeout=startup_timeout))
        for index in driver.cells(on_cell):
            _run_cell(km, kc, run, index, timeout)
    run.finish()
    return run.nb


def _run_cell(
    km: NotebookKernel, kc: KernelClient, run: NotebookRun, index: int, timeout: float | None
) -> None:
    timed_out = threading.Event()

    def interrupt() -> None:
        timed_out.set()
        km.interrupt()

    timer = threading.Timer(timeout or 0, interrupt)
    if timeout is not None:
        timer.start()
    run.begin(index)
    try:
        for message in kc.stream(
            run.nb.cells[index].source,
            stop_on_error=not run.allows_errors(index),
            allow_stdin=False,
            timeout=None if timeout is None else timeout + INTERRUPT_GRACE,
        ):
            run.on_message(index, message)
            for reply in run.take_outbox():
                kc.send(reply)
    except KernelTimeoutError:
        pass  # the kernel ignored the interrupt: end() reports the timeout
    finally:
        timer.cancel()
    run.end(index, timed_out=timed_out.is_set())


async def execute_notebook_async(
    nb_or_path: NotebookSource,
    kernel_name: str | None = None,
    *,
    timeout: float | None = None,
    startup_timeout: float = 60.0,
    cwd: str | os.PathLike[str] | None = None,
    on_cell: CellCallback | None = None,
    transport_encryption: EncryptionPolicy | None = None,
    kernel_factory: AsyncKernelFactory | None = None,
    **options: Unpack[RunOptions],
) -> NotebookNode:
    """``execute_notebook`` for asyncio and trio."""
    from .manager import AsyncKernelManager

    driver = _Driver(nb_or_path, kernel_name, cwd, startup_timeout, transport_encryption, options)
    run = driver.run
    make = kernel_factory or (lambda _: AsyncKernelManager(**driver.manager_options))
    async with make(run.named_kernel(kernel_name)) as km, km.client() as kc:
        kc.comms.close_unknown = False  # widgets' comms stay open, as with nbclient
        run.set_kernel_info(await kc.request(KernelInfoRequest(), timeout=startup_timeout))
        for index in driver.cells(on_cell):
            await _run_cell_async(km, kc, run, index, timeout)
    run.finish()
    return run.nb


async def _run_cell_async(
    km: AsyncNotebookKernel,
    kc: AsyncKernelClient,
    run: NotebookRun,
    index: int,
    timeout: float | None,
) -> None:
    timed_out = False

    async def interrupt(after: float) -> None:
        nonlocal timed_out
        await anyio.sleep(after)
        timed_out = True
        await km.interrupt()

    run.begin(index)
    async with anyio.create_task_group() as watchdog:
        if timeout is not None:
            watchdog.start_soon(interrupt, timeout)
        try:
            async for message in kc.stream(
                run.nb.cells[index].source,
                stop_on_error=not run.allows_errors(index),
                allow_stdin=False,
                timeout=None if timeout is None else timeout + INTERRUPT_GRACE,
            ):
                run.on_message(index, message)
                for reply in run.take_outbox():
                    await kc.send(reply)
        except KernelTimeoutError:
            pass  # the kernel ignored the interrupt: end() reports the timeout
        watchdog.cancel_scope.cancel()
    run.end(index, timed_out=timed_out)
