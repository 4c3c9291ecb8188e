"""
Turning bytes of unknown encoding into text.

The order is the cheap one first: a byte-order mark, then a strict UTF-8
decode, then a NUL-pattern check for UTF-16/32 without a mark, then an
encoding the document declares (kept only if it decodes strictly), and only
when all of these fail charset-normalizer on a bounded sample. Most text is
UTF-8, so most text never pays for detection: the UTF-8 road costs one decode
plus two ``memchr`` scans of the first 64 KiB.

Two 7-bit traps sit on the UTF-8 road. UTF-16 text of Latin letters without a
mark is valid UTF-8 (NUL is a legal code point), and ISO-2022 text is pure
ASCII with escape sequences; both are caught before a UTF-8 result is kept.
"""

from __future__ import annotations

import codecs
import re
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from itertools import repeat
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from collections.abc import Iterable

    from charset_normalizer import CharsetMatches

# Detection reads at most this much; the whole file is then decoded with the
# encoding found. 64 KiB is enough for the detector to settle on every
# non-UTF-8 file in the shared corpus.
DETECTION_SAMPLE_BYTES = 64 * 1024

_BOMS = (
    # UTF-32 first: its little-endian mark begins with UTF-16's.
    (codecs.BOM_UTF32_LE, "utf-32-le", "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32-be", "utf-32"),
    (codecs.BOM_UTF8, "utf-8", "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16-le", "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16-be", "utf-16"),
)

# ISO-2022 designations: ESC $ B / ESC $ @ / ESC ( J select JIS sets, ESC $ ) C
# announces KS X 1001 and ESC $ A / ESC $ ) A GB 2312. A UTF-8 text almost
# never contains an ESC, and never these exact sequences.
_ISO2022 = (
    (re.compile(rb"\x1b\$\)C"), "iso2022_kr"),
    (re.compile(rb"\x1b\$[@B]|\x1b\(J|\x1b\$\(D|\x1b\(I"), "iso2022_jp_ext"),
    (re.compile(rb"\x1b\$\)?A|\x1b\$\)G"), "iso2022_jp_2"),
)
# Bytes below 0x20 that no text uses: all but tab, line feed, carriage return,
# form feed and ESC (ISO-2022's shift).
_CONTROL_BYTES = bytes(b for b in range(0x20) if b not in b"\t\n\r\x0c\x1b")
# The share of a text's bytes that may be control bytes, and how many may
# be in a short UTF-8 text with a NUL among them.
_CONTROL_SHARE = 0.01
_STRAY_CONTROLS = 2
# cpio's portable headers (newc, crc, odc) are ASCII digits, and an archive of
# text files pads its names and members with a few NULs each: valid UTF-8 with
# fewer control bytes than the share above allows.
_CPIO_MAGIC = (b"070701", b"070702", b"070707")

# charset-normalizer's sampling (``from_bytes``'s ``steps`` and
# ``chunk_size``), and how far back ``_whole_chunks`` looks for a place to
# cut a sample to a multiple of ``_CHUNKS`` bytes.
_CHUNKS = 5
_CHUNK_BYTES = 512
_CUT_SEARCH_BYTES = 512
_WHITESPACE = frozenset(b" \t\r\n")
# The share of bytes past ASCII from which a text is taken to be written in
# another script than Latin (see ``_skipped_codecs``).
_OTHER_SCRIPT = 0.3
_PAST_ASCII = bytes(range(0x80, 0x100))
# Between them these decode text in any CJK double-byte encoding (GB18030's
# pairs span GBK's, Big5's, EUC's and UHC's; cp932 adds Shift-JIS's
# half-width kana); single-byte text past ASCII almost never decodes as
# either, a letter before a space being no pair.
_DOUBLE_BYTE = ("gb18030", "cp932")

# How many valid characters past ASCII each stray non-UTF-8 byte sequence
# needs around it for a text to be read as damaged UTF-8 (see
# ``_utf8_with_strays``).
_STRAY_RATIO = 10

# The JIS variants, narrowest first, so the encoding reported is the one a
# reader would name for the file.
_ISO2022_JP_FAMILY = ("iso2022_jp", "iso2022_jp_ext", "iso2022_jp_2")

