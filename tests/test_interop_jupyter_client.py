"""Byte-level interoperability of the session codec with jupyter_client's Session, both ways."""

from __future__ import annotations

import json
import re
import zoneinfo
from datetime import datetime, timedelta, timezone
from typing import Any

import msgspec
import pytest
from dateutil.tz import tzutc
from jupyter_client.session import Session as JupyterSession

from runtimelib import errors
from runtimelib.messages import (
    ClearOutput,
    CommClose,
    CommInfoReply,
    CommInfoRequest,
    CommMsg,
    CommOpen,
    CompleteReply,
    CompleteRequest,
    ConnectReply,
    ConnectRequest,
    Content,
    CreateSubshellReply,
    CreateSubshellRequest,
    DebugEvent,
    DebugReply,
    DebugRequest,
    DeleteSubshellReply,
    DeleteSubshellRequest,
    DisplayData,
    Error,
    ExecuteInput,
    ExecuteReply,
    ExecuteRequest,
    ExecuteResult,
    Header,
    HelpLink,
    HistoryReply,
    HistoryRequest,
    InputReply,
    InputRequest,
    InspectReply,
    InspectRequest,
    InterruptReply,
    InterruptRequest,
    IopubWelcome,
    IsCompleteReply,
    IsCompleteRequest,
    KernelInfoReply,
    KernelInfoRequest,
    LanguageInfo,
    ListSubshellReply,
    ListSubshellRequest,
    Message,
    Reply,
    ShutdownReply,
    ShutdownRequest,
    Status,
    Stream,
    UpdateDisplayData,
    UsageReply,
    UsageRequest,
    registered_types,
)
from runtimelib.protocol import DELIMITER, Session

# ---------------------------------------------------------------------------------------------
# Sample contents: one realistic, fully populated content per msg_type.
# ---------------------------------------------------------------------------------------------

TEXT = "héllo ✓ 日本語 🐍"

TRACEBACK = [
    "\x1b[0;31m" + "-" * 75 + "\x1b[0m",
    "\x1b[0;31mZeroDivisionError\x1b[0m                         Traceback (most recent call last)",
    "Cell \x1b[0;32mIn[3], line 1\x1b[0m\n\x1b[0;32m----> 1\x1b[0m 1 / 0  # " + TEXT,
    "\x1b[0;31mZeroDivisionError\x1b[0m: division by zero",
]
ERROR_FIELDS: dict[str, Any] = {
    "ename": "ZeroDivisionError",
    "evalue": f"division by zero ({TEXT})",
    "traceback": TRACEBACK,
}

MIME: dict[str, Any] = {
    "text/plain": f"'{TEXT}'",
    "text/html": f"<b>{TEXT}</b>",
    "application/json": {"nested": [1, 2.5, None, True, TEXT], "empty": {}},
    "image/png": (
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"
        "+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
    ),
}
MIME_METADATA: dict[str, Any] = {"image/png": {"width": 640, "height": 480}, "isolated": True}

