"""
PDF: the text of every page, read by pdfium, with pypdf as the lenient reserve.

Pages are never rendered, so image bombs (a 100000 x 100000 JBIG2 image) and
recursive form XObjects cost nothing beyond their text. Pages without text
that carry images are listed in ``metadata["needs_ocr_pages"]`` rather than
failing the document.
"""

from __future__ import annotations

import ctypes
import logging
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c

from docmill.exceptions import CorruptDocument, EncryptedDocument
from docmill.extract import mime
from docmill.extract.base import (
    ExtractContext,
    ExtractionResult,
    Source,
    open_source,
)

logger = logging.getLogger(__name__)

PAGE_SEPARATOR = "\n\n"
MARKDOWN_PAGE_SEPARATOR = "\n\n---\n\n"

# A forged /Count can claim billions of pages that do not exist; past this
# many pages that fail to load, the rest of the tree is taken to be fiction.
MAX_UNLOADABLE_PAGES = 100
# pypdf flattens the whole page tree up front, so its reading is capped.
MAX_FALLBACK_PAGES = 10_000
# Images inside nested form XObjects still mark a scanned page; the depth
# bound keeps a self-referencing XObject from looping.
_IMAGE_SEARCH_DEPTH = 3

_INFO_KEYS = {
    "Title": "title",
    "Author": "author",
    "Subject": "subject",
    "Keywords": "keywords",
    "Creator": "creator",
    "Producer": "producer",
    "CreationDate": "created",
    "ModDate": "modified",
}
_DATE_KEYS = frozenset({"created", "modified"})
_PDF_DATE = re.compile(
    r"(?:D:)?(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?"
    r"\s*(?:([Zz])|([+-])(\d{2})'?(\d{2})?'?)?"
)


def extract_pdf(source: Source, ctx: ExtractContext) -> ExtractionResult:
    try:
        document = _open(source, ctx.password)
    except pdfium.PdfiumError as exc:
        if exc.err_code == pdfium_c.FPDF_ERR_PASSWORD:
            raise EncryptedDocument(_password_message(ctx.password)) from exc
        logger.debug("pdfium refused the PDF (%s); trying pypdf", exc)
        return _extract_with_pypdf(source, ctx, exc)
    try:
        return _extract_with_pdfium(document, ctx)
    finally:
        document.close()


def _open(source: Source, password: str | None) -> pdfium.PdfDocument:
    opened = source if isinstance(source, bytes) else str(source)
    try:
        return pdfium.PdfDocument(opened, password=password or "")
    except pdfium.PdfiumError as exc:
        # A password given for a file that only needs the empty one is
        # not a reason to refuse it.
        if not password or exc.err_code != pdfium_c.FPDF_ERR_PASSWORD:
            raise
        return pdfium.PdfDocument(opened, password="")


def _password_message(password: str | None) -> str:
    if password:
        return "the PDF is encrypted and the password given does not open it"
    return "the PDF is encrypted and does not open without its password"


def _extract_with_pdfium(
    document: pdfium.PdfDocument, ctx: ExtractContext
) -> ExtractionResult:
    total = len(document)
    if total <= 0:
        raise CorruptDocument("the PDF has no pages")

    pages: list[str] = []
    needs_ocr: list[int] = []
    unloadable: list[int] = []
    for index in range(total):
        try:
            page = document[index]
        except pdfium.PdfiumError:
            unloadable.append(index + 1)
            if len(unloadable) > MAX_UNLOADABLE_PAGES:
                break
            pages.append("")
            continue
        textpage = page.get_textpage()
        # PDFium hands over a font's ToUnicode map as it is, lone surrogates
        # included (<D800> for a glyph), and pypdfium2 decodes with "ignore"
        # by default, which dropped the character without a trace; replaced,
        # it shows where text was lost, as the Info entries do.
        text = textpage.get_text_bounded(errors="replace")
        textpage.close()
        if not text.strip() and _has_images(page):
            needs_ocr.append(index + 1)
        page.close()
        pages.append(text.replace("\r\n", "\n"))
        ctx.progress(index + 1, total, "pages")

    metadata = _pdfium_metadata(document)
    result = _result(pages, metadata, needs_ocr)
    if unloadable:
        result.warnings.append(_unloadable_warning(unloadable, total))
    return result


def _has_images(page: pdfium.PdfPage) -> bool:
    images = page.get_objects(
        filter=[pdfium_c.FPDF_PAGEOBJ_IMAGE], max_depth=_IMAGE_SEARCH_DEPTH
    )
    return next(images, None) is not None


def _pdfium_metadata(document: pdfium.PdfDocument) -> dict[str, Any]:
    metadata = _info_metadata(_pdfium_info(document))
    if pdfium_c.FPDF_GetSecurityHandlerRevision(document) != -1:
        metadata["encrypted"] = True
    return metadata


