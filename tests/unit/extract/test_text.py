from __future__ import annotations

from pathlib import Path

import pytest

from docmill.extract import mime
from docmill.extract.base import ExtractContext, ExtractionResult
from docmill.extract.text import extract_text


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
