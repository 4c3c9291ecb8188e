from __future__ import annotations

import io
import zipfile

import pytest

from docmill.exceptions import CorruptDocument, EncryptedDocument
from docmill.extract.base import ExtractContext, ExtractionResult
from docmill.extract.epub import extract_epub

CONTAINER = (
    '<container xmlns="urn:oasis:names:tc:opendocument:xmlns:container" '
    'version="1.0"><rootfiles><rootfile full-path="OEBPS/book.opf" '
    'media-type="application/oebps-package+xml"/></rootfiles></container>'
)
OPF = """<package xmlns="http://www.idpf.org/2007/opf" version="3.0">
<metadata xmlns:dc="http://purl.org/dc/elements/1.1/">
<dc:title>The   Book</dc:title><dc:creator>Ada Lovelace</dc:creator>
<dc:creator>Second Author</dc:creator></metadata>
<manifest>
<item id="one" href="text/one.xhtml" media-type="application/xhtml+xml"/>
<item id="two" href="text/two%20b.xhtml" media-type="application/xhtml+xml"/>
<item id="nav" href="nav.xhtml" media-type="application/xhtml+xml"
 properties="nav"/>
</manifest>
<spine><itemref idref="two"/><itemref idref="one"/></spine></package>"""
NAV = """<html xmlns="http://www.w3.org/1999/xhtml"
 xmlns:epub="http://www.idpf.org/2007/ops"><body><nav epub:type="toc"><ol>
<li><a href="text/one.xhtml">Chapter One</a></li></ol></nav></body></html>"""


def chapter(body: str) -> str:
    return (
        '<html xmlns="http://www.w3.org/1999/xhtml"><head><title>ignored</title>'
        f"<style>p {{ color: red }}</style></head><body>{body}</body></html>"
    )


def build_epub(*, encryption: str | None = None, container: str = CONTAINER) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as package:
        package.writestr("mimetype", "application/epub+zip")
        package.writestr("META-INF/container.xml", container)
        package.writestr("OEBPS/book.opf", OPF)
        package.writestr("OEBPS/nav.xhtml", NAV)
        package.writestr("OEBPS/text/one.xhtml", chapter("<p>First words.</p>"))
        package.writestr(
            "OEBPS/text/two b.xhtml", chapter("<h1>Opening</h1><p>Second words.</p>")
        )
        if encryption is not None:
            package.writestr("META-INF/encryption.xml", encryption)
    return buffer.getvalue()


def extract(data: bytes) -> ExtractionResult:
    return extract_epub(data, ExtractContext())


def test_chapters_are_read_in_spine_order() -> None:
    assert extract(build_epub()).text == "Opening\nSecond words.\n\nFirst words."


def test_chapter_without_heading_takes_its_table_of_contents_label() -> None:
    assert extract(build_epub()).markdown == (
        "# Opening\n\nSecond words.\n\n## Chapter One\n\nFirst words."
    )


def test_first_title_and_creator_become_metadata() -> None:
    metadata = extract(build_epub()).metadata

    assert (metadata["title"], metadata["author"], metadata["chapters"]) == (
        "The Book",
        "Ada Lovelace",
        2,
    )


def test_drm_encrypted_content_is_refused() -> None:
    encryption = (
        '<encryption xmlns="urn:oasis:names:tc:opendocument:xmlns:container" '
        'xmlns:enc="http://www.w3.org/2001/04/xmlenc#"><enc:EncryptedData>'
        '<enc:EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#aes128-cbc"/>'
        "</enc:EncryptedData></encryption>"
    )

    with pytest.raises(EncryptedDocument):
        extract(build_epub(encryption=encryption))


def test_obfuscated_fonts_do_not_count_as_encryption() -> None:
    encryption = (
        '<encryption xmlns="urn:oasis:names:tc:opendocument:xmlns:container" '
        'xmlns:enc="http://www.w3.org/2001/04/xmlenc#"><enc:EncryptedData>'
        '<enc:EncryptionMethod Algorithm="http://www.idpf.org/2008/embedding"/>'
        "</enc:EncryptedData></encryption>"
    )

    assert extract(build_epub(encryption=encryption)).metadata["chapters"] == 2


def test_container_without_package_document_is_corrupt() -> None:
    container = CONTAINER.replace("OEBPS/book.opf", "missing.opf")

    with pytest.raises(CorruptDocument):
        extract(build_epub(container=container))
