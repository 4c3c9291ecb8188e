"""
RTF: the text with control words stripped.

The stripping is striprtf's (its tables of destinations and charsets, its
handling of pictures and hyperlinks), with its token loop rewritten here for
speed; see ``_rtf_to_text``. It decodes ``\\'hh`` escapes with the code page
of the current font's ``\\fcharset`` or, failing that, the document's
``\\ansicpgN`` (so cp1250 and Shift-JIS documents read right), and turns
``\\uN`` into characters. Two gaps are closed here: raw 8-bit bytes outside
escapes are decoded with the document's code page before striprtf sees
them, and the UTF-16 surrogate pairs that ``\\uN`` writes for characters
beyond the BMP are joined into one character.
"""

from __future__ import annotations

import codecs
import re
from functools import cache
from typing import Any

from striprtf import striprtf

from docmill.exceptions import CorruptDocument
from docmill.extract import mime
from docmill.extract.base import ExtractContext, ExtractionResult, Source, read_source
from docmill.extract.text import normalize_newlines
from docmill.extract.textcodec import codec_name

_CODEPAGE = re.compile(rb"\\ansicpg(\d{1,5})")
_INFO_FIELD = re.compile(rb"\{\\(title|author|subject|keywords|company)\s([^{}]*)\}")
_SURROGATE = re.compile("[\ud800-\udfff]")
# Code pages whose lead bytes can be followed by "\" or "{": raw bytes in them
# would split control words, so they are read byte for byte instead.
_DOUBLE_BYTE = frozenset({"cp932", "cp936", "cp949", "cp950", "cp1361", "gbk"})


def extract_rtf(source: Source, ctx: ExtractContext) -> ExtractionResult:
    data = read_source(source)
    match = _CODEPAGE.search(data[:4096])
    codepage = int(match.group(1)) if match else None
    codec = (codec_name(f"cp{codepage}") if codepage else None) or "cp1252"

    text = _strip(data, codec)
    metadata: dict[str, Any] = {}
    if codepage is not None:
        metadata["codepage"] = codepage
    for field, raw in _INFO_FIELD.findall(data[:65536]):
        value = _strip(b"{\\rtf1 " + raw + b"}", codec).strip()
        if value:
            metadata.setdefault(field.decode("ascii"), value)
    return ExtractionResult(mime.RTF, text, metadata=metadata)


def _strip(data: bytes, codec: str) -> str:
    if data.isascii() or codec in _DOUBLE_BYTE:
        rtf = data.decode("latin-1")
    else:
        rtf = data.decode(codec, errors="replace")
    try:
        if _OWN_LOOP:
            text = _rtf_to_text(rtf, codec)
        else:
            own: Any = striprtf.rtf_to_text  # striprtf ships no type hints
            text = own(rtf, codec, errors="replace")
    except (ValueError, LookupError, IndexError) as exc:
        # striprtf reads control words' numbers with int() and looks up the
        # codecs documents name; a damaged document fails there.
        raise CorruptDocument(f"the RTF could not be read: {exc}") from exc
    if _SURROGATE.search(text):
        text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return normalize_newlines(text)


# The letters striprtf's [a-z] matches, ignoring case as it does: ASCII's
# and four others that fold to them (dotted and dotless i, long s, Kelvin).
# Spelt out, the patterns below match without ignoring case, which made
# them a third slower (``test_rtf`` holds the list to this Python's re).
_LETTERS = "a-zA-Z\u0130\u0131\u017f\u212a"
# striprtf's tokens, three of them widened: a run of control words, a run of
# ``\'hh`` escapes and a run of plain text are one token each where striprtf
# takes one word, escape or character at a time; a lone backslash at the
# very end keeps its own. Each word of a run is matched as greedily as
# striprtf matches it alone, so a run holds the words striprtf would see.
_TOKEN = re.compile(
    r"((?:\\[" + _LETTERS + r"]{1,32}(?:-?\d{1,10})?[ ]?)+)"
    r"|((?:\\'[0-9a-fA-F]{2})+)"
    r"|\\([^" + _LETTERS + r"])"
    r"|([{}])"
    r"|[\r\n]+"
    r"|([^\\{}\r\n]+)"
    r"|(.)"
)
# An ignorable group up to its next brace or possible \ansicpg: plain text,
# and escapes whose backslash does not open "ansicpg" in any case, pass in
# one match. Pairs are taken left to right as _TOKEN takes them, so an
# escaped brace or backslash is no brace. The word after the run is matched
# whole, as _TOKEN matches it, so "ansicpgx" is not taken for "ansicpg".
_SKIPPED = re.compile(
    r"(?:[^\\{}]+|\\(?!(?i:ansicpg))[\s\S])*"
    r"(?:([{}])|\\([" + _LETTERS + r"]{1,32})(-?\d{1,10})?)?"
)
# The loop below reads striprtf's tables and helpers, which are not its
# public API: should a later striprtf drop one, its own rtf_to_text runs
# instead (slower, same text), rather than docmill failing to import.
_STRIPRTF_PARTS = (
    "destinations",
    "specialchars",
    "remove_pict_groups",
    "HYPERLINKS",
    "FONTTABLE",
    "font_table_group",
    "charset_map",
)
_OWN_LOOP = all(hasattr(striprtf, part) for part in _STRIPRTF_PARTS)
_DESTINATIONS: frozenset[str] = getattr(striprtf, "destinations", frozenset())
_SPECIAL: dict[str, str] = getattr(striprtf, "specialchars", {})
# A control word: its name, its numeric argument, the space that ends it.
_WORDS = re.compile(r"\\([" + _LETTERS + r"]{1,32})(-?\d{1,10})?[ ]?")


