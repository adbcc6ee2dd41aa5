"""Output widgets while a notebook runs: where a frontend would put what runs inside one.

``with out:`` on an ipywidgets ``Output`` tells the frontend, through the widget's state, the
msg_id whose outputs it captures; a frontend then shows those outputs in the widget, not in
the cell. nbclient does the same without a screen: the outputs go into the widget's state
(which the notebook's widget metadata keeps), ``clear_output`` clears the widget, and the new
state is sent back to the kernel. This is that behaviour, sans-IO: the run asks whether a
message is captured, and sends what ``outbox`` holds.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .messages import Header, Message

__all__ = ["OutputWidgets"]

_OUTPUT_MODULE = "@jupyter-widgets/output"
_OUTPUT_MODEL = "OutputModel"


class _OutputWidget:
    """One Output widget's outputs, as its frontend view holds them."""

    def __init__(self, comm_id: str, outputs: list[Any]) -> None:
        self.comm_id = comm_id
        self.outputs = outputs
        self.msg_id = ""
        self.clear_before_next_output = False


class OutputWidgets:
    """The Output widgets of one run, and the msg_ids whose outputs they capture."""

    def __init__(
        self,
        node: Callable[[Mapping[str, Any]], Any],
        widget_state: dict[str, dict[str, Any]],
    ) -> None:
        self._node = node
        self._state = widget_state
        self._widgets: dict[str, _OutputWidget] = {}
        # msg_id -> the widgets capturing it, the innermost last
        self._hooks: dict[str, list[_OutputWidget]] = {}
        #: comm_msgs to send the kernel: (parent header, comm_id, data).
        self.outbox: list[tuple[Header | None, str, dict[str, Any]]] = []

    def on_comm(self, msg_type: str, content: Mapping[str, Any]) -> None:
        """A comm message of the kernel: an Output widget opened, or its capture changed."""
        comm_id = content.get("comm_id")
        data = content.get("data")
        if not isinstance(comm_id, str) or not isinstance(data, dict):
            return
        state = data.get("state")
        if not isinstance(state, dict):
            return
        if msg_type == "comm_open" and content.get("target_name") == "jupyter.widget":
            if (state.get("_model_module"), state.get("_model_name")) == (
                _OUTPUT_MODULE,
                _OUTPUT_MODEL,
            ):
                outputs = state.get("outputs")
                self._widgets[comm_id] = _OutputWidget(
                    comm_id, list(outputs) if isinstance(outputs, list) else []
                )
            return
        widget = self._widgets.get(comm_id)
        if msg_type == "comm_msg" and widget is not None and "msg_id" in state:
            self._capture(widget, state["msg_id"])

    def _capture(self, widget: _OutputWidget, msg_id: object) -> None:
        if widget.msg_id:
            hooks = self._hooks.get(widget.msg_id, [])
            if widget in hooks:
                hooks.remove(widget)
        widget.msg_id = msg_id if isinstance(msg_id, str) else ""
        if widget.msg_id:
            self._hooks.setdefault(widget.msg_id, []).append(widget)

    def capture(self, message: Message[Any], output: Any | None, *, wait: bool = False) -> bool:
        """Give an output (or, with ``output`` None, a clear_output) to the widget capturing
        its request, if one is; True if one took it."""
        hooks = self._hooks.get(message.parent_id or "")
        if not hooks:
            return False
        widget = hooks[-1]
        if output is None:
            if wait:
                widget.clear_before_next_output = True
                return True
            widget.outputs = []
        else:
            if widget.clear_before_next_output:
                widget.outputs = []
                widget.clear_before_next_output = False
            last = widget.outputs[-1] if widget.outputs else None
            if (
                last is not None
                and last.get("output_type") == "stream" == output.get("output_type")
                and last.get("name") == output.get("name")
            ):
                last["text"] += output["text"]  # a frontend's view joins a stream's pieces
            else:
                widget.outputs.append(output)
        self._sync(widget, message.parent_header)
        return True

    def _sync(self, widget: _OutputWidget, parent: Header | None) -> None:
        # The notebook keeps the view's outputs; the kernel's widget learns them too.
        self._state.setdefault(widget.comm_id, {})["outputs"] = widget.outputs
        data = {"method": "update", "state": {"outputs": widget.outputs}, "buffer_paths": []}
        self.outbox.append((parent, widget.comm_id, data))