SAMPLE_LIST: list[Content] = [
    # shell
    ExecuteRequest(
        code=f"print({TEXT!r})\nx = 1 / 3",
        silent=True,
        store_history=False,
        user_expressions={"x": "x * 2", "名前": "len('🐍')"},
        allow_stdin=False,
        stop_on_error=False,
    ),
    ExecuteReply(
        execution_count=7,
        payload=[{"source": "page", "data": {"text/plain": TEXT}, "start": 0}],
        user_expressions={"x": {"status": "ok", "data": {"text/plain": "0.666"}, "metadata": {}}},
    ),
    InspectRequest(code=f"print({TEXT!r})", cursor_pos=3, detail_level=1),
    InspectReply(found=True, data=MIME, metadata=MIME_METADATA),
    CompleteRequest(code="import o", cursor_pos=8),
    CompleteReply(
        matches=["os", "operator", TEXT],
        cursor_start=7,
        cursor_end=8,
        metadata={"_jupyter_types_experimental": [{"start": 7, "end": 8, "type": "module"}]},
    ),
    HistoryRequest(
        output=True,
        raw=False,
        hist_access_type="search",
        session=-1,
        start=1,
        stop=10,
        n=5,
        pattern=f"*{TEXT}*",
        unique=True,
    ),
    HistoryReply(
        history=[(1, 1, "x = 1"), (1, 2, (f"print({TEXT!r})", TEXT)), (2, 1, ("pass", None))]
    ),
    IsCompleteRequest(code="for i in range(3):"),
    IsCompleteReply(status="incomplete", indent="    "),
    ConnectRequest(),
    ConnectReply(
        shell_port=50001, iopub_port=50002, stdin_port=50003, hb_port=50004, control_port=50005
    ),
    CommInfoRequest(target_name="jupyter.widget"),
    CommInfoReply(
        comms={"c0ffee": {"target_name": "jupyter.widget"}, "日本": {"target_name": TEXT}}
    ),
    KernelInfoRequest(),
    KernelInfoReply(
        protocol_version="5.4",
        implementation="ipython",
        implementation_version="9.1.0",
        language_info=LanguageInfo(
            name="python",
            version="3.11.7",
            mimetype="text/x-python",
            file_extension=".py",
            pygments_lexer="ipython3",
            codemirror_mode={"name": "ipython", "version": 3},
            nbconvert_exporter="python",
        ),
        banner=f"Python 3.11.7 {TEXT}",
        debugger=True,
        help_links=[
            HelpLink(text="Python Reference", url="https://docs.python.org/3.11"),
            HelpLink(text=TEXT, url="https://example.org/日本語"),
        ],
        supported_features=["kernel subshells", "debugger"],
    ),
    # comms
    CommOpen(
        comm_id="c0ffee",
        target_name="jupyter.widget",
        data={"state": {"value": 42, "description": TEXT}, "buffer_paths": [["state", "data"]]},
        target_module="ipywidgets",
    ),
    CommMsg(comm_id="c0ffee", data={"method": "update", "state": {"value": 43.5, "x": None}}),
    CommClose(comm_id="c0ffee", data={"reason": TEXT}),
    # iopub
    Stream(name="stderr", text=f'{TEXT}\n\ttabbed \\ backslash "quoted"\n'),
    DisplayData(data=MIME, metadata=MIME_METADATA, transient={"display_id": "disp-1"}),
    UpdateDisplayData(
        data={"text/plain": f"updated {TEXT}"}, metadata={}, transient={"display_id": "disp-1"}
    ),
    ExecuteResult(
        data=MIME, metadata=MIME_METADATA, transient={"display_id": "out-7"}, execution_count=7
    ),
    ExecuteInput(code=f"print({TEXT!r})", execution_count=7),
    Error(**ERROR_FIELDS),
    Status(execution_state="busy"),
    ClearOutput(wait=True),
    IopubWelcome(subscription="kernel.a1b2."),
    DebugEvent(
        seq=12,
        type="event",
        event="stopped",
        body={"reason": "breakpoint", "threadId": 1, "allThreadsStopped": True, "text": TEXT},
    ),
    # stdin
    InputRequest(prompt=f"{TEXT}? ", password=True),
    InputReply(value=TEXT),
    # control
    ShutdownRequest(restart=True),
    ShutdownReply(restart=True),
    InterruptRequest(),
    InterruptReply(),
    DebugRequest(
        seq=3,
        type="request",
        command="setBreakpoints",
        arguments={
            "source": {"path": "/tmp/ipykernel_1/123.py", "name": TEXT},
            "breakpoints": [{"line": 2}],
            "sourceModified": False,
        },
    ),
    DebugReply(
        seq=4,
        type="response",
        request_seq=3,
        success=True,
        command="setBreakpoints",
        message=TEXT,
        body={"breakpoints": [{"verified": True, "line": 2, "id": 1}]},
    ),
    CreateSubshellRequest(),
    CreateSubshellReply(subshell_id="subshell-1"),
    DeleteSubshellRequest(subshell_id="subshell-1"),
    DeleteSubshellReply(),
    ListSubshellRequest(),
    ListSubshellReply(subshell_id=["subshell-1", "subshell-2"]),
    UsageRequest(),
    UsageReply(
        hostname=f"host-{TEXT}",
        pid=4242,
        kernel_cpu=12.5,
        kernel_memory=123456789,
        host_cpu_percent=37.25,
        cpu_count=8,
        host_virtual_memory={"total": 17179869184, "available": 8589934592, "percent": 50.0},
    ),
]
SAMPLES: dict[str, Content] = {content.msg_type: content for content in SAMPLE_LIST}