def _unloadable_warning(unloadable: list[int], total: int) -> str:
    if len(unloadable) > MAX_UNLOADABLE_PAGES:
        return (
            f"the page tree claims {total} pages but more than "
            f"{MAX_UNLOADABLE_PAGES} of them could not be loaded; reading stopped"
        )
    listed = ", ".join(str(number) for number in unloadable)
    return f"pages that could not be loaded and are left empty: {listed}"


def _result(
    pages: list[str], metadata: dict[str, Any], needs_ocr: list[int]
) -> ExtractionResult:
    if needs_ocr:
        metadata["needs_ocr"] = True
        metadata["needs_ocr_pages"] = needs_ocr
    return ExtractionResult(
        mime.PDF,
        PAGE_SEPARATOR.join(pages),
        pages=pages,
        markdown=MARKDOWN_PAGE_SEPARATOR.join(pages),
        metadata=metadata,
    )


def _pdfium_info(document: pdfium.PdfDocument) -> dict[str, str]:
    """
    The Info dictionary's text entries. pypdfium2's own reading decodes them
    strictly, and a title of bad UTF-16 (``<FEFFD800>``, half a surrogate
    pair) failed the whole document; here bad code units become U+FFFD.
    """
    info: dict[str, str] = {}
    for key in _INFO_KEYS:
        name = key.encode("ascii") + b"\x00"
        size = pdfium_c.FPDF_GetMetaText(document, name, None, 0)
        # The size counts a two-byte terminator; an absent key is just that.
        if size <= 2:
            continue
        buffer = ctypes.create_string_buffer(size)
        pdfium_c.FPDF_GetMetaText(document, name, buffer, size)
        info[key] = buffer.raw[: size - 2].decode("utf-16-le", "replace")
    return info


def _info_metadata(info: dict[str, Any]) -> dict[str, Any]:
    metadata: dict[str, Any] = {}
    for key, name in _INFO_KEYS.items():
        value = info.get(key)
        if not isinstance(value, str):
            continue
        value = value.strip().strip("\x00")
        if not value:
            continue
        metadata[name] = parse_pdf_date(value) if name in _DATE_KEYS else value
    return metadata


def parse_pdf_date(value: str) -> str:
    """
    Turn a PDF date (``D:20110705113319+01'00'``) into ISO 8601.

    Fields the string leaves out take their earliest value; a string that is
    not a PDF date comes back unchanged.
    """
    match = _PDF_DATE.match(value.strip())
    if match is None:
        return value
    year, month, day, hour, minute, second, utc, sign, tz_hour, tz_minute = (
        match.groups()
    )
    tzinfo: timezone | None = None
    if utc:
        tzinfo = UTC
    elif sign:
        offset = timedelta(hours=int(tz_hour), minutes=int(tz_minute or 0))
        tzinfo = timezone(-offset if sign == "-" else offset)
    try:
        moment = datetime(
            int(year),
            int(month or 1),
            int(day or 1),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            tzinfo=tzinfo,
        )
    except ValueError:
        return value
    return moment.isoformat()


def _extract_with_pypdf(
    source: Source, ctx: ExtractContext, pdfium_error: Exception
) -> ExtractionResult:
    import pypdf

    # pypdf narrates every oddity of a damaged PDF as a warning on stderr; the
    # outcome reaches the user as the document's result or error instead.
    logging.getLogger("pypdf").setLevel(logging.ERROR)
    try:
        with open_source(source) as stream:
            reader = pypdf.PdfReader(stream, strict=False)
            if reader.is_encrypted and not reader.decrypt(ctx.password or ""):
                raise EncryptedDocument(_password_message(ctx.password))
            return _read_pypdf(reader, ctx)
    except EncryptedDocument:
        raise
    # pypdf on hostile bytes can fail in any way; every failure here means
    # the same thing: neither reader recovers the document.
    except Exception as exc:
        message = f"the PDF is damaged and no reader could open it ({pdfium_error})"
        raise CorruptDocument(message) from exc


def _read_pypdf(reader: Any, ctx: ExtractContext) -> ExtractionResult:
    total = len(reader.pages)
    if total == 0:
        raise CorruptDocument("the PDF has no pages")
    read = min(total, MAX_FALLBACK_PAGES)

    pages: list[str] = []
    for index in range(read):
        pages.append((reader.pages[index].extract_text() or "").rstrip())
        ctx.progress(index + 1, read, "pages")

    info = reader.metadata or {}
    metadata = _info_metadata({key.lstrip("/"): info.get(key) for key in info})
    if reader.is_encrypted:
        metadata["encrypted"] = True
    result = _result(pages, metadata, [])
    result.warnings.append("read by the lenient fallback reader; layout may differ")
    if read < total:
        result.warnings.append(f"only the first {read} of {total} pages were read")
    return result
