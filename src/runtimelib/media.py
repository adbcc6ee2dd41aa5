"""Rich media: MIME bundles as carried by display_data, execute_result and notebook outputs."""

from __future__ import annotations

import base64
import binascii
import enum
import json
import warnings
from collections.abc import Collection, Iterator, Mapping, Sequence
from typing import Any

__all__ = ["DEFAULT_PRIORITY", "MediaType", "MimeBundle", "bundle_from_object"]


class MediaType(str, enum.Enum):
    """The MIME types Jupyter frontends commonly render; members equal their strings."""

    PLAIN_TEXT = "text/plain"
    HTML = "text/html"
    MARKDOWN = "text/markdown"
    LATEX = "text/latex"
    PNG = "image/png"
    JPEG = "image/jpeg"
    GIF = "image/gif"
    WEBP = "image/webp"
    SVG = "image/svg+xml"
    JSON = "application/json"
    JAVASCRIPT = "application/javascript"
    PDF = "application/pdf"
    PLOTLY = "application/vnd.plotly.v1+json"
    VEGA_V5 = "application/vnd.vega.v5+json"
    VEGALITE_V4 = "application/vnd.vegalite.v4+json"
    VEGALITE_V5 = "application/vnd.vegalite.v5+json"
    WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
    WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
    GEOJSON = "application/geo+json"
    DATA_RESOURCE = "application/vnd.dataresource+json"

    # Before 3.11 a str-mixin enum prints as "MediaType.HTML"; the MIME type is what users want.
    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, format_spec: str) -> str:
        return format(str(self.value), format_spec)


#: The order ``MimeBundle.richest`` tries by default: interactive and structured outputs first,
#: then markup, then images, with text/plain as the fallback every frontend can show.
DEFAULT_PRIORITY: tuple[str, ...] = tuple(
    t.value
    for t in (
        MediaType.WIDGET_VIEW,
        MediaType.PLOTLY,
        MediaType.VEGALITE_V5,
        MediaType.VEGALITE_V4,
        MediaType.VEGA_V5,
        MediaType.GEOJSON,
        MediaType.DATA_RESOURCE,
        MediaType.HTML,
        MediaType.MARKDOWN,
        MediaType.SVG,
        MediaType.PNG,
        MediaType.JPEG,
        MediaType.GIF,
        MediaType.WEBP,
        MediaType.LATEX,
        MediaType.JSON,
        MediaType.PLAIN_TEXT,
    )
)

# The display protocol's single-type methods, in the order they are tried.
_REPR_METHODS: tuple[tuple[str, str], ...] = (
    ("_repr_html_", MediaType.HTML.value),
    ("_repr_markdown_", MediaType.MARKDOWN.value),
    ("_repr_svg_", MediaType.SVG.value),
    ("_repr_png_", MediaType.PNG.value),
    ("_repr_jpeg_", MediaType.JPEG.value),
    ("_repr_latex_", MediaType.LATEX.value),
    ("_repr_json_", MediaType.JSON.value),
    ("_repr_javascript_", MediaType.JAVASCRIPT.value),
    ("_repr_pdf_", MediaType.PDF.value),
)

_BYTES_TYPES = (bytes, bytearray, memoryview)


def _is_json(mime: str) -> bool:
    """Whether values of this type are JSON objects rather than strings."""
    return mime == MediaType.JSON.value or mime.endswith("+json")


def _is_binary(mime: str) -> bool:
    """Whether values of this type are base64-encoded bytes on the wire."""
    major = mime.partition("/")[0]
    if major == "image":
        return mime != MediaType.SVG.value
    return major in ("audio", "video") or mime == MediaType.PDF.value


def _matches(pattern: str, mime: str) -> bool:
    """Whether a MIME type matches an exact type, ``major/*`` or ``*/*``."""
    if pattern in ("*", "*/*"):
        return True
    if pattern.endswith("/*"):
        return mime.startswith(pattern[:-1])
    return pattern == mime


def _check_patterns(name: str, patterns: Collection[str] | None) -> None:
    # A bare string is a Collection of characters: "text/html" would match "t", "e", ...
    if isinstance(patterns, str):
        raise TypeError(f"{name} must be a collection of MIME types, not a str")


