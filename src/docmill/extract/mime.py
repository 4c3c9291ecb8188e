"""The media types docmill reads, named once."""

from __future__ import annotations

PDF = "application/pdf"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
XLSM = "application/vnd.ms-excel.sheet.macroEnabled.12"
PPTX = "application/vnd.openxmlformats-officedocument.presentationml.presentation"
ODT = "application/vnd.oasis.opendocument.text"
ODS = "application/vnd.oasis.opendocument.spreadsheet"
ODP = "application/vnd.oasis.opendocument.presentation"
EPUB = "application/epub+zip"
ZIP = "application/zip"
XLS = "application/vnd.ms-excel"
OLE = "application/x-ole-storage"
RTF = "application/rtf"
HTML = "text/html"
XML = "application/xml"
JSON = "application/json"
CSV = "text/csv"
TSV = "text/tab-separated-values"
MARKDOWN = "text/markdown"
TEXT = "text/plain"
EMAIL = "message/rfc822"

SPREADSHEETS = frozenset({XLSX, XLSM, ODS, XLS})
# The formats whose bytes are text in one encoding, which a charset declared
# with the upload names. The others name their own (a PDF's fonts, a mail
# part's header, RTF's code page) or are zips of XML, which is UTF-8.
DECLARED_CHARSET_TYPES = frozenset({TEXT, MARKDOWN, CSV, TSV, HTML, XML, JSON})