# When several codecs decode the sample equally well, the one a person most
# likely used wins: Windows code pages before their ISO and Mac cousins,
# the international EBCDIC before the US one (they differ only in "!" and
# "|", and "!" is the commoner), the Russian DOS page before the Ukrainian.
_PREFERRED = (
    "cp1252",
    "cp1250",
    "cp1251",
    "cp1253",
    "cp1254",
    "cp1256",
    "cp1255",
    "cp1257",
    "koi8_r",
    "cp866",
    "shift_jis",
    "cp932",
    "euc_jp",
    "gb18030",
    "big5",
    "cp949",
    "euc_kr",
    "cp500",
)
# The chaos head start of the codecs in _PREFERRED, and the differences in
# chaos and coherence that count as a tie.
_COMMON_BONUS = 0.05
_CHAOS_TIE = 0.01
_COHERENCE_TIE = 0.02

# The letters past ASCII that each language written in a Latin code page
# uses, in lower case (loanword letters left out). A reading of a legacy text
# is believable when its accented letters are those of one language: French
# read as Baltic turns "garçon" and "à côté" into "garēon" and "ą cōté", and
# no language writes ē, ą and ō together.
_ALPHABETS = {
    "Albanian": "çë",
    "Catalan": "àçèéíïòóúü",
    "Croatian": "čćđšž",
    "Czech": "áčďéěíňóřšťúůýž",
    "Danish and Norwegian": "åæéø",
    "Dutch": "áéèëïóöü",
    "Estonian": "äõöüšž",
    "Faroese": "áæðíóøúý",
    "Finnish": "äåöšž",
    "French": "àâæçéèêëîïôœùûüÿ",
    "German": "äöüß",
    "Hungarian": "áéíóöőúüű",
    "Icelandic": "áæðéíóöþúý",
    "Irish": "áéíóú",
    "Italian": "àèéìíîòóùú",
    "Latvian": "āčēģīķļņšūž",
    "Lithuanian": "ąčęėįšųūž",
    "Polish": "ąćęłńóśźż",
    "Portuguese": "áàâãçéêíóôõú",
    "Romanian": "ăâîşșţț",
    "Slovak": "áäčďéíĺľňóôŕšťúýž",
    "Slovene": "čšž",
    "Spanish": "áéíñóúü",
    "Swedish": "åäéö",
    "Turkish": "çğıöşü",
}
# ASCII but the line feed: deleting it leaves each line's bytes past ASCII.
_ASCII_BUT_NEWLINE = bytes(byte for byte in range(0x80) if byte != 0x0A)
# At most this many bytes past ASCII are weighed (see ``_latin_reading``):
# evidence enough, and a bound on the cost of weighing.
_LETTER_BYTES = 1024
# A count per language packed in one integer (see ``_CodePage``).
_TALLY_BITS = 32
_TALLY_MASK = (1 << _TALLY_BITS) - 1


@dataclass(frozen=True)
class DecodedText:
    """
    Text decoded from bytes, with how it was decoded.

    ``encoding`` is a Python codec name; ``bom`` names the byte-order mark the
    bytes opened with, if any (it is not part of ``text``); ``confident`` is
    False when no candidate decoded the bytes strictly and U+FFFD stands in
    for what could not be read.
    """

    text: str
    encoding: str
    bom: str | None = None
    confident: bool = True
    # Byte sequences of an otherwise UTF-8 text that were not UTF-8 and
    # became U+FFFD (``confident`` is then False too).
    replaced: int = 0


def detect_bom(data: bytes) -> tuple[str, str] | None:
    """Return ``(bom name, codec)`` when ``data`` opens with a byte-order mark."""
    for mark, name, codec in _BOMS:
        if data.startswith(mark):
            return name, codec
    return None


