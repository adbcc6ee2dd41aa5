"""MIME bundles: priority, nbformat's list-of-lines form, base64 data, and the display protocol."""

from __future__ import annotations

import base64
import re
import warnings
from typing import Any

import pytest

from runtimelib.media import DEFAULT_PRIORITY, MediaType, MimeBundle, bundle_from_object

# A PNG signature followed by an IHDR chunk's start: real PNG bytes, including non-UTF-8 ones.
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06"
PNG_B64 = base64.b64encode(PNG).decode("ascii")


# MediaType


def test_media_type_members_are_their_strings() -> None:
    assert MediaType.HTML == "text/html"
    assert str(MediaType.SVG) == "image/svg+xml"
    assert f"{MediaType.PNG}" == "image/png"
    assert MediaType("application/vnd.plotly.v1+json") is MediaType.PLOTLY
    assert {"text/html": 1}[MediaType.HTML] == 1


def test_media_type_keys_become_plain_strings() -> None:
    bundle = MimeBundle({MediaType.HTML: "<b>x</b>"}, metadata={MediaType.HTML: {"isolated": True}})
    assert [type(k) for k in bundle] == [str]
    assert [type(k) for k in bundle.metadata] == [str]
    assert bundle[MediaType.HTML] == bundle["text/html"] == "<b>x</b>"
    assert MediaType.HTML in bundle


def test_non_str_key_rejected() -> None:
    with pytest.raises(TypeError, match="must be str"):
        MimeBundle({1: "x"})  # type: ignore[dict-item]


# Choosing what to show


@pytest.mark.parametrize(
    ("types", "expected"),
    [
        (["text/plain", "text/html"], "text/html"),
        (["text/plain", "image/png", "text/html"], "text/html"),
        (["text/plain", "image/png", "image/svg+xml"], "image/svg+xml"),
        (["text/plain", "image/jpeg", "image/png"], "image/png"),
        (["text/plain", "application/json"], "application/json"),
        (["text/plain", "text/latex"], "text/latex"),
        (["text/html", MediaType.WIDGET_VIEW.value], MediaType.WIDGET_VIEW.value),
        (
            ["text/html", MediaType.VEGALITE_V4.value, MediaType.VEGALITE_V5.value],
            MediaType.VEGALITE_V5.value,
        ),
        (["text/plain"], "text/plain"),
        (["application/x-custom"], None),
        ([], None),
    ],
)
def test_richest_default_priority(types: list[str], expected: str | None) -> None:
    bundle = MimeBundle(dict.fromkeys(types, "x"))
    assert bundle.richest() == expected


def test_default_priority_ends_with_plain_text() -> None:
    assert DEFAULT_PRIORITY[-1] == "text/plain"
    assert DEFAULT_PRIORITY.index("text/html") < DEFAULT_PRIORITY.index("image/png")


@pytest.mark.parametrize(
    ("priority", "expected"),
    [
        (["image/png", "text/html"], "image/png"),
        (["application/pdf", "text/plain"], "text/plain"),
        ([MediaType.PNG], "image/png"),
        (["image/*"], "image/jpeg"),  # the first image in the bundle's own order
        (["application/*", "image/*"], "application/x-custom"),
        (["video/*", "text/*"], "text/html"),
        (["*/*"], "text/html"),
        (["audio/*"], None),
        ([], None),
    ],
)
def test_richest_custom_priority(priority: list[str], expected: str | None) -> None:
    bundle = MimeBundle(
        {
            "text/html": "<p/>",
            "image/jpeg": "AAAA",
            "image/png": PNG_B64,
            "application/x-custom": {"a": 1},
            "text/plain": "p",
        }
    )
    assert bundle.richest(priority) == expected


def test_richest_rejects_a_bare_string() -> None:
    with pytest.raises(TypeError, match="priority"):
        MimeBundle({"text/plain": "x"}).richest("text/plain")


# Values: unknown types, nbformat lines, JSON, base64


def test_unknown_types_kept_as_is() -> None:
    value = {"nested": [1, 2, {"x": None}]}
    bundle = MimeBundle({"application/x-whatever": value, "text/x-weird": "w"})
    assert bundle["application/x-whatever"] == value
    assert bundle.to_dict() == {"application/x-whatever": value, "text/x-weird": "w"}


