"""The message envelope: header, parent header, metadata, content, buffers, routing."""

from __future__ import annotations

import uuid
from typing import Any, Generic, TypeVar

import msgspec

from .base import Content, decode_object
from .header import Header

__all__ = ["DEFAULT_SESSION", "Buffer", "Message", "RawParts"]

C = TypeVar("C", bound=Content)
D = TypeVar("D", bound=Content)

#: What may be sent as a binary buffer; received buffers are ``bytes`` or ``memoryview``.
Buffer = bytes | bytearray | memoryview

#: The session id of messages made without one (``Message.new`` with no parent or session).
DEFAULT_SESSION = uuid.uuid4().hex


class RawParts(msgspec.Struct, frozen=True):
    """JSON parts exactly as received (or, for ``parent_header``, as the parent was received).

    The codec writes these bytes instead of re-encoding, so forwarding is lossless and a reply's
    parent_header keeps keys runtimelib does not model (spec: the parent header is copied
    as received).
    """

    header: bytes | None = None
    parent_header: bytes | None = None
    metadata: bytes | None = None
    content: bytes | None = None


class Message(msgspec.Struct, Generic[C], kw_only=True, frozen=True):
    """One Jupyter message.

    ``content`` is typed (a ``Content`` subclass chosen by ``header.msg_type``).
    ``identities`` are the ZeroMQ routing frames before the delimiter (the topic on iopub).
    ``problems`` lists what was wrong with a received message that could still be read;
    ``raw`` keeps its JSON parts as they arrived.
    """

    header: Header
    content: C
    parent_header: Header | None = None
    metadata: dict[str, Any] = {}
    buffers: tuple[Buffer, ...] = ()
    identities: tuple[bytes, ...] = ()
    channel: str | None = None
    raw: RawParts | None = None
    problems: tuple[str, ...] = ()

    @classmethod
    def new(
        cls,
        content: D,
        parent: Message[Any] | None = None,
        *,
        session: str | None = None,
        username: str | None = None,
        metadata: dict[str, Any] | None = None,
        buffers: tuple[Buffer, ...] | list[Buffer] = (),
        channel: str | None = None,
        identities: tuple[bytes, ...] = (),
        subshell_id: str | None = None,
        msg_type: str | None = None,
    ) -> Message[D]:
        """A new message with a fresh header, a child of ``parent`` when given.

        The session is ``session``, else the parent's, else this process's default.
        A child of a message addressed to a subshell stays in that subshell. ``msg_type`` is
        only for UnknownContent, which has no type of its own.
        """
        if msg_type is None:
            msg_type = content.msg_type
        elif content.msg_type and msg_type != content.msg_type:
            raise ValueError(f"{type(content).__name__} is {content.msg_type!r}, not {msg_type!r}")
        if session is None:
            session = parent.header.session if parent is not None else DEFAULT_SESSION
        if subshell_id is None and parent is not None:
            subshell_id = parent.header.subshell_id
        header = Header.new(msg_type, session, username=username, subshell_id=subshell_id)
        raw = None
        if parent is not None and parent.raw is not None and parent.raw.header is not None:
            raw = RawParts(parent_header=parent.raw.header)
        return Message(
            header=header,
            content=content,
            parent_header=parent.header if parent is not None else None,
            metadata={} if metadata is None else metadata,
            buffers=tuple(buffers),
            identities=identities,
            channel=content.channel if channel is None else channel,
            raw=raw,
        )

    def reply(
        self,
        content: D,
        *,
        session: str | None = None,
        metadata: dict[str, Any] | None = None,
        buffers: tuple[Buffer, ...] | list[Buffer] = (),
    ) -> Message[D]:
        """The reply to this request: same routing identities and channel, this as parent."""
        return Message.new(
            content,
            self,
            session=session,
            metadata=metadata,
            buffers=buffers,
            channel=self.channel,
            identities=self.identities,
        )

    @property
    def msg_type(self) -> str:
        """``header.msg_type``."""
        return self.header.msg_type

    @property
    def msg_id(self) -> str:
        """``header.msg_id``."""
        return self.header.msg_id

    @property
    def parent_id(self) -> str | None:
        """The msg_id of the request this message answers or belongs to, if any."""
        return self.parent_header.msg_id if self.parent_header is not None else None

    @property
    def raw_content(self) -> dict[str, Any]:
        """The content as a plain JSON object: every key the sender wrote, modelled or not."""
        if self.raw is not None and self.raw.content is not None:
            return decode_object(self.raw.content, "content")
        return self.content.to_dict()

    def replace(self, **changes: Any) -> Message[Any]:
        """A copy with some fields changed; raw parts of changed fields are dropped."""
        raw = self.raw
        if raw is not None:
            kept = {
                part: getattr(raw, part) if part not in changes else None
                for part in ("header", "parent_header", "metadata", "content")
            }
            changes.setdefault("raw", RawParts(**kept))
        return msgspec.structs.replace(self, **changes)
