"""The websocket codec: both formats both ways, jupyter_server's own functions, hostile frames."""

from __future__ import annotations

import json
import struct
import tracemalloc
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jupyter_client.jsonutil import json_default
from jupyter_client.session import Session as JCSession
from jupyter_server.services.kernels.connection.base import (
    deserialize_binary_message,
    deserialize_msg_from_ws_v1,
    serialize_binary_message,
    serialize_msg_to_ws_v1,
)

from runtimelib import errors
from runtimelib.messages import (
    CommMsg,
    DisplayData,
    ExecuteRequest,
    Header,
    InputReply,
    KernelInfoRequest,
    Message,
    Stream,
    UnknownContent,
)
from runtimelib.protocol import Session
from runtimelib.protocol.websocket import CHANNELS, V1_SUBPROTOCOL, WebsocketCodec

FORMATS = ("v1", "legacy")
MEGABYTE = bytes(range(256)) * 4096

HEADER = {
    "msg_id": "m1",
    "session": "s1",
    "username": "u",
    "date": "2026-11-23T21:29:08.272851Z",
    "msg_type": "execute_request",
    "version": "5.4",
}
HEADER_JSON = json.dumps(HEADER).encode()
CONTENT_JSON = b'{"code": "1"}'
GOOD_PARTS = [HEADER_JSON, b"{}", b"{}", CONTENT_JSON]


def codec(fmt: str, **session: Any) -> WebsocketCodec:
    """A codec for ``fmt``, as a client gets one once the server chose a subprotocol."""
    return WebsocketCodec(Session(**session), V1_SUBPROTOCOL if fmt == "v1" else None)


# Frames are built here by hand from the two formats' descriptions, not with the codec's own
# helpers, so a mistake in those cannot cancel itself out.


def v1_frame(channel: bytes, parts: list[bytes]) -> bytes:
    """A v1 frame: u64 count, u64 offsets from the frame's start, channel, parts (LE)."""
    offsets = [8 * (len(parts) + 3)]
    for part in (channel, *parts):
        offsets.append(offsets[-1] + len(part))
    head = struct.pack(f"<Q{len(offsets)}Q", len(offsets), *offsets)
    return head + channel + b"".join(parts)


def v1_offsets(frame: bytes) -> list[int]:
    (count,) = struct.unpack_from("<Q", frame)
    return list(struct.unpack_from(f"<{count}Q", frame, 8))


def with_v1_offsets(frame: bytes, offsets: list[int]) -> bytes:
    return frame[:8] + struct.pack(f"<{len(offsets)}Q", *offsets) + frame[8 + 8 * len(offsets) :]


def binary_frame(obj: Any, buffers: list[bytes]) -> bytes:
    """A legacy binary frame: BE u32 count, u32 offsets, the JSON object, the buffers."""
    parts = [obj if isinstance(obj, bytes) else json.dumps(obj).encode(), *buffers]
    offsets = [4 * (len(parts) + 1)]
    for part in parts[:-1]:
        offsets.append(offsets[-1] + len(part))
    head = struct.pack(f">I{len(parts)}I", len(parts), *offsets)
    return head + b"".join(parts)


def legacy_object(**changes: Any) -> dict[str, Any]:
    """A message object as the server's legacy format has it; a key changed to ... is left out."""
    base = {
        "header": HEADER,
        "parent_header": {},
        "metadata": {},
        "content": {"code": "1"},
        "channel": "shell",
    }
    base.update(changes)
    return {key: value for key, value in base.items() if value is not ...}


# -- messages of several kinds, the channel always the message's own --------------------------

_REQUEST = Message.new(ExecuteRequest(code="x = 1"), session="s-request")