@pytest.mark.parametrize(
    "mime",
    [
        "text/plain",
        "text/html",
        "text/markdown",
        "image/svg+xml",
        "application/javascript",
        "image/png",
    ],
)
def test_list_of_lines_joined(mime: str) -> None:
    bundle = MimeBundle({mime: ["line 1\n", "line 2\n", "end"]})
    assert bundle[mime] == "line 1\nline 2\nend"
    assert bundle.get_text(mime) == "line 1\nline 2\nend"


@pytest.mark.parametrize(
    "mime",
    ["application/json", "application/vnd.vegalite.v5+json", "application/geo+json", "x/y+json"],
)
def test_json_lists_not_joined(mime: str) -> None:
    bundle = MimeBundle({mime: ["a", "b"]})
    assert bundle[mime] == ["a", "b"]
    with pytest.raises(TypeError, match=re.escape(mime)):
        bundle.get_text(mime)


def test_text_property() -> None:
    assert MimeBundle({"text/plain": ["a\n", "b"]}).text == "a\nb"
    assert MimeBundle({"text/html": "<i/>"}).text is None


def test_get_bytes_decodes_png() -> None:
    bundle = MimeBundle({"image/png": PNG_B64})
    assert bundle.get_bytes("image/png") == PNG
    assert bundle.get_bytes(MediaType.PNG)[:8] == b"\x89PNG\r\n\x1a\n"


def test_get_bytes_tolerates_wrapped_base64() -> None:
    wrapped = "\n".join(PNG_B64[i : i + 8] for i in range(0, len(PNG_B64), 8)) + "\n"
    lines = [PNG_B64[:12] + "\n", PNG_B64[12:]]
    assert MimeBundle({"image/png": wrapped}).get_bytes("image/png") == PNG
    assert MimeBundle({"image/png": lines}).get_bytes("image/png") == PNG


@pytest.mark.parametrize("bad", ["not base64!", "abc", "ééé=", "iVBORw0K$$=="])
@pytest.mark.parametrize("mime", ["image/png", "image/jpeg", "application/pdf"])
def test_get_bytes_invalid_base64(mime: str, bad: str) -> None:
    with pytest.raises(ValueError, match=re.escape(mime) + ".*base64"):
        MimeBundle({mime: bad}).get_bytes(mime)


def test_get_bytes_of_text_is_utf8() -> None:
    bundle = MimeBundle({"text/plain": "héllo", "image/svg+xml": ["<svg>", "</svg>"]})
    assert bundle.get_bytes("text/plain") == "héllo".encode()
    assert bundle.get_bytes("image/svg+xml") == b"<svg></svg>"


def test_get_bytes_of_json_is_json_text() -> None:
    assert (
        MimeBundle({"application/json": {"a": [1]}}).get_bytes("application/json") == b'{"a": [1]}'
    )


def test_get_bytes_missing_type_is_key_error() -> None:
    with pytest.raises(KeyError):
        MimeBundle({"text/plain": "x"}).get_bytes("image/png")


def test_raw_bytes_become_base64_or_text() -> None:
    bundle = MimeBundle({"image/png": PNG, "image/tiff": b"II*\x00", "text/plain": b"hi"})
    assert bundle["image/png"] == PNG_B64
    assert bundle.get_bytes("image/tiff") == b"II*\x00"
    assert bundle["text/plain"] == "hi"
    with pytest.raises(ValueError, match="text/html"):
        MimeBundle({"text/html": b"\xff\xfe"})


# Mapping behaviour, copies, equality, repr


def test_is_a_read_only_mapping_of_copies() -> None:
    data = {"text/plain": "x"}
    meta = {"text/plain": {"k": 1}}
    bundle = MimeBundle(data, meta)
    data["text/html"] = "later"
    bundle.data["image/png"] = "ignored"
    bundle.metadata["text/html"] = {}
    assert dict(bundle) == {"text/plain": "x"}
    assert bundle.metadata == meta
    assert len(bundle) == 1
    with pytest.raises(TypeError):
        bundle["text/html"] = "y"  # type: ignore[index]


def test_equality() -> None:
    a = MimeBundle({"text/plain": "x"}, {"text/plain": {"k": 1}})
    assert a == MimeBundle({"text/plain": ["x"]}, {"text/plain": {"k": 1}})
    assert a != MimeBundle({"text/plain": "x"})
    assert a != MimeBundle({"text/plain": "y"}, {"text/plain": {"k": 1}})
    assert a == {"text/plain": "x"}
    assert a != 3
    with pytest.raises(TypeError):
        hash(a)