def decode(
    data: bytes, declared: str | None = None, *, truncated: bool = False
) -> DecodedText:
    """
    Decode ``data`` to text, detecting its encoding.

    Args:
        data: the raw bytes.
        declared: an encoding the document itself names (an XML declaration,
            an HTML meta tag). It is tried after a BOM and UTF-8 and kept only
            if it decodes the bytes strictly, since declarations lie.
        truncated: ``data`` is the head of a longer stream (the sniffer's
            sample), so a character cut at the end is not an error.

    Never raises for bad bytes: when no candidate decodes strictly, the
    undecodable bytes become U+FFFD and ``confident`` is False.
    """
    if truncated:
        data = _trim_partial_utf8(data)
    bom = detect_bom(data)
    if bom is not None:
        name, codec = bom
        text = _decode_lenient(data, codec, truncated)
        return DecodedText(_drop_bom(text), name, bom=name)

    sample = data[:DETECTION_SAMPLE_BYTES]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    else:
        if b"\x00" not in sample and b"\x1b" not in sample:
            return DecodedText(text, "utf-8")
        special = _iso2022(data) if b"\x1b" in sample else None
        if special is not None:
            return special
        wide = _utf16_32_without_bom(sample) if b"\x00" in sample else None
        if wide is None:
            return DecodedText(text, "utf-8")
        return DecodedText(_decode_lenient(data, wide, truncated), wide)

    wide = _utf16_32_without_bom(sample)
    if wide is not None:
        return DecodedText(_decode_lenient(data, wide, truncated), wide)
    stray = _utf8_with_strays(data)
    if stray is not None:
        return stray
    if declared:
        declared_codec = codec_name(declared)
        if declared_codec and not declared_codec.startswith(("utf-16", "utf-32")):
            try:
                return DecodedText(data.decode(declared_codec), declared_codec)
            except UnicodeDecodeError:
                pass
    return _detect(data, truncated)


def codec_name(label: str) -> str | None:
    """Python's codec name for an encoding label, or None if Python has none."""
    label = label.strip().strip("\"'").lower()
    # Web labels that Python spells differently or maps to a narrower codec;
    # browsers read all of these as the wider Windows or GB encoding.
    label = {
        "unicode": "utf-16",
        "x-sjis": "cp932",
        "gb2312": "gb18030",
        "gbk": "gb18030",
        "iso-8859-1": "cp1252",
        "latin1": "cp1252",
        "us-ascii": "cp1252",
        "ascii": "cp1252",
    }.get(label, label)
    try:
        name = codecs.lookup(label).name
    except LookupError:
        return None
    # Spelled as charset-normalizer and the ``encodings`` package spell it
    # (koi8_r, iso8859_7), so a name means one thing whichever step found it.
    return name if name.startswith("utf") else name.replace("-", "_")


# Python's names that no web client knows, as the label an HTTP charset
# parameter takes (the WHATWG Encoding Standard's, which follows IANA).
_CHARSET_LABELS = {
    "utf-16-le": "utf-16le",
    "utf-16-be": "utf-16be",
    "utf-32-le": "utf-32le",
    "utf-32-be": "utf-32be",
    "utf-8-sig": "utf-8",
    "cp932": "windows-31j",
    "cp936": "gbk",
    "cp949": "euc-kr",
    "cp866": "ibm866",
    "mac_cyrillic": "x-mac-cyrillic",
    "mac_roman": "macintosh",
    "shift_jis": "shift_jis",
    "iso2022_jp": "iso-2022-jp",
    "iso2022_kr": "iso-2022-kr",
}
_CODE_PAGE = re.compile(r"cp(125\d)")
_ISO_8859 = re.compile(r"iso8859_(\d+)")
_LABEL = re.compile(r"[a-z0-9][a-z0-9._-]*")


def charset_label(name: str) -> str | None:
    """
    The HTTP ``charset`` for a codec name ``codec_name`` gave (``koi8_r``
    becomes ``koi8-r``, ``cp932`` ``windows-31j``), or None for no name.
    """
    name = name.lower()
    if name in _CHARSET_LABELS:
        return _CHARSET_LABELS[name]
    if match := _CODE_PAGE.fullmatch(name):
        return f"windows-{match.group(1)}"
    if match := _ISO_8859.fullmatch(name):
        return f"iso-8859-{match.group(1)}"
    if name.startswith("cp") and name[2:].isdigit():
        return f"ibm{name[2:]}"
    label = name.replace("_", "-")
    return label if _LABEL.fullmatch(label) else None


