"""The plain core properties reader against lxml, which it stands in for."""

from __future__ import annotations

import io
import zipfile

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from docmill.extract.base import ExtractContext
from docmill.extract.ooxml import (
    Package,
    core_properties,
    parse_xml,
    plain_core_properties,
)

CP = "http://schemas.openxmlformats.org/package/2006/metadata/core-properties"
DECLARATIONS = (
    f'xmlns:cp="{CP}" xmlns:dc="http://purl.org/dc/elements/1.1/" '
    'xmlns:dcterms="http://purl.org/dc/terms/" '
    'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"'
)
DECLARATION = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\r\n'


def core(children: str, head: str = DECLARATION, root: str = DECLARATIONS) -> bytes:
    return f"{head}<cp:coreProperties {root}>{children}</cp:coreProperties>".encode()


OFFICE = core(
    "<dc:title>Quarterly Report</dc:title><dc:subject/><dc:creator>Zoë</dc:creator>"
    '<cp:revision>7</cp:revision><dcterms:created xsi:type="dcterms:W3CDTF">'
    "2025-06-07T17:38:00Z</dcterms:created>"
)


def lxml_reading(data: bytes) -> dict[str, object]:
    return core_properties(parse_xml(data, "test part"))


def test_an_office_part_is_read_without_lxml_and_as_lxml_reads_it() -> None:
    found = plain_core_properties(OFFICE)

    assert found is not None
    assert found == lxml_reading(OFFICE)
    assert found["author"] == "Zoë"
    assert found["created"] == "2025-06-07T17:38:00+00:00"


def test_openpyxl_prefixes_declared_on_each_child_are_read() -> None:
    data = core(
        '<dc:creator xmlns:dc="http://purl.org/dc/elements/1.1/">openpyxl</dc:creator>',
        root=f'xmlns:cp="{CP}"',
    )

    assert plain_core_properties(data) == {"author": "openpyxl"}


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(core("<dc:title>A &amp; B</dc:title>"), id="entity"),
        pytest.param(core("<dc:title>A&#10;B</dc:title>"), id="char-ref"),
        pytest.param(core("<dc:title>a\r\nb</dc:title>"), id="carriage-return"),
        pytest.param(core("<dc:title><![CDATA[x]]></dc:title>"), id="cdata"),
        pytest.param(core("<!-- c --><dc:title>x</dc:title>"), id="comment"),
        pytest.param(core("<dc:title>x<b/>y</dc:title>"), id="nested"),
        pytest.param(core("<title>x</title>"), id="unprefixed"),
        pytest.param(core('<dc:title xmlns="urn:d">x</dc:title>'), id="default-ns"),
        pytest.param(core("<dc:title>x</dc:title>", head=""), id="no-declaration"),
        pytest.param(core("<dc:title>x</dc:title>") + b"<?pi?>", id="trailing-pi"),
        pytest.param(
            core("<dc:title>x</dc:title>", head="<!DOCTYPE cp:coreProperties>"),
            id="doctype",
        ),
        pytest.param(core(" <dc:title>\t x \n</dc:title> "), id="whitespace"),
    ],
)
def test_every_part_reads_as_lxml_reads_it(data: bytes) -> None:
    found = plain_core_properties(data)

    assert found is None or found == lxml_reading(data)
    assert properties_of(data) == lxml_reading(data)


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(core("<dc:title>x</dc:creator>"), id="mismatched"),
        pytest.param(core('<dc:title a="1" a="2">x</dc:title>'), id="duplicate"),
        pytest.param(core('<dc:title q:a="1">x</dc:title>'), id="attr-prefix"),
        pytest.param(core("<dc:title>a\x01b</dc:title>"), id="control-char"),
        pytest.param(core("<dc:title>a]]>b</dc:title>"), id="cdata-end"),
        pytest.param(
            core("<dc:title>x</dc:title>", root=f'xmlns:cp="{CP}" xmlns:dc=""'),
            id="empty-uri",
        ),
        pytest.param(core("") + b"<x/>", id="two-roots"),
        pytest.param(
            core("<dc:title>x</dc:title>", root=f'xmlns:cp="{CP}"'),
            id="prefix-undeclared",
        ),
        pytest.param(
            core("<dc:title>\u00e9</dc:title>").decode().encode("latin-1"),
            id="latin-1-bytes",
        ),
    ],
)
def test_a_broken_part_gives_no_properties_as_before(data: bytes) -> None:
    assert plain_core_properties(data) is None
    assert properties_of(data) == {}


_TEXT = st.lists(
    st.sampled_from(["a", " ", "\t", "\n", "\r", "&amp;", "é", ">", "]]>", "\x01"]),
    max_size=6,
).map("".join)
_FIELD = st.sampled_from(["dc:title", "dc:creator", "cp:keywords", "dc:other"])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(_FIELD, _TEXT), max_size=4))
def test_generated_parts_read_as_lxml_reads_them(
    fields: list[tuple[str, str]],
) -> None:
    data = core("".join(f"<{tag}>{text}</{tag}>" for tag, text in fields))

    found = plain_core_properties(data)

    if found is not None:
        assert found == lxml_reading(data)


def properties_of(data: bytes) -> dict[str, object]:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("[Content_Types].xml", b"<Types/>")
        archive.writestr("docProps/core.xml", data)
    with Package(buffer.getvalue(), ExtractContext(), "DOCX") as package:
        return package.core_properties()
