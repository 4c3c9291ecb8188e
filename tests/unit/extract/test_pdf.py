from __future__ import annotations

import io

import pypdfium2 as pdfium
import pytest
from PIL import Image
from reportlab.lib import pdfencrypt
from reportlab.lib.utils import ImageReader
from reportlab.pdfgen import canvas

from docmill.exceptions import CorruptDocument, EncryptedDocument
from docmill.extract import pdf
from docmill.extract.base import ExtractContext
from docmill.extract.pdf import extract_pdf, parse_pdf_date


def make_pdf(
    pages: list[str],
    *,
    title: str | None = None,
    author: str | None = None,
    password: str | None = None,
    image_page: bool = False,
) -> bytes:
    buffer = io.BytesIO()
    encrypt = pdfencrypt.StandardEncryption(password) if password else None
    document = canvas.Canvas(buffer, encrypt=encrypt, invariant=True)
    if title:
        document.setTitle(title)
    if author:
        document.setAuthor(author)
    for text in pages:
        document.drawString(72, 720, text)
        document.showPage()
    if image_page:
        picture = Image.new("RGB", (8, 8), "black")
        document.drawImage(ImageReader(picture), 72, 72, 100, 100)
        document.showPage()
    document.save()
    return buffer.getvalue()


def test_each_page_becomes_one_entry_in_pages() -> None:
    result = extract_pdf(make_pdf(["First page", "Second page"]), ExtractContext())

    assert result.pages == ["First page", "Second page"]
    assert result.text == "First page\n\nSecond page"


def test_markdown_separates_pages_with_a_rule() -> None:
    result = extract_pdf(make_pdf(["One", "Two"]), ExtractContext())

    assert result.markdown == "One\n\n---\n\nTwo"


def test_info_dictionary_becomes_metadata() -> None:
    data = make_pdf(["Body"], title="Quarterly report", author="Ada Lovelace")

    metadata = extract_pdf(data, ExtractContext()).metadata

    assert (metadata["title"], metadata["author"]) == (
        "Quarterly report",
        "Ada Lovelace",
    )


def test_progress_is_reported_per_page() -> None:
    calls: list[tuple[int, int, str]] = []
    ctx = ExtractContext(on_progress=lambda *call: calls.append(call))

    extract_pdf(make_pdf(["a", "b", "c"]), ctx)

    assert calls == [(1, 3, "pages"), (2, 3, "pages"), (3, 3, "pages")]


def test_page_with_only_an_image_is_marked_for_ocr() -> None:
    result = extract_pdf(make_pdf(["Text page"], image_page=True), ExtractContext())

    assert result.metadata["needs_ocr"] is True
    assert result.metadata["needs_ocr_pages"] == [2]


def test_text_pages_are_not_marked_for_ocr() -> None:
    result = extract_pdf(make_pdf(["Text page"]), ExtractContext())

    assert "needs_ocr" not in result.metadata


def test_password_protected_pdf_without_password_is_encrypted_error() -> None:
    with pytest.raises(EncryptedDocument):
        extract_pdf(make_pdf(["Secret"], password="hunter2"), ExtractContext())


def test_password_protected_pdf_opens_with_the_given_password() -> None:
    data = make_pdf(["Secret"], password="hunter2")

    result = extract_pdf(data, ExtractContext(password="hunter2"))

    assert result.text == "Secret"
    assert result.metadata["encrypted"] is True


def test_wrong_password_is_encrypted_error() -> None:
    data = make_pdf(["Secret"], password="hunter2")

    with pytest.raises(EncryptedDocument, match="password given"):
        extract_pdf(data, ExtractContext(password="wrong"))


def test_truncated_pdf_is_corrupt() -> None:
    data = make_pdf(["Some text"])[:120]

    with pytest.raises(CorruptDocument):
        extract_pdf(data, ExtractContext())


def test_pypdf_reads_what_pdfium_refuses(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> pdfium.PdfDocument:
        raise pdfium.PdfiumError("refused", err_code=pdfium.raw.FPDF_ERR_FORMAT)

    monkeypatch.setattr(pdf.pdfium, "PdfDocument", refuse)

    result = extract_pdf(make_pdf(["Fallback text"]), ExtractContext())

    assert result.pages == ["Fallback text"]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param("D:20110705113319+01'00'", "2011-07-05T11:33:19+01:00", id="tz"),
        pytest.param("D:20230421160435Z00'00'", "2023-04-21T16:04:35+00:00", id="utc"),
        pytest.param("D:20130116", "2013-01-16T00:00:00", id="date-only"),
        pytest.param("D:20081399", "D:20081399", id="invalid"),
        pytest.param("yesterday", "yesterday", id="not-a-date"),
    ],
)
def test_pdf_dates_become_iso_8601(raw: str, expected: str) -> None:
    assert parse_pdf_date(raw) == expected


def test_info_text_of_broken_utf16_is_replaced_not_fatal() -> None:
    """A title of half a surrogate pair failed the whole document."""
    data = make_pdf(["Body"], title="ABCDEFGH", author="Ada")
    # Of the same length, so every offset in the cross-reference table holds.
    data = data.replace(b"(ABCDEFGH)", b"<FEFFD800>")

    result = extract_pdf(data, ExtractContext())

    assert (result.text, result.metadata["title"], result.metadata["author"]) == (
        "Body",
        "\ufffd",
        "Ada",
    )


def pdf_with_to_unicode(mapping: str) -> bytes:
    """One page showing `ABA` in a font whose ToUnicode maps `B` to ``mapping``."""
    cmap = (
        "/CIDInit /ProcSet findresource begin 12 dict begin begincmap\n"
        "/CMapName /Test def /CMapType 2 def\n"
        "1 begincodespacerange <00> <FF> endcodespacerange\n"
        f"2 beginbfchar <41> <0041> <42> <{mapping}> endbfchar\n"
        "endcmap CMapName currentdict /CMap defineresource pop end end\n"
    ).encode()
    content = b"BT /F1 24 Tf 72 700 Td (ABA) Tj ET"
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
        b"/Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /ToUnicode 6 0 R >>",
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(content), content),
        b"<< /Length %d >>\nstream\n%sendstream" % (len(cmap), cmap),
    ]
    out = bytearray(b"%PDF-1.7\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


@pytest.mark.parametrize(
    ("mapping", "expected"),
    [
        pytest.param("0042", "ABA", id="plain"),
        pytest.param("D800DC00", "A\U00010000A", id="surrogate-pair"),
        pytest.param("D800", "A\ufffdA", id="lone-high-surrogate"),
        pytest.param("DC00", "A\ufffdA", id="lone-low-surrogate"),
    ],
)
def test_page_text_of_broken_utf16_is_replaced_not_dropped(
    mapping: str, expected: str
) -> None:
    """PDFium passes a lone surrogate on; pypdfium2 dropped it unseen."""
    result = extract_pdf(pdf_with_to_unicode(mapping), ExtractContext())

    assert result.text == expected