def _drop_bom(text: str) -> str:
    return text[1:] if text.startswith("\ufeff") else text


def _decode_lenient(data: bytes, codec: str, truncated: bool) -> str:
    if truncated:
        # The last code unit may be cut; an incremental decoder holds it back
        # instead of turning it into U+FFFD.
        decoder = codecs.getincrementaldecoder(codec)(errors="replace")
        return str(decoder.decode(data, final=False))
    return data.decode(codec, errors="replace")


def _trim_partial_utf8(data: bytes) -> bytes:
    # Drop an incomplete UTF-8 sequence at the very end: at most three bytes,
    # all continuation bytes after one lead byte.
    for back in range(1, min(4, len(data)) + 1):
        byte = data[-back]
        if byte < 0x80:
            return data
        if byte >= 0xC0:
            needed = 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4
            return data[:-back] if needed > back else data
    return data


def _utf8_with_strays(data: bytes) -> DecodedText | None:
    """
    ``data`` as UTF-8 with U+FFFD for a few stray bytes, when it is that.

    One Latin-1 byte pasted into a UTF-8 file fails the strict decode, and
    detection then reads the whole file as some single-byte code page:
    every correct character turns to mojibake, with no warning. When the
    characters past ASCII that do decode as UTF-8 outnumber the sequences
    that do not tenfold, the file is UTF-8 and the strays are damage. A
    legacy text almost never holds valid UTF-8 sequences at that rate: in a
    Latin code page an accented letter is one byte followed by ASCII, and
    CJK double-byte codes form a valid UTF-8 pair a tenth of the time.
    """
    if len(data) > DETECTION_SAMPLE_BYTES:
        # A legacy text fails on its head already: a large one is not
        # decoded whole for nothing before detection.
        head = _trim_partial_utf8(data[:DETECTION_SAMPLE_BYTES])
        marks, valid = _strays(head.decode("utf-8", errors="replace"), head)
        if valid < _STRAY_RATIO * marks:
            return None
    text = data.decode("utf-8", errors="replace")
    marks, valid = _strays(text, data)
    if marks <= 0 or valid < _STRAY_RATIO * marks:
        return None
    return DecodedText(text, "utf-8", confident=False, replaced=marks)


def _strays(text: str, data: bytes) -> tuple[int, int]:
    # The U+FFFD the decode made (not those the bytes hold), and the
    # characters past ASCII that decoded.
    marks = text.count("\ufffd") - data.count(b"\xef\xbf\xbd")
    non_ascii = len(text) - len(text.encode("ascii", "ignore"))
    return marks, non_ascii - marks


def _iso2022(data: bytes) -> DecodedText | None:
    head = data[:DETECTION_SAMPLE_BYTES]
    for pattern, family in _ISO2022:
        if not pattern.search(head):
            continue
        candidates = (
            _ISO2022_JP_FAMILY if family.startswith("iso2022_jp") else (family,)
        )
        for codec in candidates:
            try:
                return DecodedText(data.decode(codec), codec)
            except UnicodeDecodeError:
                continue
    return None


def _utf16_32_without_bom(sample: bytes) -> str | None:
    # Text in UTF-16/32 without a mark shows as a regular pattern of NUL bytes;
    # no single-byte or UTF-8 text contains NULs, so the pattern is decisive.
    if len(sample) < 4 or b"\x00" not in sample:
        return None
    sample = sample[: len(sample) - len(sample) % 4]
    quarter = len(sample) // 4
    firsts, seconds = sample[0::4].count(0), sample[1::4].count(0)
    thirds, fourths = sample[2::4].count(0), sample[3::4].count(0)
    # UTF-32 keeps its top byte zero and, outside the astral planes, the next
    # one too; the lowest byte carries the letter.
    if fourths == quarter and thirds >= 0.9 * quarter and firsts < 0.5 * quarter:
        return "utf-32-le"
    if firsts == quarter and seconds >= 0.9 * quarter and fourths < 0.5 * quarter:
        return "utf-32-be"
    even_nuls = firsts + thirds
    odd_nuls = seconds + fourths
    half = len(sample) // 2
    if odd_nuls > 0.4 * half and even_nuls < 0.05 * half:
        return "utf-16-le"
    if even_nuls > 0.4 * half and odd_nuls < 0.05 * half:
        return "utf-16-be"
    return None