METADATA: dict[str, Any] = {
    "started": "2026-11-23T21:29:08.272851Z",
    "dependencies_met": True,
    "engine": "4c4a2b9e-cafe",
    "note": TEXT,
    "deleted": None,
}

BUFFERS: list[bytes | bytearray | memoryview] = [
    b"\x00\x01\xff" * 1000,
    memoryview(bytes(range(256))),
    bytearray(b"<IDS|MSG>"),  # a buffer that looks like the delimiter is still just a buffer
    b"",
]

KEY = b"a0436f6c-1916-498b-8eb9-e81ab9368e84"
OTHER_KEY = b"5ca1ab1e-0000-4000-8000-d15ea5edbeef"
ROUTING_ID = b"routing-id"
PACKERS = ["json", "default"]
SCHEMES = ["hmac-sha256", "hmac-sha512", "hmac-md5"]
DATE_PATTERN = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{6})?Z")


def _cases() -> list[Any]:
    """Every registered msg_type, plus an error variant of every reply that has one."""
    cases = []
    for msg_type, cls in sorted(registered_types().items()):
        cases.append(pytest.param(msg_type, False, id=msg_type))
        if issubclass(cls, Reply):
            cases.append(pytest.param(msg_type, True, id=f"{msg_type}-error"))
    return cases


CASES = _cases()
REQUEST_REPLY_PAIRS = [
    pytest.param(name, name.removesuffix("_request") + "_reply", id=name)
    for name in sorted(registered_types())
    if name.endswith("_request") and name.removesuffix("_request") + "_reply" in registered_types()
]


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


def sample(msg_type: str, error: bool = False) -> Content:
    """The sample content of ``msg_type``; for ``error``, the same reply with status error."""
    content = SAMPLES[msg_type]
    if error:
        content = msgspec.structs.replace(content, status="error", **ERROR_FIELDS)
    return content


def request_for(msg_type: str) -> Content:
    """The request a message of this type answers (replies) or belongs to (everything else)."""
    if msg_type.endswith("_reply"):
        return SAMPLES[msg_type.removesuffix("_reply") + "_request"]
    return SAMPLES["execute_request"]


def jupyter_session(
    packer: str, key: bytes = KEY, signature_scheme: str = "hmac-sha256"
) -> JupyterSession:
    """A jupyter_client Session with the stdlib json packer, or its default (orjson)."""
    if packer == "json":
        return JupyterSession(
            key=key, signature_scheme=signature_scheme, packer="json", unpacker="json"
        )
    return JupyterSession(key=key, signature_scheme=signature_scheme)


def normalise(obj: Any) -> Any:
    """``obj`` as JSON sees it (tuples become lists)."""
    return json.loads(json.dumps(obj))


def split(frames: list[Any]) -> tuple[list[bytes], bytes, list[bytes], list[bytes]]:
    """Routing ids, signature, the four JSON parts and the buffers, all as bytes."""
    frames = [bytes(frame) for frame in frames]
    at = frames.index(DELIMITER)
    return frames[:at], frames[at + 1], frames[at + 2 : at + 6], frames[at + 6 :]


def jupyter_reads(jc: JupyterSession, frames: list[Any]) -> tuple[list[bytes], dict[str, Any]]:
    """What jupyter_client makes of ``frames``: the routing ids and the message dict."""
    idents, rest = jc.feed_identities(frames)
    return idents, jc.deserialize(rest, content=True)


def jupyter_header(header: Header) -> dict[str, Any]:
    """Our header as the dict jupyter_client gives for it (dates as datetimes)."""
    result = msgspec.structs.asdict(header)
    if result["subshell_id"] is None:
        del result["subshell_id"]
    return result


def jupyter_request(jc: JupyterSession, msg_type: str, **extra_header: Any) -> dict[str, Any]:
    """A jupyter_client message dict for the sample request, with extra header keys."""
    header = {**jc.msg_header(msg_type), **extra_header}
    return jc.msg(msg_type, normalise(SAMPLES[msg_type].to_dict()), header=header)


