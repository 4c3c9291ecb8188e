"""
Which extractor reads which media type.

Modules are imported on first use, so a process that only reads PDFs never
pays for lxml or calamine, and ``docmill --help`` imports none of them.
"""

from __future__ import annotations

import importlib
from functools import cache

from docmill.exceptions import UnsupportedFormat
from docmill.extract import mime
from docmill.extract.base import Extractor

_EXTRACTORS: dict[str, str] = {
    mime.PDF: "docmill.extract.pdf:extract_pdf",
    mime.DOCX: "docmill.extract.docx:extract_docx",
    mime.PPTX: "docmill.extract.pptx:extract_pptx",
    mime.XLSX: "docmill.extract.spreadsheet:extract_spreadsheet",
    mime.XLSM: "docmill.extract.spreadsheet:extract_spreadsheet",
    mime.ODS: "docmill.extract.spreadsheet:extract_spreadsheet",
    mime.XLS: "docmill.extract.spreadsheet:extract_spreadsheet",
    mime.ODT: "docmill.extract.odf:extract_odf",
    mime.ODP: "docmill.extract.odf:extract_odf",
    mime.EPUB: "docmill.extract.epub:extract_epub",
    mime.ZIP: "docmill.extract.archive:extract_zip",
    mime.OLE: "docmill.extract.ole:extract_ole",
    mime.RTF: "docmill.extract.rtf:extract_rtf",
    mime.HTML: "docmill.extract.html:extract_html",
    mime.XML: "docmill.extract.xml:extract_xml",
    mime.JSON: "docmill.extract.jsondoc:extract_json",
    mime.CSV: "docmill.extract.delimited:extract_delimited",
    mime.TSV: "docmill.extract.delimited:extract_delimited",
    mime.EMAIL: "docmill.extract.mail:extract_email",
    mime.MARKDOWN: "docmill.extract.text:extract_text",
    mime.TEXT: "docmill.extract.text:extract_text",
}

# Plugins (and the test suite's faulty extractors) add formats here; the
# modules named in the ``extractor_plugins`` setting are imported in every
# extraction child, and register themselves on import.
_OVERRIDES: dict[str, Extractor] = {}
_PLUGIN_MAGIC: list[tuple[bytes, str]] = []


def register(media_type: str, extractor: Extractor, magic: bytes = b"") -> None:
    """
    Make ``extractor`` read ``media_type`` in this process.

    Args:
        media_type: the type it reads; replaces a built-in extractor for it.
        extractor: the callable.
        magic: bytes a document of this type starts with, for formats the
            built-in sniffer does not know.
    """
    _OVERRIDES[media_type] = extractor
    if magic:
        _PLUGIN_MAGIC.append((magic, media_type))


def sniff_plugin(head: bytes) -> str | None:
    for magic, media_type in _PLUGIN_MAGIC:
        if head.startswith(magic):
            return media_type
    return None


def load_plugins(modules: list[str]) -> None:
    for module in modules:
        importlib.import_module(module)


def supported_media_types() -> list[str]:
    return sorted(set(_EXTRACTORS) | set(_OVERRIDES))


def extractor_for(media_type: str) -> Extractor:
    if media_type in _OVERRIDES:
        return _OVERRIDES[media_type]
    target = _EXTRACTORS.get(media_type)
    if target is None:
        raise UnsupportedFormat(f"{media_type} is not a format docmill reads")
    return _load(target)


@cache
def _load(target: str) -> Extractor:
    module_name, _, attribute = target.partition(":")
    module = importlib.import_module(module_name)
    extractor: Extractor = getattr(module, attribute)
    return extractor
