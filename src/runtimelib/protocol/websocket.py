"""The websocket codec: ``Message`` to a Jupyter Server websocket frame and back, without I/O.

A Jupyter Server carries every channel of a kernel over one websocket, in one of two formats:

- **v1** (subprotocol ``v1.kernel.websocket.jupyter.org``), one binary frame per message: a
  little-endian u64 count of offsets, the offsets (u64 each, from the frame's start), then the
  channel name, the four JSON parts (header, parent header, metadata, content) and the
  buffers, each part ending where the next offset says. No signature: the server signs.
- **legacy** (the server selected no subprotocol): a JSON text frame, the message as one object
  with a ``channel`` key; or, when the message has buffers, a binary frame: a big-endian u32
  count of parts, their u32 offsets, the JSON object, then the buffers.

Decoding checks every count and offset against the frame before it slices anything: offsets
outside the frame, running backwards, or a count the frame is too short to hold are a
FramingError (a RemoteProtocolError), never an IndexError or a large allocation. The four JSON
parts then go through the session codec's own checks (decode errors, size limit, typed content).
"""

from __future__ import annotations

import struct
from typing import Any

import msgspec

from ..errors import FramingError, MessageDecodeError, MessageTooLargeError
from ..messages import Content, Message
from .session import DELIMITER, Session, json_parts, parent_id_of

__all__ = ["CHANNELS", "MAX_PARTS", "V1_SUBPROTOCOL", "WebsocketCodec"]

#: The subprotocol a client offers for the v1 format; a server that selects none speaks legacy.
V1_SUBPROTOCOL = "v1.kernel.websocket.jupyter.org"
#: The channels a kernel websocket carries (the heartbeat is the websocket's own ping).
CHANNELS = frozenset({"shell", "control", "iopub", "stdin"})

#: Most parts one frame may have (the JSON parts and the buffers): more is refused rather than
#: sliced into that many views (a frame of empty parts would take many times its size).
MAX_PARTS = 4096

_U64 = struct.Struct("<Q")
_CHANNEL_NAMES = {name.encode(): name for name in CHANNELS}
_CHANNEL_BYTES = {name: raw for raw, name in _CHANNEL_NAMES.items()}
_TABLES: dict[tuple[str, int, str], struct.Struct] = {}


def _table(order: str, count: int, kind: str) -> struct.Struct:
    """The Struct of an offset table (kept: most frames have the same few counts)."""
    key = (order, count, kind)
    table = _TABLES.get(key)
    if table is None:
        table = struct.Struct(f"{order}{count}{kind}")
        if len(_TABLES) < 64:
            _TABLES[key] = table
    return table


_U32 = struct.Struct(">I")


_EMPTY = msgspec.Raw(b"{}")


class _LegacyObject(msgspec.Struct):
    """A legacy message object, its parts kept as the raw JSON they arrived as."""

    header: msgspec.Raw
    channel: str | None = None
    parent_header: msgspec.Raw = _EMPTY
    metadata: msgspec.Raw = _EMPTY
    content: msgspec.Raw = _EMPTY


_LEGACY_DECODER = msgspec.json.Decoder(_LegacyObject)


