"""The session codec: ``Message`` to ZeroMQ frames and back, signed, without any I/O."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any, TypeVar

import msgspec

from ..errors import (
    FramingError,
    LocalProtocolError,
    MessageDecodeError,
    MessageTooLargeError,
)
from ..messages import Content, Header, Message, RawParts, UnknownContent
from ..messages.base import decode_content, decode_object, encode_json, salvage
from ..messages.envelope import Buffer
from .signing import DEFAULT_REPLAY_WINDOW, ReplayGuard, Signer

__all__ = ["DEFAULT_MAX_FRAME_SIZE", "DELIMITER", "Session", "json_parts", "parent_id_of"]

#: The frame separating routing identities from the message (spec, "The Wire Protocol").
DELIMITER = b"<IDS|MSG>"
#: Largest frame a Session accepts unless told otherwise: big enough for any sane plot.
DEFAULT_MAX_FRAME_SIZE = 256 * 1024 * 1024

_EMPTY_PARENT = (b"{}", b"null")
_HEADER_DECODER = msgspec.json.Decoder(Header)
_DICT_DECODER = msgspec.json.Decoder(dict[str, Any])

C = TypeVar("C", bound=Content)


class Session:
    """Serializes and deserializes Jupyter messages for one connection's key and scheme.

    ``serialize`` gives the frames to send; ``deserialize`` checks framing, size, signature
    and replay, then decodes. A received message that is valid JSON but has wrong or missing
    fields is still returned, with the trouble listed in ``Message.problems``; anything else
    malformed raises a ``RemoteProtocolError``.
    """

    def __init__(
        self,
        key: bytes = b"",
        signature_scheme: str = "hmac-sha256",
        *,
        session_id: str | None = None,
        username: str | None = None,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
        replay_window: int = DEFAULT_REPLAY_WINDOW,
    ) -> None:
        self.signer = Signer(key, signature_scheme)
        self.replay_guard = ReplayGuard(replay_window)
        self.session_id = session_id if session_id is not None else uuid.uuid4().hex
        self.username = username
        self.max_frame_size = max_frame_size

    @property
    def key(self) -> bytes:
        """The HMAC key; empty means signing is off."""
        return self.signer.key

    @property
    def signature_scheme(self) -> str:
        """The ``hmac-<hash>`` scheme."""
        return self.signer.scheme

    def message(
        self,
        content: C,
        parent: Message[Any] | None = None,
        **kwargs: Any,
    ) -> Message[C]:
        """A new message from this session (its session id and username)."""
        kwargs.setdefault("session", self.session_id)
        kwargs.setdefault("username", self.username)
        return Message.new(content, parent, **kwargs)

    def serialize(
        self, message: Message[Any], identities: Sequence[bytes] | None = None
    ) -> list[Buffer]:
        """The frames of ``message``: identities, delimiter, signature, four JSON parts, buffers.

        Parts the message was received with are reused byte for byte (only the signature is
        made anew), so forwarding a message never changes it. ``identities`` overrides the
        message's own routing identities.
        """
        header, parent, metadata, body = parts = json_parts(message)
        signature = self.signer.sign(parts)
        ids = message.identities if identities is None else identities
        return [*ids, DELIMITER, signature, header, parent, metadata, body, *message.buffers]

    def deserialize(
        self, frames: Sequence[Buffer], *, channel: str | None = None
    ) -> Message[Content]:
        """Decode received frames into a Message, checking signature and replay first.

        Raises FramingError, MessageTooLargeError, SignatureError (ReplayedMessageError) or
        MessageDecodeError, all RemoteProtocolErrors; never anything else for any frames.
        """
        split = _find_delimiter(frames)
        if len(frames) - split < 6:
            raise FramingError(
                "expected a signature and 4 JSON frames after the delimiter,"
                f" got {len(frames) - split - 1} frames"
            )
        largest = max(map(len, frames))
        signature = frames[split + 1]
        # bytes() of a bytes object is the object itself: no copy in the common case.
        header_b, parent_b, metadata_b, content_b = map(bytes, frames[split + 2 : split + 6])
        if self.signer.enabled:
            self.signer.verify(signature, (header_b, parent_b, metadata_b, content_b))
            # Recorded only now that it verified: forgeries cannot evict real signatures.
            self.replay_guard.check(bytes(signature))
        if largest > self.max_frame_size:
            # Signed, so the parent it names is real: the request it answers fails with this.
            raise MessageTooLargeError(
                f"a message of the kernel has a frame of {largest} bytes, more than the limit"
                f" of {self.max_frame_size} (max_frame_size)",
                parent_id=parent_id_of(parent_b),
            )

        try:
            return self._decode(frames, split, header_b, parent_b, metadata_b, content_b, channel)
        except RecursionError:
            raise MessageDecodeError("a message nests its JSON too deeply") from None

    def _decode(
        self,
        frames: Sequence[Buffer],
        split: int,
        header_b: bytes,
        parent_b: bytes,
        metadata_b: bytes,
        content_b: bytes,
        channel: str | None,
    ) -> Message[Content]:
        problems: list[str] = []
        header = _decode_header(header_b, "header", problems)
        parent = None if parent_b in _EMPTY_PARENT else _decode_parent(parent_b, problems)
        try:
            metadata = _DICT_DECODER.decode(metadata_b)
        except (msgspec.DecodeError, UnicodeDecodeError):
            if metadata_b.strip() == b"null":  # xeus-python's iopub_welcome: read as empty
                metadata = {}
            else:
                metadata = decode_object(metadata_b, "metadata")  # raises the precise error
        content, content_problems = decode_content(header.msg_type, content_b)
        problems.extend(content_problems)
        return Message(
            header=header,
            content=content,
            parent_header=parent,
            metadata=metadata,
            buffers=tuple(frames[split + 6 :]),
            identities=tuple(bytes(f) for f in frames[:split]),
            channel=channel,
            raw=RawParts(header_b, parent_b, metadata_b, content_b),
            problems=tuple(problems),
        )


_NO_RAW = RawParts()


def json_parts(message: Message[Any]) -> tuple[bytes, bytes, bytes, bytes]:
    """The four JSON parts of ``message``: header, parent header, metadata, content.

    Parts the message was received with are reused byte for byte, so forwarding a message
    never changes it.
    """
    content = message.content
    if type(content) is not UnknownContent and content.msg_type != message.header.msg_type:
        raise LocalProtocolError(
            f"header says {message.header.msg_type!r} but content is {type(content).__name__}"
        )
    raw = message.raw or _NO_RAW
    header = raw.header or encode_json(message.header)
    if raw.parent_header is not None:
        parent = raw.parent_header
    elif message.parent_header is None:
        parent = b"{}"
    else:
        parent = encode_json(message.parent_header)
    metadata = raw.metadata or encode_json(message.metadata)
    return header, parent, metadata, raw.content or encode_json(content)


def parent_id_of(raw: bytes) -> str | None:
    """The msg_id in a parent header, if it can be read (it is small even when the rest of
    the message is not)."""
    if len(raw) > 65536:
        return None
    try:
        value = _DICT_DECODER.decode(raw)
    except (msgspec.DecodeError, UnicodeDecodeError):
        return None
    msg_id = value.get("msg_id")
    return msg_id if isinstance(msg_id, str) and msg_id else None


def _find_delimiter(frames: Sequence[Buffer]) -> int:
    try:
        return frames.index(DELIMITER)  # == works for bytes, bytearray and memoryview frames
    except ValueError:
        raise FramingError("no <IDS|MSG> delimiter in the frames") from None


def _exact_header(raw: bytes, what: str) -> Header | None:
    """The header when it decodes exactly as one (the fast path), None when it is JSON of
    another shape, to be salvaged field by field."""
    try:
        return _HEADER_DECODER.decode(raw)
    except msgspec.ValidationError:
        return None
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise MessageDecodeError(f"{what} is not valid UTF-8 JSON: {exc}") from exc


def _decode_header(raw: bytes, what: str, problems: list[str]) -> Header:
    header = _exact_header(raw, what)
    if header is None:
        header, found = salvage(Header, decode_object(raw, what), what)
        problems.extend(found)
    return header


def _decode_parent(raw: bytes, problems: list[str]) -> Header | None:
    header = _exact_header(raw, "parent_header")
    if header is not None:
        return header
    value = decode_object_or_null(raw)
    if not value:  # {} with whitespace, or null: no parent
        return None
    header, found = salvage(Header, value, "parent_header")
    problems.extend(found)
    return header


def decode_object_or_null(raw: bytes) -> dict[str, Any] | None:
    """A JSON object, or None for ``null`` (xeus-python sends a null parent header)."""
    if raw.strip() == b"null":
        return None
    return decode_object(raw, "parent_header")
