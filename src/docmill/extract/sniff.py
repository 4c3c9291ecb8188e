"""
Deciding a document's format from its bytes.

Binary formats are known by their magic numbers; ZIP containers by the parts
inside them (``mimetype`` for ODF and EPUB, ``[Content_Types].xml`` for
OOXML); OLE files by the streams they name. Text is decoded first and then
classified by its shape (markup, JSON, mail headers, delimited rows). The
file name is never trusted for binary formats; among text formats it only
breaks a tie (a ``.md`` file of plain prose stays Markdown).
"""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path
from typing import IO, NamedTuple

from docmill.extract import mime
from docmill.extract.base import Source, open_source
from docmill.extract.charsets import reads_as_declared
from docmill.extract.jsondoc import remember_json
from docmill.extract.textcodec import decode, looks_like_text
from docmill.extract.zipread import ZipArchive, read_member

HEAD_BYTES = 8192
_TYPES_CAP = 1024 * 1024

_OOXML_MAIN_TYPES = {
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml": mime.DOCX,  # noqa: E501
    "application/vnd.ms-word.document.macroEnabled.main+xml": mime.DOCX,
    "application/vnd.ms-word.template.macroEnabledTemplate.main+xml": mime.DOCX,
    "application/vnd.openxmlformats-officedocument.wordprocessingml.template.main+xml": mime.DOCX,  # noqa: E501
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml": mime.XLSX,  # noqa: E501
    "application/vnd.ms-excel.sheet.macroEnabled.main+xml": mime.XLSM,
    "application/vnd.openxmlformats-officedocument.spreadsheetml.template.main+xml": mime.XLSX,  # noqa: E501
    "application/vnd.openxmlformats-officedocument.presentationml.presentation.main+xml": mime.PPTX,  # noqa: E501
    "application/vnd.ms-powerpoint.presentation.macroEnabled.main+xml": mime.PPTX,
    "application/vnd.openxmlformats-officedocument.presentationml.slideshow.main+xml": mime.PPTX,  # noqa: E501
}
_ODF_TYPES = {
    mime.ODT: mime.ODT,
    mime.ODS: mime.ODS,
    mime.ODP: mime.ODP,
    mime.EPUB: mime.EPUB,
}
# Strict OOXML and files whose [Content_Types].xml is missing are still
# recognisable by the main part's conventional name.
_OOXML_MAIN_PARTS = (
    ("word/document.xml", mime.DOCX),
    ("xl/workbook.xml", mime.XLSX),
    ("ppt/presentation.xml", mime.PPTX),
)
# A header line: a field name of printable ASCII without a colon (RFC 5322
# section 2.2), a colon, then anything; mail stores add headers with no space
# after the colon (Thunderbird's "x-store-info:").
_HEADER_LINE = re.compile(r"^[!-9;-~]+:")
_MAIL_FIELDS = frozenset(
    {
        "received",
        "return-path",
        "from",
        "to",
        "cc",
        "subject",
        "date",
        "message-id",
        "mime-version",
        "delivered-to",
        "reply-to",
        "sender",
        "content-type",
        "in-reply-to",
        "references",
    }
)
# Fields that only mail carries; "to", "date" or "subject" alone could as well
# be a YAML file or a memo.
_MAIL_ONLY_FIELDS = frozenset(
    {"received", "return-path", "from", "message-id", "mime-version", "delivered-to"}
)
_HTML_START = re.compile(
    r"^\s*(?:<!--.*?-->\s*)*(?:<!doctype\s+html|<html[\s>]|<head[\s>]|<body[\s>]"
    r"|<meta[\s>]|<title[\s>]|<div[\s>]|<p[\s>]|<table[\s>])",
    re.IGNORECASE | re.DOTALL,
)
_XHTML_ROOT = re.compile(r"<html[\s>]", re.IGNORECASE)
# A Markdown block marker at the start of a line, found by the line break
# before it: a pattern opening with "^" under MULTILINE is tried at every
# character of the sample, one opening with a literal "\n" jumps from break
# to break (a third of the sniffing time of a small text, spent on "^").
_MARKDOWN_LINE = re.compile(r"\n(?:#{1,6} |[-*+] |\d+\. |```|> )")
# A sentence's last letters: a full stop, question or exclamation mark or
# ellipsis, maybe inside closing quotes or brackets.
_SENTENCE_END = re.compile(r"[.!?\u2026][\"')\]\u00bb\u201d\u2019]*\s*$")
_JSON_START = re.compile(r'[{\[]\s*(?:"|\{|\[|\]|\}|-?\d|true|false|null)')
_EXTENSION_HINTS = {
    ".md": mime.MARKDOWN,
    ".markdown": mime.MARKDOWN,
    ".csv": mime.CSV,
    ".tsv": mime.TSV,
    ".tab": mime.TSV,
}