def _rtf_to_text(text: str, encoding: str) -> str:
    """
    What ``striprtf.rtf_to_text(text, encoding, errors="replace")`` returns.

    striprtf matches one character or escape at a time and runs a Python
    loop over each match: 3 ms for a 25 KB document, most of a small RTF's
    time. This loop gives the same text from far fewer matches: runs of
    plain text and of hex escapes are one match each, and an ignorable
    group (font table, style sheet, info) is passed over to its closing
    brace by ``_skip_group``. The differential test in
    tests/unit/extract/test_rtf.py holds it to striprtf's output; it was
    written against striprtf 0.0.35, the lowest version pyproject.toml allows;
    it runs against whichever striprtf is installed.
    """
    # striprtf ships no type hints.
    text = striprtf.remove_pict_groups(text)  # type: ignore[no-untyped-call]
    text = striprtf.HYPERLINKS.sub("\\1(\\2)", text)
    # A font's code page is fixed by its charset, or failing that by the
    # code page the caller gave, not by a later \ansicpg.
    fonts: dict[str | None, str] = {}
    for font_id, charset, _name in striprtf.FONTTABLE.findall(
        striprtf.font_table_group(text)  # type: ignore[no-untyped-call]
    ):
        fonts[font_id] = striprtf.charset_map.get(int(charset), encoding)

    out: list[str] = []
    stack: list[tuple[int, bool, str | None]] = []
    # Characters still to drop after a \u escape, as its \uc count says.
    ucskip, skip = 1, 0
    ignorable = False
    font: str | None = None
    hexes: list[str] = []
    depth, in_document = 0, False
    position, end = 0, len(text)
    match_token = _TOKEN.match
    while position < end:
        match = match_token(text, position)
        assert match is not None  # the last alternative takes any character
        position = match.end()
        words, hex_run, char, brace, run, single = match.groups()
        if hexes and hex_run is None:
            data = bytes.fromhex("".join(hexes))
            out.append(data.decode(fonts.get(font, encoding), "replace"))
            hexes.clear()
        if run is not None or single is not None:
            piece = run if run is not None else single
            if skip > 0:
                taken = min(skip, len(piece))
                skip -= taken
                piece = piece[taken:]
            if piece and not ignorable:
                out.append(piece)
        elif hex_run is not None:
            count = len(hex_run) // 4
            taken = min(skip, count) if skip > 0 else 0
            skip -= taken
            if taken < count and not ignorable:
                hexes.append(hex_run[4 * taken :].replace("\\'", ""))
        elif brace == "{":
            skip = 0
            depth += 1
            in_document = True
            stack.append((ucskip, ignorable, font))
        elif brace == "}":
            skip = 0
            depth -= 1
            if stack:
                ucskip, ignorable, font = stack.pop()
            else:
                # striprtf's reading of a closing brace with no group open.
                ucskip, ignorable = 0, True
            if in_document and depth <= 0:
                # Whatever follows the document's group is not its text.
                break
        elif char is not None:
            skip = 0
            if char in _SPECIAL:
                if not ignorable:
                    out.append(_SPECIAL[char])
            elif char == "*":
                ignorable = True
        elif words is not None:
            for word, argument in _WORDS.findall(words):
                skip = 0
                if word in _DESTINATIONS:
                    ignorable = True
                elif word == "ansicpg":
                    encoding = _codepage_codec(argument or None)
                if ignorable:
                    continue
                if word in _SPECIAL:
                    out.append(_SPECIAL[word])
                elif word == "uc":
                    # A \uc without a count fails here, as it does in striprtf.
                    ucskip = int(argument or None)  # type: ignore[arg-type]
                elif word == "u":
                    if argument:
                        code = int(argument)
                        out.append(chr(code + 0x10000 if code < 0 else code))
                    skip = ucskip
                elif word == "f":
                    font = argument or None
        if ignorable and stack and depth >= 1:
            position, encoding = _skip_group(text, position, encoding)
    # Hex escapes left pending at the very end are dropped, as in striprtf.
    return "".join(out)


def _skip_group(text: str, position: int, encoding: str) -> tuple[int, str]:
    """
    The position of the brace closing the group that ``position`` is in,
    and the encoding the last ``\\ansicpg`` on the way set.

    The group's state is restored at that brace, so nothing in between
    counts but ``\\ansicpg``, which striprtf obeys even where it ignores
    everything else. Nested groups close before it does, so the document's
    depth never reaches zero on the way.
    """
    nested = 0
    match_skipped = _SKIPPED.match
    while True:
        match = match_skipped(text, position)
        assert match is not None  # the pattern can match nothing
        position = match.end()
        brace, word = match.group(1, 2)
        if brace == "{":
            nested += 1
        elif brace == "}":
            if not nested:
                return position - 1, encoding
            nested -= 1
        elif word is not None:
            if word == "ansicpg":
                encoding = _codepage_codec(match.group(3))
        else:
            return len(text), encoding


@cache
def _codepage_codec(argument: str | None) -> str:
    # striprtf's reading of \ansicpgN: the codec cpN if Python has one.
    try:
        codecs.lookup(f"cp{argument}")
    except LookupError:
        return "utf8"
    return f"cp{argument}"