class WebsocketCodec:
    """Encodes and decodes the frames of one kernel websocket, in the format the server chose.

    ``subprotocol`` is the one the server selected (None or "" for legacy). ``session`` makes
    and reads the JSON parts; its key should be empty (the server signs, and checks nothing
    of ours).
    """

    def __init__(self, session: Session, subprotocol: str | None) -> None:
        self.session = session
        self.v1 = subprotocol == V1_SUBPROTOCOL

    # -- encoding ---------------------------------------------------------------------------

    def encode(self, message: Message[Any]) -> bytes | str:
        """The frame for ``message`` on its own channel: bytes for a binary frame, str for
        a text frame. The channel is the message's, never guessed from its type."""
        channel = message.channel
        if channel not in CHANNELS:
            raise ValueError(f"a kernel websocket has no channel {channel!r}")
        parts = json_parts(message)
        if self.v1:
            return encode_v1(channel, (*parts, *message.buffers))
        if message.buffers:
            return encode_legacy_binary(_legacy_json(channel, parts), message.buffers)
        return _legacy_json(channel, parts).decode()

    # -- decoding ---------------------------------------------------------------------------

    def decode(self, frame: bytes | bytearray | memoryview | str) -> Message[Content]:
        """The message in ``frame``, its ``channel`` set. Raises a RemoteProtocolError
        (FramingError, MessageDecodeError, MessageTooLargeError) for anything malformed.

        The whole frame is held to the session's ``max_frame_size``."""
        limit = self.session.max_frame_size
        try:
            if isinstance(frame, str):
                if len(frame) > limit:
                    raise _too_large(len(frame), limit, None)
                return self._decode_legacy(frame.encode(), ())
            size = len(frame) if isinstance(frame, bytes) else memoryview(frame).nbytes
            if self.v1:
                channel, parts = decode_v1(frame)
                if size > limit:
                    raise _too_large(size, limit, parent_id_of(parts[1]))
                return self.session.deserialize((DELIMITER, b"", *parts), channel=channel)
            if size > limit:
                raise _too_large(size, limit, None)
            json_part, buffers = decode_legacy_binary(frame)
            return self._decode_legacy(json_part, buffers)
        except RecursionError:
            raise MessageDecodeError("a websocket frame nests its JSON too deeply") from None
        except UnicodeEncodeError:
            raise MessageDecodeError("a websocket text frame is not valid Unicode") from None

    def _decode_legacy(self, raw: bytes, buffers: tuple[Any, ...]) -> Message[Content]:
        try:
            obj = _LEGACY_DECODER.decode(raw)
        except msgspec.ValidationError as exc:
            raise MessageDecodeError(f"a legacy websocket message is not one: {exc}") from exc
        except (msgspec.DecodeError, UnicodeDecodeError) as exc:
            raise MessageDecodeError(f"a websocket frame is not UTF-8 JSON: {exc}") from exc
        channel = _channel(obj.channel)
        parts = (
            bytes(obj.header),
            bytes(obj.parent_header),
            bytes(obj.metadata),
            bytes(obj.content),
        )
        return self.session.deserialize((DELIMITER, b"", *parts, *buffers), channel=channel)


def _too_large(size: int, limit: int, parent_id: str | None) -> MessageTooLargeError:
    return MessageTooLargeError(
        f"a websocket frame of {size} bytes is larger than the limit of {limit} (max_frame_size)",
        parent_id=parent_id,
    )


def encode_v1(channel: str, parts: tuple[Any, ...]) -> bytes:
    """A v1 frame: the offsets, the channel, then ``parts`` (JSON parts and buffers)."""
    name = _CHANNEL_BYTES[channel]
    count = len(parts) + 2
    offset = 8 + 8 * count + len(name)
    offsets = [count, offset - len(name), offset]
    for part in parts:
        offset += part.nbytes if isinstance(part, memoryview) else len(part)
        offsets.append(offset)
    return b"".join((_table("<", count + 1, "Q").pack(*offsets), name, *parts))