def _detect(data: bytes, truncated: bool) -> DecodedText:
    sample = data[:DETECTION_SAMPLE_BYTES]
    if len(data) > len(sample):
        # A sample cut mid-character must not make the right codec look
        # wrong; multi-byte codecs need at most four bytes per character.
        sample = sample[:-4]
    encoding = _charset_guess(sample).encoding
    if encoding is None:
        text = data.decode("utf-8", errors="replace")
        return DecodedText(text, "utf-8", confident=False)

    try:
        return DecodedText(data.decode(encoding), encoding)
    except UnicodeDecodeError:
        if truncated:
            return DecodedText(_decode_lenient(data, encoding, True), encoding)
        text = data.decode(encoding, errors="replace")
        return DecodedText(text, encoding, confident=False)


def _prefer(matches: CharsetMatches, sample: bytes) -> str:
    # charset-normalizer ranks by chaos (how broken the text looks), then
    # coherence (how much it reads like a language); on short texts both are
    # noisy, and French in cp1252 can score a little messier than in Mac
    # Latin 2. Codecs people actually use therefore get a head start on
    # chaos; the most coherent of the cleanest wins, and the commoner codec
    # breaks a remaining tie. ``could_be_from_charset`` lists codecs that give
    # exactly the same text, so they share their match's scores. Between
    # Latin code pages neither score tells much (see ``_latin_reading``).
    scored: dict[str, tuple[float, float]] = {}
    for match in matches:
        for encoding in [match.encoding, *match.could_be_from_charset]:
            bonus = _COMMON_BONUS if encoding in _PREFERRED else 0.0
            scored.setdefault(encoding, (match.chaos - bonus, match.coherence))
    cleanest = min(chaos for chaos, _ in scored.values())
    clean = {
        encoding: coherence
        for encoding, (chaos, coherence) in scored.items()
        if chaos <= cleanest + _CHAOS_TIE
    }
    top = max(clean.values())
    tied = [
        encoding
        for encoding, coherence in clean.items()
        if coherence >= top - _COHERENCE_TIE
    ]
    choice = min(tied, key=_rank)
    return _latin_reading(choice, list(scored), sample)


def _rank(encoding: str) -> int:
    try:
        return _PREFERRED.index(encoding)
    except ValueError:
        return len(_PREFERRED)


def _latin_reading(choice: str, candidates: list[str], sample: bytes) -> str:
    """
    The Latin code page whose accented letters best spell a language.

    Chaos and coherence barely tell Latin code pages apart: they read the
    same bytes as ASCII and differ only in the accented letters, a few in a
    hundred, so charset-normalizer scores French read as Baltic (cp1257) as
    cleaner than French, and Czech as no more coherent read as Czech than
    read as Western. What does tell them apart is whether those letters are
    the alphabet of a language. When ``choice`` reads the sample as Latin
    letters, a candidate that reads it as Latin letters too replaces it if
    it spells more of them in one language, and also more line by line,
    each line in its own language: a phrase book or a notice in five
    languages spells little in any one, and its own code page must not lose
    to one whose letters happen to be Slovak. On a tie the commoner code
    page wins, so a regional one needs letters only its region writes to
    beat cp1252.
    """
    page = _code_page(choice)
    marked = sample.translate(None, _ASCII_BUT_NEWLINE)
    if page is None:
        return choice
    # Asked before anything is counted: Cyrillic or Greek text is nearly all
    # bytes past ASCII. A page that reads them as no letters at all may give
    # way to a commoner one that reads them as a language's.
    if not _mostly_latin(page, marked):
        return choice if _reads_letters(page, marked) else _lettered(choice, marked)
    lines, high = _letters(marked)
    best, best_whole = choice, (_spelled(page, high.items()), -_rank(choice))
    best_lines: tuple[int, int] | None = None
    # Code pages that read the letters alike (cp1250 and ISO 8859-2 often
    # do) spell alike.
    by_reading: dict[tuple[int, ...], int] = {}
    for codec in candidates:
        rival = _code_page(codec)
        # A reading spells no more letters than it has letters of some
        # language, so most candidates are ruled out before being scored.
        if rival is None or (_explicable(rival, high), -_rank(codec)) <= best_whole:
            continue
        whole = (_spelled(rival, high.items()), -_rank(codec))
        if whole <= best_whole or not _mostly_latin(rival, marked):
            continue
        if best_lines is None:
            best_lines = (_spelled_by_line(_code_page(best), lines), -_rank(best))
        reading = tuple(rival.languages[byte - 0x80] for byte in high)
        if reading not in by_reading:
            by_reading[reading] = _spelled_by_line(rival, lines)
        by_line = (by_reading[reading], -_rank(codec))
        if by_line > best_lines:
            best, best_whole, best_lines = codec, whole, by_line
    # No letter of any alphabet either way: nothing to overrule with.
    return best if best_whole[0] > 0 else choice


