"""
Plain text and Markdown.

The text is the decoded file with line breaks made ``\\n``; Markdown is kept
as written, in ``markdown`` too, since its markup is already the structure.
"""

from __future__ import annotations

from typing import Any

from docmill.extract import mime
from docmill.extract.base import ExtractContext, ExtractionResult, Source, read_source
from docmill.extract.textcodec import DecodedText, decode


def extract_text(source: Source, ctx: ExtractContext) -> ExtractionResult:
    decoded = decode(read_source(source))
    text = normalize_newlines(decoded.text)
    media_type = mime.MARKDOWN if ctx.media_type == mime.MARKDOWN else mime.TEXT
    return ExtractionResult(
        media_type,
        text,
        markdown=text if media_type == mime.MARKDOWN else None,
        metadata=encoding_metadata(decoded),
        warnings=undecodable_warning(decoded),
    )


def normalize_newlines(text: str) -> str:
    """Turn Windows and classic Mac line breaks into ``\\n``."""
    if "\r" not in text:
        return text
    return text.replace("\r\n", "\n").replace("\r", "\n")


def encoding_metadata(decoded: DecodedText) -> dict[str, Any]:
    """The ``encoding`` and, if there was one, ``bom`` facts of a decoded text."""
    metadata: dict[str, Any] = {"encoding": decoded.encoding}
    if decoded.bom:
        metadata["bom"] = decoded.bom
    return metadata


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