def decode_v1(frame: bytes | bytearray | memoryview) -> tuple[str, list[Any]]:
    """The channel and the parts (four JSON parts, then buffers) of a v1 frame.

    The JSON parts are copied out (they are small and decoded at once); the buffers are
    views of the frame, never copies."""
    size = len(frame) if isinstance(frame, bytes) else memoryview(frame).nbytes
    if size < 8:
        raise FramingError(f"a v1 websocket frame of {size} bytes has no offset count")
    (count,) = _U64.unpack_from(frame, 0)
    # The channel and the four JSON parts need six offsets; the frame must hold them all.
    if count < 6:
        raise FramingError(f"a v1 websocket frame with {count} offsets cannot hold a message")
    if count > MAX_PARTS + 2:
        raise FramingError(f"a v1 websocket frame claims {count} offsets (at most {MAX_PARTS + 2})")
    if count > (size - 8) // 8:
        raise FramingError(
            f"a v1 websocket frame of {size} bytes claims {count} offsets, more than it holds"
        )
    offsets = _table("<", count, "Q").unpack_from(frame, 8)
    _check_offsets(offsets, 8 + 8 * count, size, "v1")
    data = frame if isinstance(frame, bytes) else bytes(memoryview(frame)[: offsets[5]])
    name = data[offsets[0] : offsets[1]]
    channel = _CHANNEL_NAMES.get(name)
    if channel is None:
        channel = _channel(_text(memoryview(name)))  # raises the precise error
    o1, o2, o3, o4, o5 = offsets[1:6]
    parts: list[Any] = [data[o1:o2], data[o2:o3], data[o3:o4], data[o4:o5]]
    if count > 6:
        view = memoryview(frame)
        parts.extend(view[offsets[i] : offsets[i + 1]] for i in range(5, count - 1))
    return channel, parts


def encode_legacy_binary(json_part: bytes, buffers: tuple[Any, ...]) -> bytes:
    """A legacy binary frame: the message's JSON object, then its buffers."""
    count = len(buffers) + 1
    offset = 4 + 4 * count
    offsets = [offset]
    offset += len(json_part)
    for buffer in buffers:
        offsets.append(offset)
        offset += len(buffer) if not isinstance(buffer, memoryview) else buffer.nbytes
    head = struct.pack(f">{count + 1}I", count, *offsets)
    return b"".join((head, json_part, *buffers))


def decode_legacy_binary(frame: bytes | bytearray | memoryview) -> tuple[bytes, tuple[Any, ...]]:
    """The JSON object and the buffers of a legacy binary frame."""
    view = memoryview(frame)
    size = view.nbytes
    if size < 4:
        raise FramingError(f"a binary websocket frame of {size} bytes has no part count")
    (count,) = _U32.unpack_from(view, 0)
    if count < 1:
        raise FramingError("a binary websocket frame with no parts")
    if count > MAX_PARTS:
        raise FramingError(f"a binary websocket frame claims {count} parts (at most {MAX_PARTS})")
    if count > (size - 4) // 4:
        raise FramingError(
            f"a binary websocket frame of {size} bytes claims {count} parts, more than it holds"
        )
    offsets = (*_table(">", count, "I").unpack_from(view, 4), size)
    _check_offsets(offsets, 4 + 4 * count, size, "binary")
    buffers = tuple(view[offsets[i] : offsets[i + 1]] for i in range(1, count))
    return bytes(view[offsets[0] : offsets[1]]), buffers


def _check_offsets(offsets: tuple[int, ...], start: int, size: int, what: str) -> None:
    """Offsets must start after the table, never run backwards, and end inside the frame."""
    if offsets[0] < start:
        raise FramingError(f"a {what} websocket frame's first part starts inside its offsets")
    previous = offsets[0]
    for offset in offsets[1:]:
        if offset < previous:
            raise FramingError(f"a {what} websocket frame's offsets run backwards")
        previous = offset
    if previous > size:
        raise FramingError(
            f"a {what} websocket frame's offsets point past its end ({previous} > {size})"
        )


def _text(raw: memoryview) -> str:
    try:
        return str(raw, "utf-8")
    except UnicodeDecodeError as exc:
        raise MessageDecodeError("a websocket frame's channel is not UTF-8") from exc


def _channel(name: str | None) -> str:
    if name not in CHANNELS:
        raise FramingError(f"a websocket message on no known channel ({name!r:.40})")
    return name


def _legacy_json(channel: str, parts: tuple[bytes, bytes, bytes, bytes]) -> bytes:
    """The legacy JSON object, assembled from the message's own JSON parts (no re-encoding)."""
    header, parent, metadata, content = parts
    return b"".join(
        (
            b'{"header":',
            header,
            b',"parent_header":',
            parent,
            b',"metadata":',
            metadata,
            b',"content":',
            content,
            b',"channel":"',
            channel.encode(),
            b'"}',
        )
    )