def test_repr_summarises_sizes_not_payloads() -> None:
    big = "A" * 10_000
    text = repr(MimeBundle({"image/png": big, "application/json": {"a": 1, "b": 2}}, {"x": 1}))
    assert big not in text
    assert "image/png: str[10000]" in text
    assert "application/json: dict[2]" in text
    assert "metadata" in text


# The display protocol


class _Html:
    def _repr_html_(self) -> str:
        return "<b>hi</b>"


class _Markdown:
    def _repr_markdown_(self) -> str:
        return "**hi**"


class _Svg:
    def _repr_svg_(self) -> str:
        return "<svg/>"


class _Png:
    def _repr_png_(self) -> bytes:
        return PNG


class _Jpeg:
    def _repr_jpeg_(self) -> bytes:
        return b"\xff\xd8\xff\xe0"


class _Latex:
    def _repr_latex_(self) -> str:
        return r"$x^2$"


class _Json:
    def _repr_json_(self) -> Any:
        return {"a": [1, 2]}


class _Javascript:
    def _repr_javascript_(self) -> str:
        return "alert(1)"


class _Pdf:
    def _repr_pdf_(self) -> bytes:
        return b"%PDF-1.4"


@pytest.mark.parametrize(
    ("obj", "mime", "expected"),
    [
        (_Html(), "text/html", "<b>hi</b>"),
        (_Markdown(), "text/markdown", "**hi**"),
        (_Svg(), "image/svg+xml", "<svg/>"),
        (_Png(), "image/png", PNG_B64),
        (_Jpeg(), "image/jpeg", base64.b64encode(b"\xff\xd8\xff\xe0").decode()),
        (_Latex(), "text/latex", r"$x^2$"),
        (_Json(), "application/json", {"a": [1, 2]}),
        (_Javascript(), "application/javascript", "alert(1)"),
        (_Pdf(), "application/pdf", base64.b64encode(b"%PDF-1.4").decode()),
    ],
)
def test_from_object_each_repr_method(obj: object, mime: str, expected: Any) -> None:
    bundle = MimeBundle.from_object(obj)
    assert set(bundle) == {mime, "text/plain"}
    assert bundle[mime] == expected
    assert bundle.text == repr(obj)
    assert bundle_from_object(obj) == bundle


def test_binary_reprs_round_trip_to_bytes() -> None:
    assert MimeBundle.from_object(_Png()).get_bytes("image/png") == PNG
    assert MimeBundle.from_object(_Pdf()).get_bytes("application/pdf") == b"%PDF-1.4"


@pytest.mark.parametrize("obj", [42, "s", None, [1, 2], object()])
def test_plain_objects_get_text_plain_only(obj: object) -> None:
    bundle = bundle_from_object(obj)
    assert bundle.to_dict() == {"text/plain": repr(obj)}
    assert bundle.metadata == {}


class _Several:
    def _repr_html_(self) -> str:
        return "<p>several</p>"

    def _repr_png_(self) -> tuple[bytes, dict[str, Any]]:
        return PNG, {"width": 10, "height": 5}

    def _repr_latex_(self) -> None:
        return None

    def __repr__(self) -> str:
        return "Several()"


def test_tuple_returns_give_metadata_and_none_is_skipped() -> None:
    bundle = MimeBundle.from_object(_Several())
    assert bundle.to_dict() == {
        "text/html": "<p>several</p>",
        "image/png": PNG_B64,
        "text/plain": "Several()",
    }
    assert bundle.metadata == {"image/png": {"width": 10, "height": 5}}


class _WithBundle:
    def __init__(self, returns_metadata: bool = False) -> None:
        self.returns_metadata = returns_metadata
        self.calls: list[tuple[Any, Any]] = []

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> Any:
        self.calls.append((include, exclude))
        data: dict[str, Any] = {
            "text/html": "<b>from bundle</b>",
            "text/plain": "plain from bundle",
        }
        data["application/vnd.custom+json"] = {"k": "v"}
        if self.returns_metadata:
            return data, {"text/html": {"isolated": True}, "application/x-gone": {"z": 1}}
        return data

    def _repr_html_(self) -> str:
        return "<i>from method</i>"

    def _repr_markdown_(self) -> str:
        return "*md*"


def test_mimebundle_takes_precedence_over_methods() -> None:
    bundle = MimeBundle.from_object(_WithBundle())
    assert bundle["text/html"] == "<b>from bundle</b>"
    assert bundle.text == "plain from bundle"
    assert bundle["text/markdown"] == "*md*"  # methods still fill in what the bundle lacks
    assert bundle["application/vnd.custom+json"] == {"k": "v"}