def sniff(source: Source, name: str | None = None) -> str:
    """
    Return the media type of ``source``, judged from its bytes.

    Returns ``application/octet-stream`` for bytes docmill does not read;
    an empty source returns ``application/x-empty``.
    """
    found = sniff_open(source, name)
    if found.archive is not None:
        found.archive.close()
    return found.media_type


class Sniffed(NamedTuple):
    """
    A media type and what was opened to find it.

    ``archive`` is the open zip of a zip-based document, for its extractor to
    go on reading instead of parsing the central directory again; whoever
    holds it closes it.
    """

    media_type: str
    archive: zipfile.ZipFile | None = None
    # A text document's bytes, when the head the sniffer read held all of
    # them: the extractor need not read the file again.
    data: bytes | None = None


def sniff_open(
    source: Source, name: str | None = None, charset: str | None = None
) -> Sniffed:
    """
    ``sniff``, keeping a zip-based document's archive open; bytes that fail
    the text test but read as text in the declared ``charset`` are text.
    """
    stream = open_source(source)
    try:
        head = stream.read(HEAD_BYTES)
    except BaseException:
        stream.close()
        raise
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")) and b"%PDF-" not in head[:1024]:
        # The archive goes on reading the file already open, and owns it.
        return _sniff_zip(stream)
    stream.close()
    if not head:
        return Sniffed("application/x-empty")
    binary = _sniff_binary(head)
    if binary is not None:
        return Sniffed(binary)
    if not looks_like_text(head) and not reads_as_declared(head, charset):
        return Sniffed("application/octet-stream")
    whole = head if len(head) < HEAD_BYTES else None
    return Sniffed(_sniff_text(head, name), data=whole)


def _sniff_binary(head: bytes) -> str | None:
    # PDF readers accept the header anywhere in the first kilobyte.
    if b"%PDF-" in head[:1024]:
        return mime.PDF
    if head.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"):
        return mime.OLE
    if head.lstrip()[:5] == b"{\\rtf":
        return mime.RTF
    return None


def _sniff_zip(stream: IO[bytes]) -> Sniffed:
    archive = None
    try:
        archive = ZipArchive.owning(stream)
        return Sniffed(_zip_media_type(archive), archive)
    except (zipfile.BadZipFile, OSError, EOFError, KeyError, ValueError):
        # A damaged central directory: still a ZIP as far as the bytes go; the
        # archive extractor reports exactly what is wrong with it.
        if archive is not None:
            archive.close()
        else:
            stream.close()
        return Sniffed(mime.ZIP)


def _zip_media_type(archive: ZipArchive) -> str:
    # Looked up by name: NameToInfo would build every member's ZipInfo.
    has = archive.has
    if has("mimetype"):
        declared = _read(archive, archive.getinfo("mimetype"))[:100]
        found = _ODF_TYPES.get(declared.decode("ascii", "replace").strip())
        if found:
            return found
    if has("[Content_Types].xml"):
        info = archive.getinfo("[Content_Types].xml")
        if info.file_size < _TYPES_CAP:
            types = _read(archive, info).decode("utf-8", "replace")
            for content_type, media_type in _OOXML_MAIN_TYPES.items():
                if content_type in types:
                    return media_type
    for part, media_type in _OOXML_MAIN_PARTS:
        if has(part):
            return media_type
    return mime.ZIP