def _mostly_latin(page: _CodePage, marked: bytes) -> bool:
    # More Latin letters than letters of other scripts; a text whose only
    # bytes past ASCII are dashes and quotes is no contest.
    latin = len(marked) - len(marked.translate(None, page.latin))
    return latin > len(marked) - len(marked.translate(None, page.other))


def _reads_letters(page: _CodePage, marked: bytes) -> bool:
    return len(marked.translate(None, page.latin + page.other)) < len(marked)


def _lettered(choice: str, marked: bytes) -> str:
    """
    A commoner code page that reads as letters what ``choice`` reads as symbols.

    Finnish doubles its vowels, and charset-normalizer takes "ää" in cp1252
    for mojibake (two accented letters in a row), so a short Finnish text
    came out as Mac Icelandic: "Hyv‰‰ p‰iv‰‰". A code page ahead of
    ``choice`` in ``_PREFERRED`` wins when it reads every byte past ASCII as
    a letter of one language, lower case more often than not. Only a
    commoner one may: a cp1252 text whose only such bytes are dashes and
    quotes reads as letters in some rarer page (cp850 makes "…" an "à"),
    and the lower-case rule keeps Mac Roman's quotes and apostrophe, which
    are cp1252's capitals Ò, Ó and Õ, from passing for Portuguese.
    """
    counts = Counter(marked.translate(None, b"\n"))
    for codec in _PREFERRED[: _rank(choice)]:
        rival = _code_page(codec)
        if rival is None:
            continue
        common = -1
        for byte in counts:
            common &= rival.languages[byte - 0x80]
        if not common:
            continue
        reading = bytes(counts).decode(codec, errors="replace")
        lower = sum(
            count
            for char, count in zip(reading, counts.values(), strict=True)
            if char.islower()
        )
        if 2 * lower > sum(counts.values()):
            return codec
    return choice


def _letters(marked: bytes) -> tuple[Counter[bytes], Counter[int]]:
    # The first _LETTER_BYTES bytes past ASCII, by line (and how many lines
    # have the same) and in all.
    taken: list[bytes] = []
    left = _LETTER_BYTES
    for line in marked.split(b"\n"):
        if line:
            taken.append(line[:left])
            left -= len(taken[-1])
            if not left:
                break
    return Counter(taken), Counter(b"".join(taken))


def _explicable(page: _CodePage, high: Counter[int]) -> int:
    return sum(count for byte, count in high.items() if page.languages[byte - 0x80])


def _spelled_by_line(page: _CodePage | None, lines: Counter[bytes]) -> int:
    if page is None:
        return 0
    return sum(
        repeats * _spelled(page, zip(line, repeat(1)))
        for line, repeats in lines.items()
    )