# ---------------------------------------------------------------------------------------------
# The sample table itself
# ---------------------------------------------------------------------------------------------


def test_every_registered_type_has_exactly_one_sample() -> None:
    assert len(SAMPLES) == len(SAMPLE_LIST)
    assert set(SAMPLES) == set(registered_types())
    for msg_type, content in SAMPLES.items():
        assert type(content) is registered_types()[msg_type]


@pytest.mark.parametrize(("msg_type", "error"), CASES)
def test_samples_populate_every_field(msg_type: str, error: bool) -> None:
    content = sample(msg_type, error)
    wire = content.to_dict()
    skipped = set() if error else {"ename", "evalue", "traceback"}
    for field in msgspec.structs.fields(type(content)):
        if isinstance(content, Reply) and field.name in skipped:
            assert field.encode_name not in wire
        else:
            assert field.encode_name in wire, field.name


def test_default_packer_is_orjson() -> None:
    # Otherwise the "default" parametrization would test the json packer twice.
    assert jupyter_session("default").packer == "orjson"
    assert jupyter_session("json").packer == "json"


# ---------------------------------------------------------------------------------------------
# Every msg_type, both directions
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("packer", PACKERS)
@pytest.mark.parametrize(("msg_type", "error"), CASES)
def test_jupyter_client_reads_what_we_send(msg_type: str, error: bool, packer: str) -> None:
    ours = Session(KEY, session_id=f"session-{TEXT}", username=f"user-{TEXT}")
    jc = jupyter_session(packer)
    request = ours.message(request_for(msg_type))
    message = ours.message(sample(msg_type, error), request, metadata=METADATA)

    idents, received = jupyter_reads(jc, ours.serialize(message, identities=[ROUTING_ID]))

    assert idents == [ROUTING_ID]
    assert received["msg_type"] == received["header"]["msg_type"] == msg_type
    assert received["msg_id"] == received["header"]["msg_id"] == message.msg_id
    assert received["header"]["session"] == f"session-{TEXT}"
    assert received["header"]["username"] == f"user-{TEXT}"
    assert received["header"]["version"] == message.header.version
    assert isinstance(received["header"]["date"], datetime)
    assert received["header"]["date"] == message.header.date
    assert received["header"] == jupyter_header(message.header)
    assert received["parent_header"]["msg_id"] == request.msg_id
    assert received["parent_header"] == jupyter_header(request.header)
    assert received["metadata"] == METADATA
    assert normalise(received["content"]) == normalise(message.content.to_dict())
    assert received["buffers"] == []


@pytest.mark.parametrize("packer", PACKERS)
@pytest.mark.parametrize(("msg_type", "error"), CASES)
def test_we_read_what_jupyter_client_sends(msg_type: str, error: bool, packer: str) -> None:
    jc = jupyter_session(packer)
    content = sample(msg_type, error)
    wire = normalise(content.to_dict())
    parent_type = request_for(msg_type).msg_type
    request = jc.msg(parent_type, normalise(request_for(msg_type).to_dict()))
    sent = jc.msg(msg_type, wire, parent=request, metadata=METADATA)

    message = Session(KEY).deserialize(jc.serialize(sent, ident=[ROUTING_ID]))

    assert type(message.content) is registered_types()[msg_type]
    assert message.problems == ()
    assert normalise(message.content.to_dict()) == wire
    assert message.content == content
    assert message.raw_content == wire
    assert message.identities == (ROUTING_ID,)
    assert message.msg_type == msg_type
    assert jupyter_header(message.header) == sent["header"]
    assert message.header.date == sent["header"]["date"]
    assert message.parent_header is not None
    assert message.parent_id == request["header"]["msg_id"]
    assert jupyter_header(message.parent_header) == request["header"]
    assert message.metadata == METADATA
    assert message.buffers == ()


@pytest.mark.parametrize("packer", PACKERS)
def test_no_parent_is_an_empty_parent_header_both_ways(packer: str) -> None:
    ours = Session(KEY)
    frames = ours.serialize(ours.message(SAMPLES["status"]))
    assert split(frames)[2][1] == b"{}"
    assert jupyter_reads(jupyter_session(packer), frames)[1]["parent_header"] == {}

    jc = jupyter_session(packer)
    message = ours.deserialize(jc.serialize(jc.msg("status", {"execution_state": "busy"})))
    assert message.parent_header is None
    assert message.problems == ()