def _read(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    # ZipFile.read costs tens of microseconds in stream objects; the fast
    # path reads small members whole. A member past the cap, or one it will
    # not read, is read by zipfile as before.
    data = read_member(archive, info, _TYPES_CAP)
    if data is None or len(data) >= _TYPES_CAP:
        data = archive.read(info)
    return data


def _sniff_text(head: bytes, name: str | None) -> str:
    text = decode(head, truncated=True).text
    stripped = text.lstrip()
    if _HTML_START.match(stripped):
        return mime.HTML
    if stripped.startswith("<?xml") or (
        stripped.startswith("<") and not stripped.startswith("<<")
    ):
        return mime.HTML if _XHTML_ROOT.search(stripped[:2048]) else mime.XML
    if stripped[:1] in ("{", "[") and _is_json_prefix(text, stripped, head):
        return mime.JSON
    if _looks_like_mail(text):
        return mime.EMAIL
    hint = _EXTENSION_HINTS.get(_suffix(name)) if name else None
    if hint is not None:
        return hint
    if _looks_delimited(text):
        return mime.CSV
    if _markdown_lines(text[:4096]) >= 2:
        return mime.MARKDOWN
    return mime.TEXT


def _suffix(name: str) -> str:
    # What Path(name).suffix.lower() gives, without building a Path (a tenth
    # of the sniffing time of a small text) for the usual bare file name.
    if "/" in name:
        return Path(name).suffix.lower()
    dot = name.rfind(".")
    if dot <= 0 or dot == len(name) - 1:
        return ""
    return name[dot:].lower()


def _is_json_prefix(text: str, stripped: str, head: bytes) -> bool:
    # The head may cut a large document short; a complete parse is only
    # possible when the head holds everything, otherwise trust the shape.
    if len(head) < HEAD_BYTES:
        try:
            document = json.loads(stripped)
        except ValueError:
            return False
        except RecursionError:
            # Too deep to parse, so too deep to check: the JSON extractor
            # refuses it, saying so, as it does a large file.
            return True
        # json.loads itself skips only JSON's whitespace; text led by other
        # spaces (no-break, em) must fail in the extractor as before.
        if not text[: len(text) - len(stripped)].strip(" \t\n\r"):
            remember_json(text, document)
        return True
    return bool(_JSON_START.match(stripped))


def _looks_like_mail(text: str) -> bool:
    # A header block: header lines and folded continuations up to the first
    # blank line (or the end of the head, for very long blocks), naming at
    # least two mail fields, one of them a field only mail has.
    if not _HEADER_LINE.match(text):
        # The first line is no header (or is blank): settled before
        # splitting the whole head into lines, as most texts are.
        return False
    fields: set[str] = set()
    lines = text.splitlines()
    for index, line in enumerate(lines[:200]):
        if not line.strip():
            break
        if line[:1] in (" ", "\t") and index > 0:
            continue
        if not _HEADER_LINE.match(line):
            return False
        fields.add(line.split(":", 1)[0].lower())
    known = fields & _MAIL_FIELDS
    return len(known) >= 2 and bool(known & _MAIL_ONLY_FIELDS)


def _markdown_lines(text: str) -> int:
    """How many lines of ``text`` open with a Markdown block marker."""
    # The "\n" put in front stands for the start of the text, where "^"
    # matched too; no marker holds a line break, so none is lost to the
    # break a match consumes.
    return len(_MARKDOWN_LINE.findall("\n" + text))


def _looks_delimited(text: str) -> bool:
    lines = list(filter(str.strip, text.splitlines()[:50]))
    if len(lines) < 2:
        return False
    if len(lines) == 50 or len(text) >= HEAD_BYTES - 4:
        lines = lines[:-1]  # the last line may be cut short
    first, rest = lines[0], lines[1:]
    for delimiter in (",", ";", "\t", "|"):
        # Every line splits into the same number of fields, more than one;
        # the first line that disagrees settles it (prose fails at once).
        wanted = first.count(delimiter)
        if not wanted or any(line.count(delimiter) != wanted for line in rest):
            continue
        if wanted > 1 or delimiter in "\t|" or not _prose(lines, delimiter):
            return True
    return False


def _prose(lines: list[str], delimiter: str) -> bool:
    """
    Whether lines of two fields split by a comma or semicolon are sentences.

    Prose with one comma a line passed for a two-column CSV. A line reads
    as a sentence when it ends like one, holds words on both sides of its
    comma, and a space follows the comma as prose writes it: a CSV's
    comment column ends with a full stop too ("Mary,Too expensive."), but
    its first field is rarely two words, and where it is (a file of quotes,
    "Mark Twain,The secret of getting ahead is getting started.", or of
    sentence pairs) a program wrote it, with nothing after the comma.
    Most lines must read so; tabs and pipes are no prose punctuation.
    """
    sentences = 0
    for line in lines:
        before, _, after = line.partition(delimiter)
        if (
            _SENTENCE_END.search(line)
            and after[:1].isspace()
            and " " in before.strip()
            and " " in after.strip()
        ):
            sentences += 1
    return 2 * sentences > len(lines)