def test_mimebundle_metadata_tuple_and_dropped_types() -> None:
    bundle = MimeBundle.from_object(_WithBundle(returns_metadata=True))
    # metadata for a type absent from the data is dropped; the rest is kept
    assert bundle.metadata == {"text/html": {"isolated": True}}


def test_include_exclude_are_passed_and_enforced() -> None:
    obj = _WithBundle()
    bundle = MimeBundle.from_object(obj, include=["text/html", "text/markdown"])
    assert obj.calls == [(["text/html", "text/markdown"], None)]
    # _repr_mimebundle_ ignored include, so its other entries are filtered out afterwards
    assert set(bundle) == {"text/html", "text/markdown"}

    bundle = MimeBundle.from_object(_WithBundle(), exclude=["text/html"])
    assert set(bundle) == {"text/plain", "text/markdown", "application/vnd.custom+json"}


def test_include_exclude_wildcards_and_uncomputed_methods() -> None:
    class Loud:
        def _repr_png_(self) -> bytes:
            raise AssertionError("excluded types must not be computed")

        def _repr_html_(self) -> str:
            return "<p/>"

    bundle = bundle_from_object(Loud(), exclude=["image/*"])
    assert set(bundle) == {"text/html", "text/plain"}
    assert set(bundle_from_object(Loud(), include=["text/*"])) == {"text/html", "text/plain"}


def test_include_must_not_be_a_bare_string() -> None:
    with pytest.raises(TypeError, match="include"):
        bundle_from_object(1, include="text/plain")


def test_text_plain_present_unless_filtered() -> None:
    assert bundle_from_object(_Html(), include=["text/html", "text/plain"]).text is not None
    assert bundle_from_object(_Html(), exclude=["text/plain"]).to_dict() == {
        "text/html": "<b>hi</b>"
    }


class _Broken:
    def _repr_html_(self) -> str:
        raise RuntimeError("boom")

    def _repr_markdown_(self) -> str:
        return "ok"

    def __repr__(self) -> str:
        return "Broken()"


@pytest.mark.parametrize("build", [MimeBundle.from_object, bundle_from_object])
def test_raising_repr_is_skipped_with_warning(build: Any) -> None:
    with pytest.warns(RuntimeWarning, match=r"_repr_html_.*RuntimeError: boom") as record:
        bundle = build(_Broken())
    assert bundle.to_dict() == {"text/markdown": "ok", "text/plain": "Broken()"}
    # the warning points at the caller, not into runtimelib
    assert record[0].filename == __file__


def test_raising_mimebundle_and_repr_fall_back() -> None:
    class Bad:
        def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> Any:
            raise ValueError("no bundle")

        def _repr_svg_(self) -> str:
            return "<svg/>"

        def __repr__(self) -> str:
            raise KeyError("no repr")

    with pytest.warns(RuntimeWarning) as record:
        bundle = bundle_from_object(Bad())
    messages = [str(w.message) for w in record]
    assert any("_repr_mimebundle_" in m for m in messages)
    assert any("__repr__" in m for m in messages)
    assert bundle["image/svg+xml"] == "<svg/>"
    assert bundle.text is not None
    assert bundle.text.startswith("<")
    assert "Bad object at" in bundle.text


def test_undecodable_bytes_skipped_with_warning() -> None:
    class Bytes:
        def _repr_html_(self) -> bytes:
            return b"\xff"

    with pytest.warns(RuntimeWarning, match="_repr_html_"):
        bundle = bundle_from_object(Bytes())
    assert "text/html" not in bundle


def test_methods_are_looked_up_on_the_class() -> None:
    class AnswersEverything:
        def __getattr__(self, name: str) -> Any:
            return lambda **kwargs: "<fake>"

    class HasHtml:
        def _repr_html_(self) -> str:
            return "<b/>"

    assert set(bundle_from_object(AnswersEverything())) == {"text/plain"}
    # a class shows as itself, not through its instances' methods
    assert bundle_from_object(HasHtml).to_dict() == {"text/plain": repr(HasHtml)}


def test_a_bundle_displays_as_itself() -> None:
    bundle = MimeBundle({"text/html": "<b/>", "text/plain": "b"}, {"text/html": {"k": 1}})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert bundle_from_object(bundle) == bundle
    assert bundle_from_object(bundle, include=["text/plain"]).to_dict() == {"text/plain": "b"}
