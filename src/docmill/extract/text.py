"""
Plain text and Markdown.

The text is the decoded file with line breaks made ``\\n``; Markdown is kept
as written, in ``markdown`` too, since its markup is already the structure.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

from docmill.extract import mime
from docmill.extract.base import ExtractContext, ExtractionResult, Source, read_source
from docmill.extract.charsets import decode_declared, unused_charset_warning
from docmill.extract.textcodec import (
    DETECTION_SAMPLE_BYTES,
    DecodedText,
    codec_name,
    detect_bom,
)


def extract_text(source: Source, ctx: ExtractContext) -> ExtractionResult:
    decoded, text, utf8 = decode_lines(read_source(source), ctx.charset)
    media_type = mime.MARKDOWN if ctx.media_type == mime.MARKDOWN else mime.TEXT
    return ExtractionResult(
        media_type,
        text,
        markdown=text if media_type == mime.MARKDOWN else None,
        metadata=encoding_metadata(decoded),
        warnings=text_warnings(decoded, ctx.charset),
        utf8=(text, utf8) if utf8 is not None else None,
    )


_LONE_CR = re.compile(rb"\r(?!\n)")


class Lines(NamedTuple):
    """A decoded text file with its line breaks made ``\\n``."""

    decoded: DecodedText
    text: str
    # ``text`` encoded as UTF-8, when the file was plain UTF-8 and so held
    # these bytes (line breaks aside) already; None otherwise.
    utf8: bytes | None


def decode_lines(data: bytes, charset: str | None = None) -> Lines:
    """
    ``decode_declared`` and ``normalize_newlines`` in one, done on the bytes
    when they are UTF-8.

    CR and LF are ASCII, which UTF-8 never uses inside a longer sequence, so
    replacing them in the bytes and then decoding gives the text that
    decoding and then replacing gives, and the bytes, with no lone CR, need
    only their CRs deleted: replacing each two-character CRLF in the text
    took twice as long as the decode (1.7 ms on a 730 KB CSV). The bytes are
    then the text's UTF-8, which the word count reads instead of a fresh
    copy of the text. The byte road is taken only where ``decode``
    would take its plain UTF-8 road: no byte-order mark and no NUL or ESC in
    the sample, which mark UTF-16 or ISO-2022 text that is valid UTF-8 too,
    and no declared ``charset`` but UTF-8, which outranks the UTF-8 road.
    """
    if b"\r" in data and _plain_utf8_road(data, charset):
        if _LONE_CR.search(data) is None:
            # Every CR opens a CRLF: deleting them, one byte sought with
            # memchr, is a ninth of replacing each two-byte CRLF.
            lines = data.replace(b"\r", b"")
        else:
            lines = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        try:
            text = lines.decode("utf-8")
        except UnicodeDecodeError:
            pass
        else:
            return Lines(DecodedText(text, "utf-8"), text, lines)
    decoded = decode_declared(data, charset)
    if "\r" in decoded.text:
        return Lines(decoded, normalize_newlines(decoded.text), None)
    plain = decoded.encoding == "utf-8" and decoded.bom is None and decoded.confident
    return Lines(decoded, decoded.text, data if plain else None)


def _plain_utf8_road(data: bytes, charset: str | None) -> bool:
    if charset and codec_name(charset) != "utf-8":
        return False
    sample = data[:DETECTION_SAMPLE_BYTES]
    return b"\x00" not in sample and b"\x1b" not in sample and detect_bom(data) is None


def normalize_newlines(text: str) -> str:
    """Turn Windows and classic Mac line breaks into ``\\n``."""
    if "\r" not in text:
        return text
    text = text.replace("\r\n", "\n")
    # A lone CR is rare; finding none is cheaper than a second replace.
    return text.replace("\r", "\n") if "\r" in text else text


def encoding_metadata(decoded: DecodedText) -> dict[str, Any]:
    """The ``encoding`` and, if there was one, ``bom`` facts of a decoded text."""
    metadata: dict[str, Any] = {"encoding": decoded.encoding}
    if decoded.bom:
        metadata["bom"] = decoded.bom
    return metadata


def text_warnings(decoded: DecodedText, charset: str | None) -> list[str]:
    """``undecodable_warning`` and ``unused_charset_warning`` together."""
    return unused_charset_warning(charset, decoded) + undecodable_warning(decoded)


def undecodable_warning(decoded: DecodedText) -> list[str]:
    if decoded.confident:
        return []
    if decoded.replaced:
        return [
            f"read as utf-8; {decoded.replaced} byte sequence(s) that are not "
            "UTF-8 became U+FFFD"
        ]
    return [
        f"no encoding decodes every byte; read as {decoded.encoding} "
        "with U+FFFD for the bytes it could not read"
    ]