def _spelled(page: _CodePage, letters: Iterable[tuple[int, int]]) -> int:
    # Of bytes given as (byte, how many times), how many ``page`` reads as
    # letters of the one language that writes most of them.
    common, either, written, tally = -1, 0, 0, 0
    for byte, count in letters:
        languages = page.languages[byte - 0x80]
        if languages:
            common &= languages
            either |= languages
            written += count
            tally += page.tallies[byte - 0x80] * count
    if common:
        # One language writes all of them (the usual case).
        return written
    most = 0
    while either:
        language = either.bit_length() - 1
        most = max(most, tally >> language * _TALLY_BITS & _TALLY_MASK)
        either ^= 1 << language
    return most


class _CodePage(NamedTuple):
    """
    A single-byte code page's bytes from 0x80 up, as letters.

    ``languages`` has the bits of the languages of ``_ALPHABETS`` that write
    each (0 for none), ``tallies`` the same spread one field of
    ``_TALLY_BITS`` per language, so that adding them counts the letters of
    every language at once; ``latin`` and ``other`` are the bytes that are
    Latin letters and letters of other scripts.
    """

    languages: tuple[int, ...]
    tallies: tuple[int, ...]
    latin: bytes
    other: bytes


@lru_cache(maxsize=1)
def _language_bits() -> dict[str, int]:
    """Each letter of _ALPHABETS as a set of bits, one bit per language using it."""
    # Made on the first detection, not at import: `docmill extract` of a
    # UTF-8 file never needs it, and its start-up is measured.
    return {
        letter: sum(
            1 << index
            for index, letters in enumerate(_ALPHABETS.values())
            if letter in letters
        )
        for letter in "".join(_ALPHABETS.values())
    }


@lru_cache(maxsize=128)
def _code_page(codec: str) -> _CodePage | None:
    # None for a codec that reads these bytes in pairs or not at all.
    import unicodedata

    high = bytes(range(0x80, 0x100))
    try:
        whole = high.decode(codec, errors="replace")
    except LookupError:
        return None
    alone = [
        high[index : index + 1].decode(codec, errors="replace") for index in range(128)
    ]
    if "".join(alone) != whole:
        return None
    # Modifier letters (Mac Roman's circumflex accent) spell no word.
    letters = {
        char for char in alone if char.isalpha() and unicodedata.category(char) != "Lm"
    }
    latin = {
        char for char in letters if unicodedata.name(char, "").startswith("LATIN ")
    }
    bits = _language_bits()
    languages = tuple(bits.get(char.lower(), 0) for char in alone)
    return _CodePage(
        languages=languages,
        tallies=tuple(map(_tally, languages)),
        latin=bytes(0x80 + index for index, char in enumerate(alone) if char in latin),
        other=bytes(
            0x80 + index
            for index, char in enumerate(alone)
            if char in letters and char not in latin
        ),
    )


def _tally(languages: int) -> int:
    """
    The bits of ``languages`` spread one ``_TALLY_BITS`` field apart.

    Only the languages set are visited: testing all of them for each byte
    was most of a code page's first reading, 2.5 ms, paid in every new
    worker process by the first text in each code page.
    """
    tally = 0
    while languages:
        language = languages.bit_length() - 1
        tally |= 1 << language * _TALLY_BITS
        languages ^= 1 << language
    return tally


def looks_like_text(data: bytes) -> bool:
    """
    Whether a sample of bytes is plausibly text in some encoding.

    Used by the sniffer to tell text from unknown binary formats: control
    bytes other than whitespace and ESC are rare in any real text encoding.
    The sample is ``data`` as the sniffer's ``decode(head, truncated=True)``
    sees it, so a text needing detection is scored once for both questions.
    """
    if not data:
        return False
    sample = _trim_partial_utf8(data[:DETECTION_SAMPLE_BYTES])
    if detect_bom(sample) or _utf16_32_without_bom(sample):
        return True
    # A NUL in UTF-8 text is damage, which the extracted text drops; a
    # binary format that happens to be valid UTF-8 (a tar header) holds NULs
    # and other control bytes by the dozen.
    nul = b"\x00" in sample
    if nul and (
        sample.startswith(_CPIO_MAGIC)
        or _controls(sample) > max(len(sample) * _CONTROL_SHARE, _STRAY_CONTROLS)
        or not sample.translate(None, _CONTROL_BYTES).strip()
    ):
        return False
    try:
        sample.decode("utf-8")
    except UnicodeDecodeError:
        pass
    else:
        return True
    # No legacy encoding writes a NUL either, and detection cannot weigh one.
    if nul or _controls(sample) > len(sample) * _CONTROL_SHARE:
        return False
    if _utf8_with_strays(sample) is not None:
        return True
    chaos = _charset_guess(sample).chaos
    return chaos is not None and chaos < 0.3


