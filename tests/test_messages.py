"""Typed contents, headers and the message envelope."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, timezone

import msgspec
import pytest

import runtimelib
from runtimelib import messages
from runtimelib.messages import (
    Content,
    DisplayData,
    ExecuteReply,
    ExecuteRequest,
    Header,
    HistoryRequest,
    Message,
    ShutdownRequest,
    Status,
    UnknownContent,
)

# Every msg_type of protocol 5.4, the 5.5 subshell messages, and ipykernel's usage messages.
SPEC_MSG_TYPES = {
    "execute_request": "shell",
    "execute_reply": "shell",
    "inspect_request": "shell",
    "inspect_reply": "shell",
    "complete_request": "shell",
    "complete_reply": "shell",
    "history_request": "shell",
    "history_reply": "shell",
    "is_complete_request": "shell",
    "is_complete_reply": "shell",
    "connect_request": "shell",
    "connect_reply": "shell",
    "comm_info_request": "shell",
    "comm_info_reply": "shell",
    "kernel_info_request": "shell",
    "kernel_info_reply": "shell",
    "comm_open": "shell",
    "comm_msg": "shell",
    "comm_close": "shell",
    "shutdown_request": "control",
    "shutdown_reply": "control",
    "interrupt_request": "control",
    "interrupt_reply": "control",
    "debug_request": "control",
    "debug_reply": "control",
    "create_subshell_request": "control",
    "create_subshell_reply": "control",
    "delete_subshell_request": "control",
    "delete_subshell_reply": "control",
    "list_subshell_request": "control",
    "list_subshell_reply": "control",
    "usage_request": "control",
    "usage_reply": "control",
    "stream": "iopub",
    "display_data": "iopub",
    "update_display_data": "iopub",
    "execute_input": "iopub",
    "execute_result": "iopub",
    "error": "iopub",
    "status": "iopub",
    "clear_output": "iopub",
    "debug_event": "iopub",
    "iopub_welcome": "iopub",
    "input_request": "stdin",
    "input_reply": "stdin",
}


def test_every_spec_msg_type_has_a_class_on_its_channel() -> None:
    registered = messages.registered_types()
    assert set(registered) == set(SPEC_MSG_TYPES)
    for msg_type, channel in SPEC_MSG_TYPES.items():
        cls = registered[msg_type]
        assert cls.msg_type == msg_type
        assert cls.channel == channel, msg_type
        # Named after the msg_type in PascalCase.
        assert cls.__name__ == "".join(word.title() for word in msg_type.split("_"))
        assert getattr(messages, cls.__name__) is cls


@pytest.mark.parametrize("msg_type", sorted(t for t in SPEC_MSG_TYPES if t.endswith("_request")))
def test_every_request_has_its_reply(msg_type: str) -> None:
    reply = messages.reply_type(msg_type)
    if msg_type == "input_request":  # the kernel asks, the frontend replies
        assert reply is messages.InputReply
    else:
        assert reply is not None
        assert reply.msg_type == msg_type.replace("_request", "_reply")


def test_reply_type_of_a_non_request_is_none() -> None:
    assert messages.reply_type(messages.Stream) is None
    assert messages.reply_type(ExecuteRequest) is ExecuteReply


def test_public_surface() -> None:
    assert runtimelib.Message is Message
    assert runtimelib.Header is Header
    assert runtimelib.messages.ExecuteRequest(code="1").code == "1"
    assert runtimelib.RemoteProtocolError is runtimelib.errors.RemoteProtocolError
    with pytest.raises(AttributeError):
        _ = runtimelib.NoSuchThing  # type: ignore[attr-defined]


def test_contents_are_strict_when_written() -> None:
    with pytest.raises(TypeError):
        ExecuteRequest()  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        ExecuteRequest("positional")  # type: ignore[misc]
    content = ExecuteRequest(code="1")
    with pytest.raises(AttributeError):
        content.code = "2"  # type: ignore[misc]


def test_new_message_has_a_fresh_header() -> None:
    before = datetime.now(timezone.utc)
    one, two = Message.new(ExecuteRequest(code="1")), Message.new(ExecuteRequest(code="1"))
    assert one.msg_id != two.msg_id
    assert one.header.msg_type == "execute_request"
    assert one.msg_type == "execute_request"
    assert one.header.version == "5.4"
    assert one.header.date is not None
    assert before <= one.header.date <= datetime.now(timezone.utc)
    assert one.parent_header is None
    assert one.parent_id is None
    assert one.channel == "shell"
    assert one.header.session == two.header.session == messages.DEFAULT_SESSION


def test_child_message_carries_parent_session_and_subshell() -> None:
    request = Message.new(ExecuteRequest(code="1"), session="client", subshell_id="sub-1")
    assert request.header.version == "5.5"
    child = Message.new(Status(execution_state="busy"), request)
    assert child.parent_header == request.header
    assert child.parent_id == request.msg_id
    assert child.header.session == "client"
    assert child.header.subshell_id == "sub-1"
    assert child.channel == "iopub"
    assert (
        Message.new(Status(execution_state="busy"), request, session="kernel").header.session
        == "kernel"
    )


def test_reply_keeps_routing_and_channel() -> None:
    request = Message.new(ShutdownRequest(restart=True), identities=(b"peer",), channel="shell")
    reply = request.reply(messages.ShutdownReply(restart=True), session="kernel")
    assert reply.identities == (b"peer",)
    assert reply.channel == "shell"  # the channel the request came on, not the class default
    assert reply.parent_header == request.header
    assert reply.header.session == "kernel"
    assert reply.msg_type == "shutdown_reply"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_msg_ids_differ_in_a_forked_child() -> None:
    code = (
        "import os, sys\n"
        "from runtimelib.messages import new_id\n"
        "new_id()\n"
        "r, w = os.pipe()\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    os.write(w, new_id().encode()); os._exit(0)\n"
        "os.waitpid(pid, 0)\n"
        "child = os.read(r, 200).decode()\n"
        "print(child.split('_')[0] != new_id().split('_')[0])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"


def test_history_request_writes_only_the_fields_of_its_access_type() -> None:
    tail = HistoryRequest(hist_access_type="tail", n=10)
    assert tail.to_dict() == {"output": False, "raw": True, "hist_access_type": "tail", "n": 10}
    search = HistoryRequest(hist_access_type="search", pattern="a*", unique=True, n=3)
    assert set(search.to_dict()) == {"output", "raw", "hist_access_type", "n", "pattern", "unique"}


def test_rich_content_gives_a_mime_bundle_and_display_id() -> None:
    content = DisplayData(
        data={"text/plain": "x", "text/html": "<b>x</b>"},
        metadata={"text/html": {"isolated": True}},
        transient={"display_id": "d1"},
    )
    assert content.display_id == "d1"
    assert content.bundle["text/html"] == "<b>x</b>"
    assert content.bundle.metadata == {"text/html": {"isolated": True}}
    assert DisplayData(data={}).display_id is None


def test_unknown_content_keeps_every_key() -> None:
    content = UnknownContent(data={"a": 1, "b": [None]})
    assert content.to_dict() == {"a": 1, "b": [None]}


def test_replace_gives_a_changed_copy() -> None:
    message = Message.new(ExecuteRequest(code="1"))
    changed = message.replace(content=ExecuteRequest(code="2"))
    assert changed.content == ExecuteRequest(code="2")
    assert message.content == ExecuteRequest(code="1")
    assert changed.header == message.header


def test_contents_are_msgspec_structs_with_class_level_msg_type() -> None:
    for cls in messages.registered_types().values():
        assert issubclass(cls, Content)
        assert issubclass(cls, msgspec.Struct)
        assert "msg_type" not in {f.name for f in msgspec.structs.fields(cls)}