# ---------------------------------------------------------------------------------------------
# Buffers, signing off, signature schemes, wrong keys
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("packer", PACKERS)
def test_buffers_arrive_byte_identical_at_jupyter_client(packer: str) -> None:
    ours = Session(KEY)
    message = ours.message(SAMPLES["comm_msg"], buffers=BUFFERS)
    _, received = jupyter_reads(jupyter_session(packer), ours.serialize(message))
    assert [bytes(buf) for buf in received["buffers"]] == [bytes(buf) for buf in BUFFERS]
    assert received["content"] == normalise(SAMPLES["comm_msg"].to_dict())


@pytest.mark.parametrize("packer", PACKERS)
def test_buffers_from_jupyter_client_arrive_byte_identical(packer: str) -> None:
    jc = jupyter_session(packer)
    sent = jc.msg("comm_msg", normalise(SAMPLES["comm_msg"].to_dict()))
    # Session.send appends the buffers to what serialize gives; so do we.
    frames = [*jc.serialize(sent, ident=[ROUTING_ID]), *BUFFERS]
    message = Session(KEY).deserialize(frames)
    assert [bytes(buf) for buf in message.buffers] == [bytes(buf) for buf in BUFFERS]
    assert message.content == SAMPLES["comm_msg"]
    # Forwarded on, the buffers still reach jupyter_client unchanged.
    _, received = jupyter_reads(jupyter_session(packer), Session(KEY).serialize(message))
    assert [bytes(buf) for buf in received["buffers"]] == [bytes(buf) for buf in BUFFERS]


@pytest.mark.parametrize("packer", PACKERS)
def test_empty_key_turns_signing_off_both_ways(packer: str) -> None:
    ours = Session(b"")
    jc = jupyter_session(packer, key=b"")

    frames = ours.serialize(ours.message(SAMPLES["execute_request"]))
    assert split(frames)[1] == b""
    _, received = jupyter_reads(jc, frames)
    assert received["content"] == normalise(SAMPLES["execute_request"].to_dict())

    sent = jc.msg("stream", normalise(SAMPLES["stream"].to_dict()))
    frames = jc.serialize(sent)
    assert split(frames)[1] == b""
    message = ours.deserialize(frames)
    assert message.content == SAMPLES["stream"]
    assert message.problems == ()


@pytest.mark.parametrize("packer", PACKERS)
@pytest.mark.parametrize("scheme", SCHEMES)
def test_signature_schemes_agree_with_jupyter_client(scheme: str, packer: str) -> None:
    ours = Session(KEY, scheme)
    jc = jupyter_session(packer, signature_scheme=scheme)

    frames = ours.serialize(ours.message(SAMPLES["kernel_info_reply"]))
    _, signature, parts, _ = split(frames)
    assert signature == jc.sign(parts)
    _, received = jupyter_reads(jc, frames)
    assert received["content"] == normalise(SAMPLES["kernel_info_reply"].to_dict())

    sent = jc.msg("execute_result", normalise(SAMPLES["execute_result"].to_dict()))
    frames = jc.serialize(sent)
    _, signature, parts, _ = split(frames)
    assert signature == ours.signer.sign(parts)
    assert ours.deserialize(frames).content == SAMPLES["execute_result"]


@pytest.mark.parametrize("packer", PACKERS)
@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize(
    ("sender_key", "receiver_key"),
    [(OTHER_KEY, KEY), (KEY, OTHER_KEY), (b"", KEY)],
    ids=["other-key", "key-other", "unsigned"],
)
def test_we_refuse_what_jupyter_client_signed_with_another_key(
    sender_key: bytes, receiver_key: bytes, scheme: str, packer: str
) -> None:
    jc = jupyter_session(packer, key=sender_key, signature_scheme=scheme)
    frames = jc.serialize(
        jc.msg("execute_request", normalise(SAMPLES["execute_request"].to_dict()))
    )
    with pytest.raises(errors.SignatureError) as excinfo:
        Session(receiver_key, scheme).deserialize(frames)
    assert type(excinfo.value) is errors.SignatureError


