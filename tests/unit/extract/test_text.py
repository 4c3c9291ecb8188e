from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from docmill.extract import mime
from docmill.extract.base import ExtractContext, ExtractionResult
from docmill.extract.text import decode_lines, extract_text, normalize_newlines
from docmill.extract.textcodec import decode


def _extract(data: bytes, media_type: str = mime.TEXT) -> ExtractionResult:
    ctx = ExtractContext()
    ctx.media_type = media_type
    return extract_text(data, ctx)


def test_plain_text_comes_back_with_its_encoding() -> None:
    result = _extract("Grüße aus Köln\n".encode("cp1252") * 20)
    assert (result.text, result.metadata) == (
        "Grüße aus Köln\n" * 20,
        {"encoding": "cp1252"},
    )


def test_windows_line_breaks_become_newlines() -> None:
    assert _extract(b"one\r\ntwo\rthree\n").text == "one\ntwo\nthree\n"


def test_a_byte_order_mark_is_reported_and_dropped() -> None:
    result = _extract("\ufeffhello".encode("utf-16"))
    assert (result.text, result.metadata["bom"]) == ("hello", "utf-16-le")


def test_markdown_passes_through_as_markdown() -> None:
    source = "# Title\n\nSome **bold** and *italic*\n"
    result = _extract(source.encode(), mime.MARKDOWN)
    assert (result.mime_type, result.text, result.markdown) == (
        mime.MARKDOWN,
        source,
        source,
    )


def test_plain_text_has_no_markdown() -> None:
    assert _extract(b"hello").markdown is None


def test_a_small_text_file_is_read_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The sniffer's head holds the whole file; the extractor reads that.
    from docmill.extract.pipeline import extract_path

    path = tmp_path / "note.txt"
    path.write_text("Nothing but a few words.\n", encoding="utf-8")

    def refuse(self: Path) -> bytes:
        raise AssertionError("read the file a second time")

    monkeypatch.setattr(Path, "read_bytes", refuse)
    assert extract_path(path).text == "Nothing but a few words.\n"


# Text, line breaks, a stray byte, the marks of UTF-16 and ISO-2022, and
# byte-order marks.
_PIECES = [b"a", b" ", b"\r", b"\n", b"\r\n", b"\xc3\xa9", b"\xe5\xad\x97", b"\xff"]
_PIECES += [b"\x00", b"\x1b", b"\xef\xbb\xbf", b"\xfe\xff"]


@settings(max_examples=500, deadline=None)
@given(data=st.lists(st.sampled_from(_PIECES), max_size=30).map(b"".join))
def test_decode_lines_is_decode_then_normalize_newlines(data: bytes) -> None:
    # The byte road must give the text the text road gives, and bytes that
    # are that text's UTF-8 when it gives any.
    decoded, text, utf8 = decode_lines(data)
    expected = decode(data)
    assert text == normalize_newlines(expected.text)
    assert (decoded.encoding, decoded.bom) == (expected.encoding, expected.bom)
    assert (decoded.confident, decoded.replaced) == (
        expected.confident,
        expected.replaced,
    )
    if utf8 is not None:
        assert utf8 == text.encode("utf-8")


@pytest.mark.parametrize(
    ("data", "utf8"),
    [
        pytest.param(b"caf\xc3\xa9\r\nx\r\n", b"caf\xc3\xa9\nx\n", id="crlf"),
        pytest.param(b"a\rb\r\nc", b"a\nb\nc", id="lone-cr"),
        pytest.param(b"plain\n", b"plain\n", id="no-cr"),
        pytest.param(b"\xef\xbb\xbfmarked\r\n", None, id="bom"),
        pytest.param("caf\xe9\r\n".encode("cp1252") * 9, None, id="legacy"),
    ],
)
def test_decode_lines_gives_the_bytes_of_plain_utf8_only(
    data: bytes, utf8: bytes | None
) -> None:
    assert decode_lines(data).utf8 == utf8