MESSAGES: dict[str, Callable[[], Message[Any]]] = {
    "execute_request with metadata": lambda: Message.new(
        ExecuteRequest(code="print('hé 🐍')", silent=True),
        metadata={"cellId": "c1", "deletedCells": [], "recordTiming": False},
    ),
    "kernel_info_request on control": lambda: Message.new(KernelInfoRequest(), channel="control"),
    "stream with a parent": lambda: Message.new(Stream(name="stdout", text="日本語\n"), _REQUEST),
    "display_data with buffers": lambda: Message.new(
        DisplayData(data={"text/plain": "<plot>"}, metadata={"w": 1}),
        _REQUEST,
        metadata={"m": [1, 2]},
        buffers=[b"", b"\x00\xff" * 100, memoryview(b"view"), bytearray(b"\x01")],
    ),
    "display_data with a 1 MB buffer": lambda: Message.new(
        DisplayData(data={"text/plain": "<big>"}), _REQUEST, buffers=[MEGABYTE]
    ),
    "input_reply on stdin": lambda: Message.new(InputReply(value="secret"), _REQUEST),
    "comm_msg on shell": lambda: Message.new(
        CommMsg(comm_id="c1", data={"method": "update"}), buffers=[b"state"]
    ),
    "comm_msg on iopub": lambda: Message.new(
        CommMsg(comm_id="c1", data={"method": "custom"}), _REQUEST, channel="iopub"
    ),
    "unknown msg_type": lambda: Message.new(
        UnknownContent(data={"anything": [1, None]}), msg_type="x_custom", channel="iopub"
    ),
}


def _buffers(message: Message[Any]) -> list[bytes]:
    return [bytes(buffer) for buffer in message.buffers]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("case", MESSAGES)
def test_round_trip(fmt: str, case: str) -> None:
    message = MESSAGES[case]()
    ws = codec(fmt)
    frame = ws.encode(message)
    binary = fmt == "v1" or bool(message.buffers)
    assert isinstance(frame, bytes if binary else str)
    received = ws.decode(frame)
    assert received.channel == message.channel
    assert received.header == message.header
    assert received.parent_header == message.parent_header
    assert received.metadata == message.metadata
    assert received.content == message.content
    assert _buffers(received) == _buffers(message)
    assert received.problems == ()


def test_the_channel_is_the_messages_own() -> None:
    assert MESSAGES["input_reply on stdin"]().channel == "stdin"
    for fmt in FORMATS:
        ws = codec(fmt)
        on_shell = ws.decode(ws.encode(MESSAGES["comm_msg on shell"]()))
        on_iopub = ws.decode(ws.encode(MESSAGES["comm_msg on iopub"]()))
        assert (on_shell.msg_type, on_shell.channel) == ("comm_msg", "shell")
        assert (on_iopub.msg_type, on_iopub.channel) == ("comm_msg", "iopub")


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("case", MESSAGES)
def test_a_received_message_is_forwarded_unchanged(fmt: str, case: str) -> None:
    ws = codec(fmt)
    frame = ws.encode(MESSAGES[case]())
    assert ws.encode(ws.decode(frame)) == frame


@pytest.mark.parametrize("make", [bytes, bytearray, memoryview])
def test_binary_frames_of_any_buffer_type_decode(make: Callable[[bytes], Any]) -> None:
    message = MESSAGES["display_data with buffers"]()
    for fmt in FORMATS:
        ws = codec(fmt)
        frame = ws.encode(message)
        assert isinstance(frame, bytes)
        assert _buffers(ws.decode(make(frame))) == _buffers(message)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("channel", [None, "hb", "Shell", "", "iopub "])
def test_encode_refuses_a_channel_the_websocket_does_not_carry(
    fmt: str, channel: str | None
) -> None:
    message = Message.new(ExecuteRequest(code="1")).replace(channel=channel)
    with pytest.raises(ValueError, match="channel"):
        codec(fmt).encode(message)


# -- jupyter_server's own functions, both ways -----------------------------------------------