def _normalise(mime: str, value: Any) -> Any:
    """Bring one value to the form a Jupyter message carries it in."""
    if isinstance(value, _BYTES_TYPES):
        if _is_binary(mime):
            return base64.b64encode(value).decode("ascii")
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValueError(f"{mime} data is bytes but not UTF-8 text") from exc
    # nbformat splits multi-line strings into a list of lines (each keeping its "\n"); only
    # JSON-typed values are real lists.
    if isinstance(value, list) and not _is_json(mime) and all(isinstance(s, str) for s in value):
        return "".join(value)
    return value


def _describe(value: Any) -> str:
    """A short summary of one payload for ``repr``: its type and size, never its content."""
    try:
        return f"{type(value).__name__}[{len(value)}]"
    except TypeError:
        return type(value).__name__


class MimeBundle(Mapping[str, Any]):
    """A read-only mapping of MIME type to data, with per-type metadata, as in display_data."""

    __slots__ = ("_data", "_metadata")

    def __init__(self, data: Mapping[str, Any], metadata: Mapping[str, Any] | None = None) -> None:
        """Copy ``data`` (MIME type -> value) and ``metadata``, joining list-of-lines strings."""
        self._data: dict[str, Any] = {}
        for mime, value in data.items():
            if not isinstance(mime, str):
                raise TypeError(f"MIME type keys must be str, not {type(mime).__name__}")
            key = str(mime)  # a MediaType member becomes its plain string
            self._data[key] = _normalise(key, value)
        self._metadata: dict[str, Any] = {str(k): v for k, v in (metadata or {}).items()}

    def __getitem__(self, mime: str) -> Any:
        return self._data[str(mime)]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, MimeBundle):
            return self._data == other._data and self._metadata == other._metadata
        if isinstance(other, Mapping):
            return self._data == dict(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # equal to a dict, so it cannot be hashable

    def __repr__(self) -> str:
        parts = ", ".join(f"{mime}: {_describe(v)}" for mime, v in self._data.items())
        meta = f", metadata for {sorted(self._metadata)}" if self._metadata else ""
        return f"<MimeBundle {{{parts}}}{meta}>"

    @property
    def data(self) -> dict[str, Any]:
        """A new plain dict of MIME type to value: the ``data`` of a display_data content."""
        return dict(self._data)

    @property
    def metadata(self) -> dict[str, Any]:
        """A new plain dict of metadata: the ``metadata`` of a display_data content."""
        return dict(self._metadata)

    def to_dict(self) -> dict[str, Any]:
        """The JSON-able ``data`` dict, the same as the ``data`` property."""
        return dict(self._data)

    @property
    def text(self) -> str | None:
        """The text/plain representation, or None when there is none."""
        return self.get_text(MediaType.PLAIN_TEXT)

    def get_text(self, mime: str) -> str | None:
        """The value of ``mime`` as a string, or None when absent; TypeError if it is not text."""
        value = self._data.get(str(mime))
        if value is None or isinstance(value, str):
            return value
        raise TypeError(f"{mime} data is a {type(value).__name__}, not text")

    def get_bytes(self, mime: str) -> bytes:
        """The value of ``mime`` as bytes: base64-decoded for binary types, else UTF-8 encoded."""
        mime = str(mime)
        value = self._data[mime]
        if _is_binary(mime):
            if not isinstance(value, str):
                raise TypeError(f"{mime} data is a {type(value).__name__}, not a base64 string")
            # Encoders wrap base64 at 76 columns; whitespace carries no data, so drop it all.
            compact = "".join(value.split())
            try:
                return base64.b64decode(compact, validate=True)
            except (binascii.Error, ValueError) as exc:
                raise ValueError(f"{mime} data is not valid base64: {exc}") from exc
        if isinstance(value, str):
            return value.encode("utf-8")
        if _is_json(mime):
            return json.dumps(value).encode("utf-8")
        raise TypeError(f"{mime} data is a {type(value).__name__}, not text")

    def richest(self, priority: Sequence[str] | None = None) -> str | None:
        """The first type in ``priority`` (``major/*`` allowed) present here, or None."""
        if priority is None:
            priority = DEFAULT_PRIORITY
        _check_patterns("priority", priority)
        for entry in priority:
            pattern = str(entry)  # a MediaType member becomes its plain string
            if "*" not in pattern:
                if pattern in self._data:
                    return pattern
                continue
            for mime in self._data:
                if _matches(pattern, mime):
                    return mime
        return None

    def _repr_mimebundle_(
        self, include: Collection[str] | None = None, exclude: Collection[str] | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        # Lets IPython (and from_object) display a bundle as itself; filtering is the caller's.
        return self.data, self.metadata

    @classmethod
    def from_object(
        cls,
        obj: object,
        *,
        include: Collection[str] | None = None,
        exclude: Collection[str] | None = None,
    ) -> MimeBundle:
        """Build a bundle from any object through the display protocol's ``_repr_*_`` methods."""
        data, metadata, failures = _build(obj, include, exclude)
        _warn_failures(obj, failures)
        return cls(data, metadata)


#: Build a bundle from any object's display methods: the function form of
#: ``MimeBundle.from_object``.
bundle_from_object = MimeBundle.from_object


_Failures = list[tuple[str, Exception]]


def _warn_failures(obj: object, failures: _Failures) -> None:
    # Called directly by the public functions so that stacklevel 3 points at their caller.
    for method, exc in failures:
        warnings.warn(
            f"{type(obj).__name__}.{method}() failed and was skipped: {type(exc).__name__}: {exc}",
            RuntimeWarning,
            stacklevel=3,
        )


def _build(
    obj: object, include: Collection[str] | None, exclude: Collection[str] | None
) -> tuple[dict[str, Any], dict[str, Any], _Failures]:
    """Gather data and metadata from an object's display methods, and the methods that failed."""
    _check_patterns("include", include)
    _check_patterns("exclude", exclude)

    def wanted(mime: str) -> bool:
        if include is not None and not any(_matches(p, mime) for p in include):
            return False
        return not (exclude is not None and any(_matches(p, mime) for p in exclude))

    data: dict[str, Any] = {}
    metadata: dict[str, Any] = {}
    failures: _Failures = []

    def call(method: str, **kwargs: Any) -> Any:
        # Look on the class, as IPython does: objects whose __getattr__ answers every name
        # (proxies, mocks) would otherwise claim every representation, and a class passed as an
        # object shows as itself, not through the methods it defines for its instances.
        if not callable(getattr(type(obj), method, None)):
            return None
        try:
            return getattr(obj, method)(**kwargs)
        except Exception as exc:
            failures.append((method, exc))
            return None

    def add(mime: str, value: Any, method: str) -> bool:
        try:
            data[mime] = _normalise(mime, value)
        except ValueError as exc:
            failures.append((method, exc))
            return False
        return True

    bundle_data, bundle_meta = _split(call("_repr_mimebundle_", include=include, exclude=exclude))
    if isinstance(bundle_data, Mapping):
        # The object may ignore include/exclude, so filter what it returned anyway.
        for mime, value in bundle_data.items():
            if isinstance(mime, str) and wanted(mime):
                add(mime, value, "_repr_mimebundle_")
    if isinstance(bundle_meta, Mapping):
        metadata.update(bundle_meta)

    for method, mime in _REPR_METHODS:
        # _repr_mimebundle_ wins; a filtered-out type is not worth computing.
        if mime in data or not wanted(mime):
            continue
        value, meta = _split(call(method))
        if value is not None and add(mime, value, method) and meta is not None:
            metadata[mime] = meta

    plain = MediaType.PLAIN_TEXT.value
    if plain not in data and wanted(plain):
        try:
            data[plain] = repr(obj)
        except Exception as exc:
            failures.append(("__repr__", exc))
            data[plain] = object.__repr__(obj)

    # Metadata keyed by a type we dropped would describe nothing; other keys stay.
    kept = {k: v for k, v in metadata.items() if k in data or "/" not in str(k)}
    return data, kept, failures


def _split(result: Any) -> tuple[Any, Any]:
    """Separate a ``(value, metadata)`` return from a bare value."""
    if isinstance(result, tuple) and len(result) == 2:
        return result[0], result[1]
    return result, None
