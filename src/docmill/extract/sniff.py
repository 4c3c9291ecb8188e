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

from docmill.extract import mime
from docmill.extract.base import Source, open_source
from docmill.extract.textcodec import decode, looks_like_text

HEAD_BYTES = 8192

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
_MAIL_HEADER = re.compile(
    rb"^(?:Received|Return-Path|From|To|Subject|Date|Message-ID|MIME-Version|"
    rb"Delivered-To|X-[A-Za-z0-9-]+|Content-Type):[ \t]",
    re.IGNORECASE,
)
_HTML_START = re.compile(
    r"^\s*(?:<!--.*?-->\s*)*(?:<!doctype\s+html|<html[\s>]|<head[\s>]|<body[\s>]"
    r"|<meta[\s>]|<title[\s>]|<div[\s>]|<p[\s>]|<table[\s>])",
    re.IGNORECASE | re.DOTALL,
)
_XHTML_ROOT = re.compile(r"<html[\s>]", re.IGNORECASE)
_MARKDOWN_LINE = re.compile(r"^(?:#{1,6} |[-*+] |\d+\. |```|> )", re.MULTILINE)
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
    with open_source(source) as stream:
        head = stream.read(HEAD_BYTES)
    if not head:
        return "application/x-empty"

    binary = _sniff_binary(source, head)
    if binary is not None:
        return binary
    if not looks_like_text(head):
        return "application/octet-stream"
    return _sniff_text(head, name)


def _sniff_binary(source: Source, head: bytes) -> str | None:
    # PDF readers accept the header anywhere in the first kilobyte.
    if b"%PDF-" in head[:1024]:
        return mime.PDF
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return _sniff_zip(source)
    if head.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"):
        return mime.OLE
    if head.lstrip()[:5] == b"{\\rtf":
        return mime.RTF
    return None


def _sniff_zip(source: Source) -> str:
    try:
        with open_source(source) as stream, zipfile.ZipFile(stream) as archive:
            names = set(archive.namelist())
            if "mimetype" in names:
                declared = archive.read("mimetype")[:100].decode("ascii", "replace")
                found = _ODF_TYPES.get(declared.strip())
                if found:
                    return found
            if "[Content_Types].xml" in names:
                info = archive.getinfo("[Content_Types].xml")
                if info.file_size < 1024 * 1024:
                    types = archive.read(info).decode("utf-8", "replace")
                    for content_type, media_type in _OOXML_MAIN_TYPES.items():
                        if content_type in types:
                            return media_type
            for part, media_type in _OOXML_MAIN_PARTS:
                if part in names:
                    return media_type
    except (zipfile.BadZipFile, OSError, EOFError, KeyError, ValueError):
        # A damaged central directory: still a ZIP as far as the bytes go; the
        # archive extractor reports exactly what is wrong with it.
        pass
    return mime.ZIP


def _sniff_text(head: bytes, name: str | None) -> str:
    text = decode(head).text.lstrip("\ufeff")
    stripped = text.lstrip()
    if _HTML_START.match(stripped):
        return mime.HTML
    if stripped.startswith("<?xml") or (
        stripped.startswith("<") and not stripped.startswith("<<")
    ):
        return mime.HTML if _XHTML_ROOT.search(stripped[:2048]) else mime.XML
    if stripped[:1] in ("{", "[") and _is_json_prefix(stripped, head):
        return mime.JSON
    if _MAIL_HEADER.match(head.lstrip(b"\xef\xbb\xbf")) and _has_header_block(text):
        return mime.EMAIL
    hint = _EXTENSION_HINTS.get(Path(name).suffix.lower()) if name else None
    if hint is not None:
        return hint
    if _looks_delimited(text):
        return mime.CSV
    if len(_MARKDOWN_LINE.findall(text[:4096])) >= 2:
        return mime.MARKDOWN
    return mime.TEXT


def _is_json_prefix(text: str, head: bytes) -> bool:
    # The head may cut a large document short; a complete parse is only
    # possible when the head holds everything, otherwise trust the shape.
    if len(head) < HEAD_BYTES:
        try:
            json.loads(text)
        except ValueError:
            return False
        return True
    return bool(re.match(r'[{\[]\s*(?:"|\{|\[|\]|\}|-?\d|true|false|null)', text))


def _has_header_block(text: str) -> bool:
    lines = text.splitlines()
    headers = 0
    for line in lines[:60]:
        if not line.strip():
            break
        if line[:1] in (" ", "\t") or re.match(r"^[!-9;-~]+:", line):
            headers += 1
        else:
            return False
    return headers >= 2


def _looks_delimited(text: str) -> bool:
    lines = [line for line in text.splitlines()[:50] if line.strip()]
    if len(lines) < 2:
        return False
    if len(lines) == 50 or len(text) >= HEAD_BYTES - 4:
        lines = lines[:-1]  # the last line may be cut short
    for delimiter in (",", ";", "\t", "|"):
        counts = {line.count(delimiter) for line in lines}
        if len(counts) == 1 and counts.pop() >= 1:
            return True
    return False
