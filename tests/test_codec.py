"""The session codec: wire cases in both directions, bad input, replay, limits, and a property."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runtimelib import errors
from runtimelib.messages import (
    Content,
    DisplayData,
    Error,
    ExecuteReply,
    ExecuteRequest,
    Header,
    HistoryReply,
    IopubWelcome,
    KernelInfoReply,
    Message,
    Status,
    Stream,
    UnknownContent,
)
from runtimelib.protocol import DELIMITER, Session

KEY = b"a0436f6c-1916-498b-8eb9-e81ab9368e84"

HEADER = {
    "msg_id": "m1",
    "session": "s1",
    "username": "u",
    "date": "2026-11-23T21:29:08.272851Z",
    "msg_type": "",
    "version": "5.4",
}


def frames_for(
    msg_type: str,
    content: Any,
    *,
    key: bytes = KEY,
    parent: Any = None,
    header: dict[str, Any] | None = None,
    metadata: Any = None,
    raw: bool = False,
) -> list[bytes]:
    """Frames as a peer would send them, signed with ``key``; content may be pre-encoded."""
    head = {**HEADER, "msg_type": msg_type, **(header or {})}
    parts = [
        json.dumps(head).encode(),
        json.dumps({} if parent is None else parent).encode(),
        json.dumps({} if metadata is None else metadata).encode(),
        content if raw else json.dumps(content).encode(),
    ]
    signature = Session(key).signer.sign(parts)
    return [b"routing", DELIMITER, signature, *parts]


# One table drives both directions: the typed content, and the JSON object on the wire.
WIRE_CASES: list[tuple[Content, dict[str, Any]]] = [
    (
        ExecuteRequest(code="print('hé')"),
        {
            "code": "print('hé')",
            "silent": False,
            "store_history": True,
            "user_expressions": {},
            "allow_stdin": True,
            "stop_on_error": True,
        },
    ),
    (
        ExecuteReply(execution_count=3),
        {"status": "ok", "execution_count": 3, "payload": [], "user_expressions": {}},
    ),
    (
        ExecuteReply(status="error", execution_count=4, ename="E", evalue="v", traceback=["t"]),
        {
            "status": "error",
            "ename": "E",
            "evalue": "v",
            "traceback": ["t"],
            "execution_count": 4,
            "payload": [],
            "user_expressions": {},
        },
    ),
    (Stream(name="stderr", text="日本語 🐍\n"), {"name": "stderr", "text": "日本語 🐍\n"}),
    (Status(execution_state="idle"), {"execution_state": "idle"}),
    (
        DisplayData(data={"text/plain": "x"}, transient={"display_id": "d"}),
        {"data": {"text/plain": "x"}, "metadata": {}, "transient": {"display_id": "d"}},
    ),
    (
        HistoryReply(history=[(1, 2, "a"), (1, 3, ("b", "out")), (1, 4, ("c", None))]),
        {"status": "ok", "history": [[1, 2, "a"], [1, 3, ["b", "out"]], [1, 4, ["c", None]]]},
    ),
    (IopubWelcome(subscription=""), {"subscription": ""}),
    (
        UnknownContent(data={"anything": [1, {"goes": None}]}),
        {"anything": [1, {"goes": None}]},
    ),
]


def _msg_type(content: Content) -> str:
    return "x_custom_event" if isinstance(content, UnknownContent) else content.msg_type


@pytest.mark.parametrize(("content", "wire"), WIRE_CASES)
def test_serialize_writes_the_wire_form(content: Content, wire: dict[str, Any]) -> None:
    session = Session(KEY)
    message = Message.new(content)
    if isinstance(content, UnknownContent):
        message = message.replace(header=Header.new("x_custom_event", "s"))
    frames = session.serialize(message)
    assert frames[0] == DELIMITER
    assert json.loads(frames[5]) == wire
    assert json.loads(frames[2])["msg_type"] == _msg_type(content)
    assert frames[1] == session.signer.sign(frames[2:6])


@pytest.mark.parametrize(("content", "wire"), WIRE_CASES)
def test_deserialize_reads_the_wire_form(content: Content, wire: dict[str, Any]) -> None:
    message = Session(KEY).deserialize(frames_for(_msg_type(content), wire), channel="shell")
    assert message.content == content
    assert message.problems == ()
    assert message.identities == (b"routing",)
    assert message.channel == "shell"
    assert message.raw_content == wire


@pytest.mark.parametrize(("content", "wire"), WIRE_CASES)
def test_round_trip_through_our_own_codec(content: Content, wire: dict[str, Any]) -> None:
    sender, receiver = Session(KEY), Session(KEY)
    request = receiver.deserialize(frames_for("execute_request", {"code": "1"}))
    message = sender.message(content, request, buffers=[b"\x00\xff", memoryview(b"buf")])
    if isinstance(content, UnknownContent):
        message = message.replace(header=Header.new("x_custom_event", "s"))
    received = receiver.deserialize(sender.serialize(message))
    assert received.content == content
    assert received.header == message.header
    assert received.parent_header == request.header
    assert [bytes(b) for b in received.buffers] == [b"\x00\xff", b"buf"]


def test_header_date_has_six_fraction_digits_and_utc_z() -> None:
    frames = Session(KEY).serialize(Message.new(Status(execution_state="busy")))
    date = json.loads(frames[2])["date"]
    assert date.endswith("Z")
    fraction = date[:-1].partition(".")[2]
    assert len(fraction) in (0, 6)


# Quirks real kernels send: the message must survive, typed as far as possible.
def test_xeus_null_parent_header_reads_as_no_parent() -> None:
    frames = frames_for("iopub_welcome", {"subscription": ""})
    frames[4] = b"null"
    frames[2] = Session(KEY).signer.sign(frames[3:7])
    message = Session(KEY).deserialize(frames)
    assert message.parent_header is None
    assert message.content == IopubWelcome(subscription="")


def test_null_execution_count_is_kept_as_none() -> None:
    message = Session(KEY).deserialize(
        frames_for("execute_reply", {"status": "ok", "execution_count": None})
    )
    assert isinstance(message.content, ExecuteReply)
    assert message.content.execution_count is None
    assert message.problems == ()


@pytest.mark.parametrize("date", ["not a date", 17, None])
def test_malformed_or_missing_date_is_tolerated(date: Any) -> None:
    header = {"date": date}
    message = Session(KEY).deserialize(
        frames_for("status", {"execution_state": "idle"}, header=header)
    )
    assert message.header.date is None
    assert message.header.msg_id == "m1"
    assert message.content == Status(execution_state="idle")


def test_missing_date_key_is_not_a_problem() -> None:
    parts = frames_for("status", {"execution_state": "idle"})
    header = json.loads(parts[3])
    del header["date"]
    parts[3] = json.dumps(header).encode()
    parts[2] = Session(KEY).signer.sign(parts[3:7])
    message = Session(KEY).deserialize(parts)
    assert message.header.date is None
    assert message.problems == ()


def test_extra_header_and_content_keys_are_kept_raw() -> None:
    frames = frames_for(
        "execute_reply",
        {"status": "ok", "execution_count": 1, "engine_info": {"engine_id": 0}},
        header={"x_extra": "kept"},
    )
    message = Session(KEY).deserialize(frames)
    assert message.problems == ()
    assert message.raw_content["engine_info"] == {"engine_id": 0}
    assert message.raw is not None
    assert b'"x_extra"' in message.raw.header


@pytest.mark.parametrize(
    ("msg_type", "content", "problem"),
    [
        ("stream", {"name": "stdout"}, "stream.text: missing"),
        ("stream", {"name": "stdout", "text": 5}, "stream.text"),
        ("execute_request", {"code": ["not", "a", "string"]}, "execute_request.code"),
        ("execute_reply", {"status": "ok", "execution_count": "3"}, "execution_count"),
        ("kernel_info_reply", {"language_info": {"name": 3, "version": "1"}}, "language_info.name"),
        ("error", {"ename": "E", "evalue": "v", "traceback": "not a list"}, "error.traceback"),
    ],
)
def test_wrong_or_missing_fields_are_salvaged_with_problems(
    msg_type: str, content: dict[str, Any], problem: str
) -> None:
    message = Session(KEY).deserialize(frames_for(msg_type, content))
    assert type(message.content).msg_type == msg_type
    assert any(problem in p for p in message.problems), message.problems
    assert message.raw_content == content  # the original stays available


def test_salvage_keeps_the_good_fields() -> None:
    message = Session(KEY).deserialize(
        frames_for(
            "kernel_info_reply",
            {"implementation": "k", "language_info": {"name": 3, "version": "9"}},
        )
    )
    content = message.content
    assert isinstance(content, KernelInfoReply)
    assert content.implementation == "k"
    assert content.language_info.version == "9"
    assert content.language_info.name == ""


def test_error_fields_stay_off_the_wire_for_ok_replies() -> None:
    frames = Session(KEY).serialize(Message.new(ExecuteReply(execution_count=1)))
    assert set(json.loads(frames[5])) == {
        "status",
        "execution_count",
        "payload",
        "user_expressions",
    }


def test_iopub_error_output_round_trips() -> None:
    content = Error(ename="ZeroDivisionError", evalue="division by zero", traceback=["a", "b"])
    session = Session(KEY)
    assert session.deserialize(session.serialize(Message.new(content))).content == content


# Bad input: every case raises a specific RemoteProtocolError subclass.
def _resigned(frames: list[bytes], index: int, value: bytes) -> list[bytes]:
    frames = list(frames)
    frames[index] = value
    frames[2] = Session(KEY).signer.sign(frames[3:7])
    return frames


GOOD = frames_for("status", {"execution_state": "idle"})

BAD_INPUT: list[tuple[str, list[bytes], type[errors.RemoteProtocolError]]] = [
    ("empty", [], errors.FramingError),
    ("missing delimiter", [f for f in GOOD if f != DELIMITER], errors.FramingError),
    ("too few frames", GOOD[:5], errors.FramingError),
    ("only a delimiter", [DELIMITER], errors.FramingError),
    ("bad signature", [*GOOD[:2], b"0" * 64, *GOOD[3:]], errors.SignatureError),
    ("missing signature", [*GOOD[:2], b"", *GOOD[3:]], errors.SignatureError),
    ("tampered content", [*GOOD[:6], b'{"execution_state":"busy"}'], errors.SignatureError),
    (
        "non-UTF-8 content",
        _resigned(GOOD, 6, b'{"execution_state":"\xff"}'),
        errors.MessageDecodeError,
    ),
    ("non-UTF-8 header", _resigned(GOOD, 3, b'{"msg_id":"\xfe"}'), errors.MessageDecodeError),
    ("invalid JSON content", _resigned(GOOD, 6, b"{not json"), errors.MessageDecodeError),
    ("NaN in content", _resigned(GOOD, 6, b'{"execution_state":NaN}'), errors.MessageDecodeError),
    ("Infinity in metadata", _resigned(GOOD, 5, b'{"x":Infinity}'), errors.MessageDecodeError),
    ("huge number", _resigned(GOOD, 6, b'{"execution_state":1e999}'), errors.MessageDecodeError),
    ("header is a list", _resigned(GOOD, 3, b"[1, 2]"), errors.MessageDecodeError),
    ("header is a string", _resigned(GOOD, 3, b'"header"'), errors.MessageDecodeError),
    ("parent is a number", _resigned(GOOD, 4, b"5"), errors.MessageDecodeError),
    ("metadata is a list", _resigned(GOOD, 5, b"[]"), errors.MessageDecodeError),
    ("content is a list", _resigned(GOOD, 6, b"[]"), errors.MessageDecodeError),
    ("content is null", _resigned(GOOD, 6, b"null"), errors.MessageDecodeError),
    (
        "unknown type, content a string",
        _resigned(frames_for("x_new", {}), 6, b'"s"'),
        errors.MessageDecodeError,
    ),
    ("empty content frame", _resigned(GOOD, 6, b""), errors.MessageDecodeError),
]


@pytest.mark.parametrize(
    ("frames", "error"), [c[1:] for c in BAD_INPUT], ids=[c[0] for c in BAD_INPUT]
)
def test_bad_input_raises_a_typed_remote_error(
    frames: list[bytes], error: type[errors.RemoteProtocolError]
) -> None:
    session = Session(KEY)
    with pytest.raises(error):
        session.deserialize(frames)
    # The session keeps working after refusing a message.
    assert (
        session.deserialize(frames_for("status", {"execution_state": "busy"})).msg_type == "status"
    )


def test_oversize_frames_are_refused_with_a_configurable_limit() -> None:
    session = Session(KEY, max_frame_size=1024)
    frames = frames_for("stream", {"name": "stdout", "text": "x" * 2000})
    with pytest.raises(errors.MessageTooLargeError):
        session.deserialize(frames)
    with pytest.raises(errors.MessageTooLargeError):
        session.deserialize([*frames_for("status", {"execution_state": "idle"}), b"\0" * 1025])
    assert Session(KEY, max_frame_size=4096).deserialize(frames).content == Stream(text="x" * 2000)


def test_replayed_signature_is_refused() -> None:
    session = Session(KEY)
    frames = frames_for("status", {"execution_state": "idle"})
    session.deserialize(frames)
    with pytest.raises(errors.ReplayedMessageError):
        session.deserialize(frames)


def test_forged_messages_do_not_enter_the_replay_window() -> None:
    session = Session(KEY, replay_window=2)
    real = frames_for("status", {"execution_state": "idle"})
    session.deserialize(real)
    for n in range(5):  # forgeries: wrong signatures, refused, not recorded
        with pytest.raises(errors.SignatureError):
            session.deserialize([*real[:2], f"{n:064x}".encode(), *real[3:]])
    assert len(session.replay_guard) == 1
    with pytest.raises(errors.ReplayedMessageError):
        session.deserialize(real)


def test_replay_window_is_bounded() -> None:
    session = Session(KEY, replay_window=3)
    all_frames = [
        frames_for("status", {"execution_state": "idle"}, header={"msg_id": str(n)})
        for n in range(10)
    ]
    for frames in all_frames:
        session.deserialize(frames)
    assert len(session.replay_guard) == 3
    with pytest.raises(errors.ReplayedMessageError):
        session.deserialize(all_frames[-1])
    session.deserialize(all_frames[0])  # long forgotten: accepted again


def test_empty_key_turns_signing_off() -> None:
    session = Session(b"")
    frames = session.serialize(Message.new(Status(execution_state="idle")))
    assert frames[1] == b""
    frames[1] = b"anything"  # nothing is checked, and nothing is remembered
    assert session.deserialize(frames).content == Status(execution_state="idle")
    assert session.deserialize(frames).content == Status(execution_state="idle")


@pytest.mark.parametrize(
    "scheme",
    ["hmac-sha256", "hmac-sha512", "hmac-sha1", "hmac-md5", "hmac-sha3_256", "hmac-blake2b"],
)
def test_every_hashlib_scheme_signs_and_verifies(scheme: str) -> None:
    sender, receiver = Session(KEY, scheme), Session(KEY, scheme)
    frames = sender.serialize(Message.new(Status(execution_state="idle")))
    assert receiver.deserialize(frames).content == Status(execution_state="idle")
    with pytest.raises(errors.SignatureError):
        Session(KEY, "hmac-sha256" if scheme != "hmac-sha256" else "hmac-sha512").deserialize(
            frames
        )


@pytest.mark.parametrize(
    "scheme", ["hmac-nope", "sha256", "hmac-", "", "hmac-shake_128", "rsa-sha256"]
)
def test_unknown_scheme_is_a_typed_error(scheme: str) -> None:
    with pytest.raises(errors.SignatureSchemeError):
        Session(KEY, scheme)


def test_wrong_key_is_refused() -> None:
    frames = Session(b"other key").serialize(Message.new(Status(execution_state="idle")))
    with pytest.raises(errors.SignatureError):
        Session(KEY).deserialize(frames)


def test_identities_and_topics_are_split_off() -> None:
    session = Session(KEY)
    frames = session.serialize(Message.new(Status(execution_state="idle")), identities=[b"a", b"b"])
    message = Session(KEY).deserialize(frames)
    assert message.identities == (b"a", b"b")
    reply_frames = session.serialize(message.reply(ExecuteReply()))
    assert reply_frames[:3] == [b"a", b"b", DELIMITER]


def test_memoryview_frames_are_accepted_and_buffers_not_copied() -> None:
    payload = bytearray(b"\x01" * 4096)
    frames = [*Session(KEY).serialize(Message.new(Status(execution_state="idle"))), payload]
    message = Session(KEY).deserialize([memoryview(f) for f in frames])
    assert message.content == Status(execution_state="idle")
    buffer = message.buffers[0]
    assert isinstance(buffer, memoryview)
    payload[0] = 2  # the buffer is a view of the received frame, not a copy
    assert buffer[0] == 2


def test_forwarding_reuses_the_received_bytes() -> None:
    content = b'{"name": "stdout",   "text": "spaced"  , "x_more": 1}'
    frames = frames_for("stream", content, raw=True, header={"x_extra": [1, 2]})
    message = Session(KEY).deserialize(frames)
    forwarded = Session(b"another key").serialize(message)
    assert forwarded[3:7] == frames[3:7]
    assert Session(b"another key").deserialize(forwarded).content == Stream(text="spaced")


def test_reply_parent_header_is_the_request_header_as_received() -> None:
    frames = frames_for(
        "execute_request", {"code": "1"}, header={"subshell_id": "sub", "x_extra": True}
    )
    request = Session(KEY).deserialize(frames)
    reply = Session(KEY).serialize(request.reply(ExecuteReply(execution_count=1)))
    assert reply[4] == frames[3]  # reply: [routing id, delimiter, signature, header, parent, ...]
    assert json.loads(reply[3])["subshell_id"] == "sub"  # the reply stays in the subshell


def test_replace_drops_only_the_changed_raw_parts() -> None:
    message = Session(KEY).deserialize(
        frames_for("stream", {"name": "stdout", "text": "a", "extra": 1})
    )
    changed = message.replace(content=Stream(text="b"))
    frames = Session(KEY).serialize(changed, identities=[])
    assert json.loads(frames[5]) == {"name": "stdout", "text": "b"}
    assert message.raw is not None
    assert frames[2] == message.raw.header


def test_content_that_does_not_match_the_header_is_refused_locally() -> None:
    message = Message.new(Status(execution_state="idle")).replace(header=Header.new("stream", "s"))
    with pytest.raises(errors.LocalProtocolError):
        Session(KEY).serialize(message)


def test_unencodable_content_is_a_local_error() -> None:
    message = Message.new(DisplayData(data={"application/json": {"x": object()}}))
    with pytest.raises(errors.LocalProtocolError):
        Session(KEY).serialize(message)


def test_numeric_types_from_other_libraries_are_written_as_numbers() -> None:
    import fractions

    message = Message.new(DisplayData(data={"application/json": {"n": fractions.Fraction(1, 2)}}))
    frames = Session(KEY).serialize(message)
    assert json.loads(frames[5])["data"]["application/json"] == {"n": 0.5}


@settings(max_examples=400, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.binary(max_size=64),
            st.just(DELIMITER),
            st.just(b"{}"),
            st.just(b'{"execution_state": "idle"}'),
            st.just(json.dumps({**HEADER, "msg_type": "status"}).encode()),
            st.sampled_from([b"null", b"[]", b"NaN", b'"\xff"', b"1e999", b'{"a":']),
        ),
        max_size=10,
    ),
    st.booleans(),
)
def test_any_frames_decode_or_raise_the_remote_protocol_error(
    frames: list[bytes], signed: bool
) -> None:
    session = Session(KEY if signed else b"")
    try:
        message = session.deserialize(frames)
    except errors.RemoteProtocolError:
        return
    assert isinstance(message, Message)
    assert isinstance(message.content, Content)


JSON_PARTS = st.one_of(
    st.binary(max_size=32),
    st.sampled_from([b"{}", b"null", b"[]", b"NaN", b'"\xff"', b"1e999", b'{"a":', b"", b" {} "]),
    st.sampled_from(
        [json.dumps({**HEADER, "msg_type": t}).encode() for t in ("status", "stream", "x", "")]
    ),
    st.dictionaries(
        st.text(max_size=8), st.none() | st.integers() | st.text(max_size=8), max_size=4
    ).map(lambda d: json.dumps(d).encode()),
)


@settings(max_examples=400, deadline=None)
@given(st.lists(JSON_PARTS, min_size=4, max_size=4), st.lists(st.binary(max_size=8), max_size=2))
def test_any_signed_parts_decode_or_raise_the_remote_protocol_error(
    parts: list[bytes], buffers: list[bytes]
) -> None:
    session = Session(KEY)
    frames = [DELIMITER, session.signer.sign(parts), *parts, *buffers]
    try:
        message = session.deserialize(frames)
    except errors.RemoteProtocolError:
        return
    assert isinstance(message.content, Content)
    assert [bytes(b) for b in message.buffers] == buffers