@pytest.mark.parametrize("packer", PACKERS)
@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize(
    ("sender_key", "receiver_key", "complaint"),
    [(OTHER_KEY, KEY, "Invalid Signature"), (b"", KEY, "Unsigned Message")],
    ids=["other-key", "unsigned"],
)
def test_jupyter_client_refuses_what_we_signed_with_another_key(
    sender_key: bytes, receiver_key: bytes, complaint: str, scheme: str, packer: str
) -> None:
    ours = Session(sender_key, scheme)
    frames = ours.serialize(ours.message(SAMPLES["execute_reply"]))
    jc = jupyter_session(packer, key=receiver_key, signature_scheme=scheme)
    with pytest.raises(ValueError, match=complaint):
        jupyter_reads(jc, frames)


# ---------------------------------------------------------------------------------------------
# Forwarding and replies keep what we do not model, byte for byte
# ---------------------------------------------------------------------------------------------

ENGINE_INFO = {"engine_uuid": "5f1c-héllo", "engine_id": -1, "method": "execute"}
EXTRA_HEADER = {"subshell_id": "subshell-1", "x_custom": {"tags": [TEXT], "n": 1, "f": 0.1}}


@pytest.mark.parametrize("packer", PACKERS)
@pytest.mark.parametrize(
    ("forward_key", "forward_scheme"),
    [(KEY, "hmac-sha256"), (OTHER_KEY, "hmac-sha256"), (OTHER_KEY, "hmac-sha512"), (b"", "")],
    ids=["same-key", "other-key", "other-scheme", "unsigned"],
)
def test_forwarding_a_jupyter_client_message_is_lossless(
    forward_key: bytes, forward_scheme: str, packer: str
) -> None:
    jc = jupyter_session(packer)
    request = jupyter_request(jc, "execute_request", **EXTRA_HEADER)
    content = {**normalise(sample("execute_reply").to_dict()), "engine_info": ENGINE_INFO}
    metadata = {"started": datetime.now(timezone.utc), "dependencies_met": True, "x": TEXT}
    header = {**jc.msg_header("execute_reply"), **EXTRA_HEADER}
    sent = jc.msg("execute_reply", content, parent=request, header=header, metadata=metadata)
    original = [*jc.serialize(sent, ident=[ROUTING_ID]), *BUFFERS]

    message = Session(KEY).deserialize(original)
    assert message.problems == ()
    assert message.content == sample("execute_reply")
    assert message.raw_content["engine_info"] == ENGINE_INFO
    assert message.header.subshell_id == "subshell-1"

    scheme = forward_scheme or "hmac-sha256"
    forwarded = Session(forward_key, scheme).serialize(message, identities=[b"next-hop"])
    ids, signature, parts, buffers = split(forwarded)
    _, original_signature, original_parts, original_buffers = split(original)
    assert ids == [b"next-hop"]
    assert parts == original_parts
    assert buffers == original_buffers
    if forward_key == KEY:
        assert signature == original_signature
    elif not forward_key:
        assert signature == b""

    _, expected = jupyter_reads(jupyter_session(packer), original)
    _, received = jupyter_reads(jupyter_session(packer, forward_key, scheme), forwarded)
    for part in ("header", "parent_header", "metadata", "content"):
        assert received[part] == expected[part], part
    assert received["header"] == sent["header"]
    assert received["parent_header"] == request["header"]
    assert received["content"]["engine_info"] == ENGINE_INFO


@pytest.mark.parametrize("packer", PACKERS)
@pytest.mark.parametrize(("request_type", "reply_type"), REQUEST_REPLY_PAIRS)
def test_reply_to_jupyter_client_carries_its_header_as_parent(
    request_type: str, reply_type: str, packer: str
) -> None:
    jc = jupyter_session(packer)
    request = jupyter_request(jc, request_type, **EXTRA_HEADER)
    request_frames = jc.serialize(request, ident=[ROUTING_ID])

    ours = Session(KEY)
    received_request = ours.deserialize(request_frames)
    reply = received_request.reply(sample(reply_type))
    reply_frames = ours.serialize(reply)

    assert reply_frames[:2] == [ROUTING_ID, DELIMITER]
    assert split(reply_frames)[2][1] == split(request_frames)[2][0]
    _, received = jupyter_reads(jupyter_session(packer), reply_frames)
    assert received["parent_header"] == request["header"]
    assert received["parent_header"]["x_custom"] == EXTRA_HEADER["x_custom"]
    assert received["header"]["msg_type"] == reply_type
    assert received["header"]["subshell_id"] == "subshell-1"  # the reply stays in the subshell
    assert received["content"] == normalise(sample(reply_type).to_dict())