def _check_their_reading(message: Message[Any], msg: dict[str, Any], buffers: list[Any]) -> None:
    """What jupyter_server read from our frame is ``message``."""
    assert msg["header"]["msg_id"] == message.msg_id
    assert msg["header"]["msg_type"] == message.msg_type
    assert msg["header"]["session"] == message.header.session
    if message.parent_header is None:
        assert msg["parent_header"] == {}
    else:
        assert msg["parent_header"]["msg_id"] == message.parent_id
    assert msg["metadata"] == message.metadata
    assert msg["content"] == message.content.to_dict()
    assert [bytes(b) for b in buffers] == _buffers(message)


@pytest.mark.parametrize("case", MESSAGES)
def test_jupyter_server_reads_our_v1_frames(case: str) -> None:
    message = MESSAGES[case]()
    channel, parts = deserialize_msg_from_ws_v1(codec("v1").encode(message))
    assert channel == message.channel
    header, parent, metadata, content = (json.loads(p) for p in parts[:4])
    msg = {"header": header, "parent_header": parent, "metadata": metadata, "content": content}
    _check_their_reading(message, msg, parts[4:])


@pytest.mark.parametrize("case", MESSAGES)
def test_jupyter_server_reads_our_legacy_frames(case: str) -> None:
    message = MESSAGES[case]()
    frame = codec("legacy").encode(message)
    # The server's handle_incoming_message, legacy branch.
    msg = deserialize_binary_message(frame) if isinstance(frame, bytes) else json.loads(frame)
    assert msg.pop("channel") == message.channel
    _check_their_reading(message, msg, msg.get("buffers", []))
    # It then sends the dict with its session, which must be able to make frames of it.
    jc = JCSession(key=b"k")
    again = jc.deserialize(jc.serialize(msg)[1:])
    assert again["header"]["msg_id"] == message.msg_id
    assert again["content"] == message.content.to_dict()


def _their_message(buffers: list[bytes] | None = None) -> tuple[JCSession, dict[str, Any]]:
    jc = JCSession()
    parent = jc.msg("execute_request", content={"code": "1"})
    msg = jc.msg(
        "display_data",
        content={"data": {"text/plain": "x"}, "metadata": {}, "transient": {"display_id": "d"}},
        parent=parent,
        metadata={"cellId": "c9"},
    )
    msg["buffers"] = buffers or []
    return jc, msg


def _check_our_reading(received: Message[Any], msg: dict[str, Any], channel: str) -> None:
    assert received.channel == channel
    assert received.problems == ()
    assert received.msg_id == msg["header"]["msg_id"]
    assert received.header.date == msg["header"]["date"]
    assert received.parent_id == msg["parent_header"]["msg_id"]
    assert received.metadata == {"cellId": "c9"}
    assert received.content == DisplayData(data={"text/plain": "x"}, transient={"display_id": "d"})
    assert _buffers(received) == [bytes(b) for b in msg["buffers"]]


def test_we_read_jupyter_servers_v1_frames_of_a_message_dict() -> None:
    # As its write_stderr does: the four dicts packed by its session.
    jc, msg = _their_message()
    frame = serialize_msg_to_ws_v1(msg, "iopub", jc.pack)
    _check_our_reading(codec("v1").decode(frame), msg, "iopub")


@pytest.mark.parametrize("buffers", [[], [b"", b"\x00" * 10, MEGABYTE]])
def test_we_read_jupyter_servers_v1_frames_of_kernel_frames(buffers: list[bytes]) -> None:
    # As its _on_zmq_reply does: the kernel's frames after the signature, passed through.
    jc, msg = _their_message(buffers)
    frame = serialize_msg_to_ws_v1([*jc.serialize(msg)[2:], *buffers], "iopub")
    _check_our_reading(codec("v1").decode(frame), msg, "iopub")


