"""Small ODS workbooks written by hand, as calamine reads them."""

from __future__ import annotations

import io
import zipfile

ODS_HEAD = (
    b'<?xml version="1.0" encoding="UTF-8"?><office:document-content'
    b' xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0"'
    b' xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0"'
    b' xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0">'
    b"<office:body><office:spreadsheet>"
)


def ods(tables: dict[str, bytes]) -> bytes:
    body = b"".join(
        b'<table:table table:name="%s">%s</table:table>' % (name.encode(), rows)
        for name, rows in tables.items()
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(
            "mimetype",
            "application/vnd.oasis.opendocument.spreadsheet",
            zipfile.ZIP_STORED,
        )
        archive.writestr(
            "META-INF/manifest.xml",
            '<manifest:manifest xmlns:manifest="urn:oasis:names:tc:opendocument'
            ':xmlns:manifest:1.0"><manifest:file-entry manifest:full-path='
            '"content.xml" manifest:media-type="text/xml"/></manifest:manifest>',
        )
        archive.writestr(
            "content.xml",
            ODS_HEAD + body + b"</office:spreadsheet></office:body>"
            b"</office:document-content>",
        )
    return buffer.getvalue()


def ods_value(value: int, repeated: int = 1) -> bytes:
    return (
        b'<table:table-cell office:value-type="float" office:value="%d"'
        b' table:number-columns-repeated="%d"><text:p>%d</text:p>'
        b"</table:table-cell>" % (value, repeated, value)
    )


def ods_empty(repeated: int) -> bytes:
    return b'<table:table-cell table:number-columns-repeated="%d"/>' % repeated


def ods_row(cells: bytes, repeated: int = 1) -> bytes:
    return b'<table:table-row table:number-rows-repeated="%d">%s</table:table-row>' % (
        repeated,
        cells,
    )


def wide_ods() -> bytes:
    # 5,000 rows of 16,383 empty cells then a value: calamine kept every
    # empty cell ahead of the value and aborted the child under 2 GiB.
    return ods({"Wide": ods_row(ods_empty(16383) + ods_value(1)) * 5000})