# ---------------------------------------------------------------------------------------------
# Dates
# ---------------------------------------------------------------------------------------------

JUPYTER_DATES = [
    pytest.param(None, id="jupyter-client-now"),
    pytest.param(datetime(2026, 11, 23, 21, 29, 8, 272851, tzinfo=timezone.utc), id="utc"),
    pytest.param(datetime(2026, 11, 23, 21, 29, 8, tzinfo=timezone.utc), id="utc-whole-second"),
    pytest.param(datetime(2026, 11, 23, 21, 29, 8, 1000, tzinfo=timezone.utc), id="utc-ms"),
    pytest.param(
        datetime(2026, 11, 23, 21, 29, 8, 5, tzinfo=timezone(timedelta(hours=5, minutes=30))),
        id="plus-0530",
    ),
    pytest.param(
        datetime(2026, 1, 1, 0, 0, 0, 999999, tzinfo=timezone(timedelta(hours=-7))), id="minus-07"
    ),
]


@pytest.mark.parametrize("packer", PACKERS)
@pytest.mark.parametrize("date", JUPYTER_DATES)
def test_jupyter_client_header_dates_round_trip(date: datetime | None, packer: str) -> None:
    jc = jupyter_session(packer)
    header = jc.msg_header("status")
    if date is not None:
        header["date"] = date
    expected = header["date"]
    sent = jc.msg("status", normalise(SAMPLES["status"].to_dict()), header=header)

    message = Session(KEY).deserialize(jc.serialize(sent))
    assert message.problems == ()
    assert message.header.date == expected
    assert message.header.date is not None
    assert message.header.date.utcoffset() == expected.utcoffset()

    # Forwarded (raw bytes) and re-encoded from the typed header, jupyter_client reads the same.
    forwarded = Session(KEY).serialize(message)
    assert jupyter_reads(jupyter_session(packer), forwarded)[1]["header"]["date"] == expected
    reencoded = Session(KEY).serialize(message.replace(header=message.header))
    assert jupyter_reads(jupyter_session(packer), reencoded)[1]["header"]["date"] == expected


@pytest.mark.parametrize("packer", PACKERS)
@pytest.mark.parametrize(
    "tz",
    [timezone.utc, timezone(timedelta(0)), tzutc(), zoneinfo.ZoneInfo("UTC")],
    ids=["timezone.utc", "offset-0", "dateutil-tzutc", "zoneinfo-utc"],
)
@pytest.mark.parametrize("microsecond", [0, 1, 1000, 120000, 999999])
def test_our_dates_have_six_fraction_digits_or_none_and_end_in_z(
    microsecond: int, tz: Any, packer: str
) -> None:
    date = datetime(2026, 11, 23, 21, 29, 8, microsecond, tzinfo=tz)
    header = Header(
        msg_id="m1", session="s1", username="u", date=date, msg_type="status", version="5.4"
    )
    message = Message(header=header, content=SAMPLES["status"])
    frames = Session(KEY).serialize(message)
    written = json.loads(split(frames)[2][0])["date"]
    assert DATE_PATTERN.fullmatch(written), written
    assert jupyter_reads(jupyter_session(packer), frames)[1]["header"]["date"] == date


@pytest.mark.parametrize("packer", PACKERS)
def test_new_message_dates_have_six_fraction_digits_or_none_and_end_in_z(packer: str) -> None:
    ours = Session(KEY)
    jc = jupyter_session(packer)
    for _ in range(200):
        message = ours.message(SAMPLES["status"])
        frames = ours.serialize(message)
        written = json.loads(split(frames)[2][0])["date"]
        assert DATE_PATTERN.fullmatch(written), written
        assert jupyter_reads(jc, frames)[1]["header"]["date"] == message.header.date