def _controls(sample: bytes) -> int:
    return len(sample) - len(sample.translate(None, _CONTROL_BYTES))


class _Guess(NamedTuple):
    """charset-normalizer's verdict on a sample: the codec docmill picks
    among its matches and the chaos of its best match (None: no match)."""

    encoding: str | None
    chaos: float | None


@lru_cache(maxsize=4)
def _charset_guess(sample: bytes) -> _Guess:
    # charset-normalizer costs 1-10 ms a sample, and one document asks about
    # the same bytes up to three times: is the sniffer's head text, how does
    # it decode, how does the whole (often the head itself) decode. The
    # answer depends on the bytes alone, so the last few are kept, until the
    # pipeline starts on the next document (``forget_detections``); the
    # choice among the matches is kept with them, since reading every
    # match's scores costs a few tenths of a millisecond too.
    from charset_normalizer import from_bytes

    matches = from_bytes(_whole_chunks(sample), cp_exclusion=_skipped_codecs(sample))
    best = matches.best()
    if best is None:
        return _Guess(None, None)
    return _Guess(_prefer(matches, sample), best.chaos)


def _whole_chunks(sample: bytes) -> bytes:
    """
    ``sample`` cut so that charset-normalizer reads it in whole chunks.

    charset-normalizer scores a sample longer than its five 512-byte chunks
    by a chunk at each fifth of it, and a length that is no multiple of five
    adds a sixth offset whose "chunk" is the last one to four bytes. Such a
    fragment ("ς.", "«") often scores as chaos 0.5 or 1.0 and counts as much
    as a whole chunk: with one chunk that looks messy early on (its estimate
    is taken at the first step past the threshold), the right code page gives
    up twice and drops out; Greek in cp1253 came out as Mac Greek that way.
    The cut falls just after a whitespace byte, which no multi-byte encoding
    uses inside a character, so no codec fails on a character cut in two.
    """
    excess = len(sample) % _CHUNKS
    if not excess or len(sample) <= _CHUNKS * _CHUNK_BYTES:
        return sample
    end = len(sample) - excess
    for cut in range(end, max(end - _CUT_SEARCH_BYTES, 0), -_CHUNKS):
        if sample[cut - 1] in _WHITESPACE:
            return sample[:cut]
    return sample


def _skipped_codecs(sample: bytes) -> list[str] | None:
    """
    ASCII and UTF-8 for a single-byte text of another script, else None.

    Once it has tried those two, charset-normalizer stops scoring code pages
    of other language families as soon as one reads the sample with a
    coherence of 0.5, and it tries them in alphabetical order: Greek in
    cp1253 read as cp1251 often passes for Bulgarian at 0.55, and cp1253 was
    then never scored. Left out, two codecs that could not match (the
    sample is neither) leave that shortcut unarmed, and every code page is
    scored. A Latin text keeps it: its few letters past ASCII make no other
    script coherent, and scoring every Latin code page made its detection
    four times as slow. So does CJK text, which decodes as a double-byte
    codec: those are scored first, and a strong match rightly spares the
    single-byte ones.
    """
    if len(sample.translate(None, _PAST_ASCII)) > len(sample) * (1 - _OTHER_SCRIPT):
        return None
    for codec in ("utf-8", *_DOUBLE_BYTE):
        try:
            sample.decode(codec)
        except UnicodeDecodeError:
            continue
        return None
    return ["ascii", "utf_8"]


def forget_detections() -> None:
    """
    Drop the encodings detected so far.

    Called once per top-level document: the cache is there to spare one
    document repeated work, and a document read twice (a retry, a benchmark's
    warm-up) must pay for its detection both times.
    """
    _charset_guess.cache_clear()
