"""Plain text and Markdown."""

from __future__ import annotations

from docmill.extract import mime
from docmill.extract.base import ExtractContext, ExtractionResult, Source, read_source
from docmill.extract.textcodec import decode


def extract_text(source: Source, ctx: ExtractContext) -> ExtractionResult:
    data = read_source(source)
    decoded = decode(data)
    text = decoded.text.lstrip("\ufeff")
    media_type = mime.MARKDOWN if ctx.media_type == mime.MARKDOWN else mime.TEXT
    metadata: dict[str, object] = {"encoding": decoded.encoding}
    if decoded.bom:
        metadata["bom"] = decoded.bom
    return ExtractionResult(
        media_type,
        text,
        markdown=text if media_type == mime.MARKDOWN else None,
        metadata=metadata,
    )