def _server_dict(buffers: list[bytes]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The dict the server's legacy path writes: the kernel's message as its session
    deserialized it (top-level msg_id, msg_type, buffers keys), plus the channel."""
    jc, sent = _their_message()
    msg = jc.deserialize([*jc.serialize(sent)[1:], *buffers])
    msg["channel"] = "iopub"
    return sent, msg


def test_we_read_jupyter_servers_legacy_text_frames() -> None:
    sent, msg = _server_dict([])
    text = json.dumps(msg, default=json_default)
    assert {"msg_id", "msg_type", "buffers"} <= json.loads(text).keys()
    _check_our_reading(codec("legacy").decode(text), sent, "iopub")
    # A v1 client that gets a text frame anyway reads it the same way.
    _check_our_reading(codec("v1").decode(text), sent, "iopub")


def test_we_read_jupyter_servers_legacy_binary_frames() -> None:
    sent, msg = _server_dict([b"", b"\x01\x02", MEGABYTE])
    received = codec("legacy").decode(serialize_binary_message(msg))
    _check_our_reading(received, {**sent, "buffers": msg["buffers"]}, "iopub")


# -- hostile frames --------------------------------------------------------------------------

_V1_GOOD = v1_frame(b"shell", GOOD_PARTS)
_V1_OFFSETS = v1_offsets(_V1_GOOD)
_BIN_GOOD = binary_frame(legacy_object(), [b"abc", b"de"])


def _backwards(offsets: list[int]) -> list[int]:
    changed = list(offsets)
    changed[2], changed[3] = changed[3], changed[2]
    return changed


V1_HOSTILE: dict[str, tuple[bytes, type[errors.RemoteProtocolError]]] = {
    "empty": (b"", errors.FramingError),
    "shorter than the count": (b"\x06\x00\x00\x00\x00\x00\x00", errors.FramingError),
    **{f"count {n}": (struct.pack("<Q", n) + _V1_GOOD[8:], errors.FramingError) for n in range(6)},
    **{
        f"count {n} in a tiny frame": (struct.pack("<QQ", n, 16), errors.FramingError)
        for n in (2**63, 2**64 - 1, 2**32 - 1, 7)
    },
    "one offset more than the frame holds": (
        struct.pack("<Q", len(_V1_OFFSETS) + 1) + _V1_GOOD[8 : 8 + 8 * len(_V1_OFFSETS)],
        errors.FramingError,
    ),
    "offsets past the end": (
        with_v1_offsets(_V1_GOOD, [*_V1_OFFSETS[:-1], len(_V1_GOOD) + 1]),
        errors.FramingError,
    ),
    "an offset of 2**64-1": (
        with_v1_offsets(_V1_GOOD, [*_V1_OFFSETS[:-1], 2**64 - 1]),
        errors.FramingError,
    ),
    "offsets running backwards": (
        with_v1_offsets(_V1_GOOD, _backwards(_V1_OFFSETS)),
        errors.FramingError,
    ),
    "first offset inside the table": (
        with_v1_offsets(_V1_GOOD, [8, *_V1_OFFSETS[1:]]),
        errors.FramingError,
    ),
    "first offset zero": (
        with_v1_offsets(_V1_GOOD, [0, *_V1_OFFSETS[1:]]),
        errors.FramingError,
    ),
    "unknown channel": (v1_frame(b"hb", GOOD_PARTS), errors.FramingError),
    "empty channel": (v1_frame(b"", GOOD_PARTS), errors.FramingError),
    "channel with a NUL": (v1_frame(b"shell\x00", GOOD_PARTS), errors.FramingError),
    "non-UTF-8 channel": (v1_frame(b"sh\xffell", GOOD_PARTS), errors.MessageDecodeError),
    "non-JSON header": (v1_frame(b"shell", [b"{", *GOOD_PARTS[1:]]), errors.MessageDecodeError),
    "non-UTF-8 header": (
        v1_frame(b"shell", [b'{"\xff": 1}', *GOOD_PARTS[1:]]),
        errors.MessageDecodeError,
    ),
    "empty header": (v1_frame(b"shell", [b"", *GOOD_PARTS[1:]]), errors.MessageDecodeError),
    "header a list": (v1_frame(b"shell", [b"[]", *GOOD_PARTS[1:]]), errors.MessageDecodeError),
    "header a string": (
        v1_frame(b"shell", [b'"h"', *GOOD_PARTS[1:]]),
        errors.MessageDecodeError,
    ),
    "non-JSON parent": (
        v1_frame(b"shell", [HEADER_JSON, b"{x", b"{}", CONTENT_JSON]),
        errors.MessageDecodeError,
    ),
    "parent a list": (
        v1_frame(b"shell", [HEADER_JSON, b"[1]", b"{}", CONTENT_JSON]),
        errors.MessageDecodeError,
    ),
    "metadata a list": (
        v1_frame(b"shell", [HEADER_JSON, b"{}", b"[]", CONTENT_JSON]),
        errors.MessageDecodeError,
    ),
    "non-JSON content": (
        v1_frame(b"shell", [HEADER_JSON, b"{}", b"{}", b"\x00"]),
        errors.MessageDecodeError,
    ),
    "content a list": (
        v1_frame(b"shell", [HEADER_JSON, b"{}", b"{}", b"[]"]),
        errors.MessageDecodeError,
    ),
    "content NaN": (
        v1_frame(b"shell", [HEADER_JSON, b"{}", b"{}", b"NaN"]),
        errors.MessageDecodeError,
    ),
}

BINARY_HOSTILE: dict[str, tuple[bytes, type[errors.RemoteProtocolError]]] = {
    "empty": (b"", errors.FramingError),
    "shorter than the count": (b"\x00\x00\x01", errors.FramingError),
    "count 0": (b"\x00\x00\x00\x00" + _BIN_GOOD[4:], errors.FramingError),
    **{
        f"count {n} in a tiny frame": (struct.pack(">II", n, 8), errors.FramingError)
        for n in (2**32 - 1, 2**31, 2**31 - 1, 2)
    },
    "offsets past the end": (binary_frame(b"{}", [b"ab"])[:-3], errors.FramingError),
    "offset of 2**32-1": (
        _BIN_GOOD[:8] + struct.pack(">I", 2**32 - 1) + _BIN_GOOD[12:],
        errors.FramingError,
    ),
    "offsets running backwards": (
        _BIN_GOOD[:8] + _BIN_GOOD[12:16] + _BIN_GOOD[8:12] + _BIN_GOOD[16:],
        errors.FramingError,
    ),
    "first offset inside the table": (
        _BIN_GOOD[:4] + struct.pack(">I", 4) + _BIN_GOOD[8:],
        errors.FramingError,
    ),
    "JSON part not JSON": (binary_frame(b"{nope", [b"x"]), errors.MessageDecodeError),
    "JSON part not UTF-8": (binary_frame(b'{"\xff":1}', [b"x"]), errors.MessageDecodeError),
    "JSON part a list": (binary_frame([legacy_object()], [b"x"]), errors.MessageDecodeError),
    "missing header": (binary_frame(legacy_object(header=...), [b"x"]), errors.MessageDecodeError),
    "missing channel": (binary_frame(legacy_object(channel=...), [b"x"]), errors.FramingError),
    "unknown channel": (binary_frame(legacy_object(channel="hb"), [b"x"]), errors.FramingError),
    "channel a number": (
        binary_frame(legacy_object(channel=5), [b"x"]),
        errors.MessageDecodeError,
    ),
}

TEXT_HOSTILE: dict[str, tuple[str, type[errors.RemoteProtocolError]]] = {
    "empty": ("", errors.MessageDecodeError),
    "not JSON": ("{", errors.MessageDecodeError),
    "NaN": ("NaN", errors.MessageDecodeError),
    **{
        f"a JSON {kind}": (text, errors.MessageDecodeError)
        for kind, text in (("null", "null"), ("list", "[]"), ("string", '"x"'), ("number", "1"))
    },
    "a list holding the message": (json.dumps([legacy_object()]), errors.MessageDecodeError),
    "missing header": (json.dumps(legacy_object(header=...)), errors.MessageDecodeError),
    "header a list": (json.dumps(legacy_object(header=[])), errors.MessageDecodeError),
    "header null": (json.dumps(legacy_object(header=None)), errors.MessageDecodeError),
    "content a list": (json.dumps(legacy_object(content=[1])), errors.MessageDecodeError),
    "metadata a string": (json.dumps(legacy_object(metadata="m")), errors.MessageDecodeError),
    "missing channel": (json.dumps(legacy_object(channel=...)), errors.FramingError),
    "channel null": (json.dumps(legacy_object(channel=None)), errors.FramingError),
    "unknown channel": (json.dumps(legacy_object(channel="hb")), errors.FramingError),
    "channel a list": (json.dumps(legacy_object(channel=["shell"])), errors.MessageDecodeError),
    "trailing garbage": (json.dumps(legacy_object()) + "}", errors.MessageDecodeError),
}


def _refused(ws: WebsocketCodec, frame: Any, error: type[Exception]) -> None:
    """``frame`` is refused with ``error``, and refusing it allocates next to nothing."""
    tracemalloc.start()
    try:
        with pytest.raises(error):
            ws.decode(frame)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * 1024 + 4 * len(frame)


def test_the_hostile_tables_start_from_frames_that_decode() -> None:
    # Each hostile frame changes one thing of a good one: the good ones must decode.
    assert codec("v1").decode(_V1_GOOD).content == ExecuteRequest(code="1")
    assert _buffers(codec("legacy").decode(_BIN_GOOD)) == [b"abc", b"de"]
    assert codec("legacy").decode(json.dumps(legacy_object())).msg_id == "m1"


@pytest.mark.parametrize("case", V1_HOSTILE)
def test_hostile_v1_frames_are_refused(case: str) -> None:
    frame, error = V1_HOSTILE[case]
    _refused(codec("v1"), frame, error)


@pytest.mark.parametrize("case", BINARY_HOSTILE)
def test_hostile_legacy_binary_frames_are_refused(case: str) -> None:
    frame, error = BINARY_HOSTILE[case]
    _refused(codec("legacy"), frame, error)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("case", TEXT_HOSTILE)
def test_hostile_text_frames_are_refused(fmt: str, case: str) -> None:
    frame, error = TEXT_HOSTILE[case]
    _refused(codec(fmt), frame, error)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("where", ["buffer", "content"])
def test_a_part_beyond_max_frame_size_is_refused(fmt: str, where: str) -> None:
    ws = codec(fmt, max_frame_size=4096)
    if where == "buffer":
        message = Message.new(ExecuteRequest(code="1"), buffers=[b"x" * 5000])
    else:
        message = Message.new(ExecuteRequest(code="x" * 5000), _REQUEST)
    with pytest.raises(errors.MessageTooLargeError) as caught:
        ws.decode(ws.encode(message))
    if fmt == "v1" and where == "content":
        # The parent part is read from a v1 frame even when the frame is refused.
        assert caught.value.parent_id == _REQUEST.msg_id
    # Under the limit, the same codec reads it.
    assert codec(fmt, max_frame_size=8192).decode(ws.encode(message)).msg_id == message.msg_id


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_frame_beyond_max_frame_size_is_refused(fmt: str) -> None:
    ws = codec(fmt, max_frame_size=4096)
    message = Message.new(ExecuteRequest(code="1"), buffers=[b"x" * 3000] * 3)
    frame = ws.encode(message)
    assert len(frame) > 4096
    try:
        ws.decode(frame)
    except errors.MessageTooLargeError:
        return
    raise AssertionError("a 9 KB frame passed a 4 KB max_frame_size")


def test_a_frame_of_empty_buffers_does_not_allocate_many_times_its_size() -> None:
    frame = v1_frame(b"shell", [*GOOD_PARTS, *[b""] * 32_000])
    tracemalloc.start()
    try:
        result = codec("v1").decode(frame)
        _, peak = tracemalloc.get_traced_memory()
    except errors.RemoteProtocolError:
        return
    finally:
        tracemalloc.stop()
    assert len(result.buffers) == 32_000
    assert peak < 4 * len(frame), f"a {len(frame)} byte frame took {peak} bytes to decode"


@pytest.mark.parametrize("fmt", FORMATS)
def test_deeply_nested_json_is_refused(fmt: str) -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    if fmt == "v1":
        frame: bytes | str = v1_frame(b"shell", [HEADER_JSON, b"{}", b"{}", b'{"c":' + deep + b"}"])
    else:
        frame = '{"header":' + deep.decode() + ',"channel":"shell"}'
    with pytest.raises(errors.RemoteProtocolError):
        codec(fmt).decode(frame)


def test_a_text_frame_with_a_lone_surrogate_is_refused() -> None:
    with pytest.raises(errors.RemoteProtocolError):
        codec("legacy").decode('{"header": "\ud800", "channel": "shell"}')


# -- any frame decodes or is refused, nothing else -------------------------------------------


def decodes_or_is_refused(ws: WebsocketCodec, frame: Any) -> None:
    try:
        message = ws.decode(frame)
    except errors.RemoteProtocolError:
        return
    assert isinstance(message, Message)
    assert isinstance(message.header, Header)
    assert message.channel in CHANNELS


_VALID_FRAMES = {
    "v1": bytes(codec("v1").encode(MESSAGES["display_data with buffers"]())),
    "legacy": bytes(codec("legacy").encode(MESSAGES["display_data with buffers"]())),
}
_VALID_TEXT = codec("legacy").encode(MESSAGES["execute_request with metadata"]())
_WORD = {"v1": (8, "<Q", 2**64 - 1), "legacy": (4, ">I", 2**32 - 1)}


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(FORMATS), st.binary(max_size=200))
def test_any_bytes_decode_or_are_refused(fmt: str, frame: bytes) -> None:
    decodes_or_is_refused(codec(fmt), frame)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(FORMATS), st.text(max_size=200))
def test_any_text_decodes_or_is_refused(fmt: str, frame: str) -> None:
    decodes_or_is_refused(codec(fmt), frame)


@st.composite
def mutated_frames(draw: st.DrawFn) -> tuple[str, bytes]:
    """A valid frame with some of its table words replaced, bytes flipped, cut or grown."""
    fmt = draw(st.sampled_from(FORMATS))
    frame = bytearray(_VALID_FRAMES[fmt])
    size, code, top = _WORD[fmt]
    (count,) = struct.unpack_from(code, frame)
    for _ in range(draw(st.integers(0, 3))):
        word = draw(st.integers(0, count))
        value = draw(st.one_of(st.integers(0, top), st.integers(0, len(frame) + 8)))
        struct.pack_into(code, frame, word * size, value)
    for _ in range(draw(st.integers(0, 4))):
        frame[draw(st.integers(0, len(frame) - 1))] = draw(st.integers(0, 255))
    cut = draw(st.integers(0, len(frame)))
    if draw(st.booleans()):
        frame = frame[:cut] + draw(st.binary(max_size=16)) + frame[cut:]
    elif draw(st.booleans()):
        del frame[cut:]
    return fmt, bytes(frame)


@settings(max_examples=500, deadline=None)
@given(mutated_frames())
def test_mutated_frames_decode_or_are_refused(case: tuple[str, bytes]) -> None:
    fmt, frame = case
    decodes_or_is_refused(codec(fmt), frame)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_mutated_text_frames_decode_or_are_refused(data: st.DataObject) -> None:
    assert isinstance(_VALID_TEXT, str)
    chars = list(_VALID_TEXT)
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(chars) - 1))
        chars[at] = data.draw(st.sampled_from('{}[]",:0 \\nxé'))
    decodes_or_is_refused(codec("legacy"), "".join(chars))
