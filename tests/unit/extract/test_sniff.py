from __future__ import annotations

import io
import zipfile

import pytest

from docmill.extract import mime
from docmill.extract.sniff import sniff


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


THUNDERBIRD_HEADERS = (
    b"x-store-info:J++/JTCzmObr++wNraA4\r\n"
    b"Authentication-Results: example.com; sender-id=pass\r\n"
    b"Received: from mailout.example.com\r\n"
    b"Date: Wed, 21 Nov 2012 21:11:32 +0100\r\n"
    b'From: "Vladimir L." <vladimir@example.com>\r\n'
    b"Subject: JUnit test message\r\n"
    b"\r\n"
    b"Dear Vladimir\r\n"
)


@pytest.mark.parametrize(
    ("data", "name", "expected"),
    [
        pytest.param(b"", None, "application/x-empty", id="empty"),
        pytest.param(b"%PDF-1.7\n", None, mime.PDF, id="pdf"),
        pytest.param(b"{\\rtf1\\ansi hello}", None, mime.RTF, id="rtf"),
        pytest.param(b"<!DOCTYPE html><p>hi</p>", None, mime.HTML, id="html"),
        pytest.param(b'<?xml version="1.0"?><a>x</a>', None, mime.XML, id="xml"),
        pytest.param(
            b'<?xml version="1.0"?><html xmlns="http://www.w3.org/1999/xhtml"/>',
            None,
            mime.HTML,
            id="xhtml",
        ),
        pytest.param(b'{"a": [1, 2]}', None, mime.JSON, id="json"),
        pytest.param(b'{"name": "John Doe",', None, mime.TEXT, id="broken-json"),
        pytest.param(THUNDERBIRD_HEADERS, None, mime.EMAIL, id="mail-store-header"),
        pytest.param(b"a,b,c\n1,2,3\n4,5,6\n", None, mime.CSV, id="csv"),
        pytest.param(b"# Title\n\n- one\n- two\n", None, mime.MARKDOWN, id="markdown"),
        pytest.param(b"just words\n", "notes.md", mime.MARKDOWN, id="md-name"),
        pytest.param(b"This is not a zip file!", "x.odt", mime.TEXT, id="fake-odt"),
        pytest.param(bytes(range(256)) * 4, None, "application/octet-stream", id="bin"),
    ],
)
def test_sniff_judges_the_format_from_the_bytes(
    data: bytes, name: str | None, expected: str
) -> None:
    assert sniff(data, name) == expected


def test_a_yaml_file_with_date_and_title_keys_is_not_mail() -> None:
    assert sniff(b"title: Minutes\ndate: 2024-01-01\nsubject: budget\n") == mime.TEXT


def test_utf16_text_without_a_mark_is_text() -> None:
    assert sniff("plain words, nothing else\n".encode("utf-16-le")) == mime.TEXT


def test_a_zip_named_docx_without_office_parts_stays_a_zip() -> None:
    assert sniff(_zip({"notes.txt": b"hi"}), "report.docx") == mime.ZIP


def test_a_zip_with_a_word_main_part_is_docx_whatever_its_name() -> None:
    data = _zip({"word/document.xml": b"<w:document/>"})
    assert sniff(data, "archive.zip") == mime.DOCX


def test_a_pdf_named_txt_is_a_pdf() -> None:
    assert sniff(b"%PDF-1.4\n%binary", "notes.txt") == mime.PDF
