"""The content base class, the msg_type registry, and lenient decoding of received content
(the session codec in protocol/ decodes with these)."""

from __future__ import annotations

import types
import typing
from typing import Any, ClassVar, Union

import msgspec

from ..errors import LocalProtocolError, MessageDecodeError

__all__ = [
    "Content",
    "Reply",
    "UnknownContent",
    "content_class",
    "decode_content",
    "decode_object",
    "encode_json",
    "salvage",
]

_REGISTRY: dict[str, type[Content]] = {}


class Content(msgspec.Struct, kw_only=True, frozen=True):
    """Base of every typed message content; subclasses name their ``msg_type`` and channel."""

    msg_type: ClassVar[str] = ""
    channel: ClassVar[str] = "shell"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        msg_type = cls.__dict__.get("msg_type")
        if msg_type:
            if msg_type in _REGISTRY:
                raise TypeError(f"msg_type {msg_type!r} is already bound to {_REGISTRY[msg_type]}")
            _REGISTRY[msg_type] = cls

    def to_dict(self) -> dict[str, Any]:
        """The content as the JSON object that goes on the wire."""
        result: dict[str, Any] = msgspec.to_builtins(self)
        return result


class Reply(Content, kw_only=True, frozen=True):
    """Fields every reply carries: a status, and the exception when the status is ``"error"``.

    ``status`` is ``"ok"``, ``"error"`` or ``"aborted"`` (messaging spec, "Request-Reply").
    The three error fields are only on the wire for error replies.
    """

    status: str = "ok"
    ename: str | msgspec.UnsetType = msgspec.UNSET
    evalue: str | msgspec.UnsetType = msgspec.UNSET
    traceback: list[str] | msgspec.UnsetType = msgspec.UNSET


class UnknownContent(Content, kw_only=True, frozen=True):
    """Content of a msg_type runtimelib has no class for: every key is kept in ``data``."""

    data: dict[str, Any] = {}

    def to_dict(self) -> dict[str, Any]:
        """The content as received."""
        return self.data


def content_class(msg_type: str) -> type[Content] | None:
    """The content class registered for ``msg_type``, or None."""
    return _REGISTRY.get(msg_type)


def registered_types() -> dict[str, type[Content]]:
    """A copy of the msg_type -> content class table."""
    return dict(_REGISTRY)


def _enc_hook(obj: Any) -> Any:
    # Numbers from numpy and friends are common in user content; JSON knows only int and float.
    import numbers

    if isinstance(obj, numbers.Integral):
        return int(obj)
    if isinstance(obj, numbers.Real):
        return float(obj)
    raise TypeError(f"objects of type {type(obj).__name__} cannot be sent as JSON")


_ENCODER = msgspec.json.Encoder(enc_hook=_enc_hook)
_ANY_DECODER = msgspec.json.Decoder()
_DECODERS: dict[type[Content], msgspec.json.Decoder[Any]] = {}


def encode_json(obj: Any) -> bytes:
    """Encode one JSON part of a message; what JSON cannot express is a LocalProtocolError."""
    try:
        if type(obj) is UnknownContent:
            return _ENCODER.encode(obj.data)
        return _ENCODER.encode(obj)
    except (TypeError, ValueError, OverflowError, msgspec.EncodeError) as exc:
        raise LocalProtocolError(f"cannot encode message part: {exc}") from exc


def decode_any(raw: bytes | memoryview, what: str) -> Any:
    """Decode one JSON part without a schema, translating failures to MessageDecodeError."""
    try:
        return _ANY_DECODER.decode(raw)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise MessageDecodeError(f"{what} is not valid UTF-8 JSON: {exc}") from exc


def decode_object(raw: bytes | memoryview, what: str) -> dict[str, Any]:
    """Decode a JSON part that must be an object."""
    value = decode_any(raw, what)
    if not isinstance(value, dict):
        raise MessageDecodeError(f"{what} must be a JSON object, not {type(value).__name__}")
    return value


def decode_content(msg_type: str, raw: bytes | memoryview) -> tuple[Content, tuple[str, ...]]:
    """Decode content for ``msg_type``: typed when it fits, salvaged field by field when not.

    Returns the content and the problems found. Only a part that is not a JSON object at all
    raises (MessageDecodeError): a wrong or missing field never loses the message.
    """
    cls = _REGISTRY.get(msg_type)
    if cls is None:
        return UnknownContent(data=decode_object(raw, "content")), ()
    decoder = _DECODERS.get(cls)
    if decoder is None:
        decoder = _DECODERS[cls] = msgspec.json.Decoder(cls)
    try:
        return decoder.decode(raw), ()
    except msgspec.ValidationError:
        pass
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise MessageDecodeError(f"content is not valid UTF-8 JSON: {exc}") from exc
    return salvage(cls, decode_object(raw, "content"), msg_type)


_S = typing.TypeVar("_S", bound=msgspec.Struct)


def salvage(cls: type[_S], obj: dict[str, Any], where: str) -> tuple[_S, tuple[str, ...]]:
    """Build ``cls`` from ``obj`` keeping every field that fits; report the ones that do not.

    A field of the wrong type or a missing required field gets its default, or the empty value
    of its type, and a line in the returned problems.
    """
    kwargs: dict[str, Any] = {}
    problems: list[str] = []
    for field in msgspec.structs.fields(cls):
        name = f"{where}.{field.encode_name}"
        if field.encode_name in obj:
            value = obj[field.encode_name]
            try:
                kwargs[field.name] = msgspec.convert(value, field.type)
                continue
            except msgspec.ValidationError as exc:
                nested = _struct_in(field.type)
                if nested is not None and isinstance(value, dict):
                    kwargs[field.name], inner = salvage(nested, value, name)
                    problems.extend(inner)
                    continue
                problems.append(f"{name}: {exc}")
        elif field.required:
            problems.append(f"{name}: missing")
        else:
            continue
        if field.required:
            kwargs[field.name] = _empty(field.type, name)
        # else: leave it out so the class default applies
    return cls(**kwargs), tuple(problems)


def _union_args(tp: Any) -> tuple[Any, ...]:
    if typing.get_origin(tp) in (Union, types.UnionType):
        return typing.get_args(tp)
    return (tp,)


def _struct_in(tp: Any) -> type[msgspec.Struct] | None:
    for arg in _union_args(tp):
        if isinstance(arg, type) and issubclass(arg, msgspec.Struct):
            return arg
    return None


def _empty(tp: Any, where: str) -> Any:
    """The value a required field gets when a peer left it out or sent garbage."""
    args = _union_args(tp)
    if type(None) in args:
        return None
    if msgspec.UnsetType in args:
        return msgspec.UNSET
    first = args[0]
    origin = typing.get_origin(first) or first
    if origin is typing.Literal:
        return typing.get_args(first)[0]
    if isinstance(origin, type):
        if issubclass(origin, msgspec.Struct):
            return salvage(origin, {}, where)[0]
        for kind in (bool, str, int, float, dict, list, tuple):
            if issubclass(origin, kind):
                return kind()
    return None
