"""Sniff, dispatch, finish: the one road every document takes."""

from __future__ import annotations

import re
from pathlib import Path

from docmill.exceptions import EmptyDocument, UnsupportedFormat
from docmill.extract.base import ExtractContext, ExtractionResult, Source
from docmill.extract.registry import extractor_for
from docmill.extract.sniff import sniff

_WORD = re.compile(r"\w+")


def extract_path(
    path: Path, ctx: ExtractContext | None = None, name: str | None = None
) -> ExtractionResult:
    """Extract the document stored at ``path``; ``name`` is its original name."""
    return _extract(path, ctx or ExtractContext(), name or path.name)


def extract_bytes(
    data: bytes, ctx: ExtractContext | None = None, name: str | None = None
) -> ExtractionResult:
    """Extract a document held in memory (an attachment, an archive member)."""
    return _extract(data, ctx or ExtractContext(), name)


def _extract(source: Source, ctx: ExtractContext, name: str | None) -> ExtractionResult:
    media_type = _sniff_plugin(source) or sniff(source, name)
    if media_type == "application/x-empty":
        raise EmptyDocument("the document is empty (0 bytes)")
    if media_type == "application/octet-stream":
        raise UnsupportedFormat(_describe_unknown(source))
    ctx.media_type, ctx.name = media_type, name
    result = extractor_for(media_type)(source, ctx)
    return _finish(result, ctx)


def _finish(result: ExtractionResult, ctx: ExtractContext) -> ExtractionResult:
    limit = ctx.limits.max_text_chars
    if len(result.text) > limit:
        result.text = result.text[:limit]
        result.warnings.append(f"text cut at {limit} characters")
    if ctx.depth == 0 and "language" not in result.metadata:
        language = detect_language(result.text)
        if language:
            result.metadata["language"] = language
    return result


def _sniff_plugin(source: Source) -> str | None:
    from docmill.extract.registry import _PLUGIN_MAGIC, sniff_plugin

    if not _PLUGIN_MAGIC:
        return None
    return sniff_plugin(source[:64] if isinstance(source, bytes) else _head(source))


def count_words(text: str) -> int:
    return sum(1 for _ in _WORD.finditer(text))


# Language guesses on a few words are noise; below this the field stays unset.
_MIN_LANGUAGE_CHARS = 40
_LANGUAGE_SAMPLE_CHARS = 20_000


def detect_language(text: str) -> str | None:
    """ISO 639-1 code of the text's main language, or None when unsure."""
    sample = text[:_LANGUAGE_SAMPLE_CHARS]
    if sum(ch.isalpha() for ch in sample) < _MIN_LANGUAGE_CHARS:
        return None
    import py3langid

    language, _score = py3langid.classify(sample)
    return str(language)


def _describe_unknown(source: Source) -> str:
    import filetype

    head = source[:8192] if isinstance(source, bytes) else _head(source)
    kind = filetype.guess(head)
    if kind is not None:
        return f"{kind.mime} (.{kind.extension}) is not a format docmill reads"
    return "the bytes are not a document format docmill recognises"


def _head(path: Path) -> bytes:
    with open(path, "rb") as stream:
        return stream.read(8192)
