"""The plain ``.rels`` reader against lxml, which it stands in for."""

from __future__ import annotations

import io
import zipfile

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from docmill.exceptions import CorruptDocument
from docmill.extract.base import ExtractContext
from docmill.extract.ooxml import (
    PACKAGE_RELS,
    Package,
    parse_xml,
    plain_relationships,
)

NS = PACKAGE_RELS
DECLARATION = b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\r\n'
OFFICE = (
    DECLARATION + b'<Relationships xmlns="' + NS.encode() + b'">'
    b'<Relationship Id="rId2" Type="http://x/slideLayout" '
    b'Target="../slideLayouts/slideLayout1.xml"/>'
    b'<Relationship Id="rId1" Type="http://x/hyperlink" '
    b'Target="https://example.com/a?b=1" TargetMode="External"/>'
    b"</Relationships>"
)


def lxml_entries(data: bytes) -> list[dict[str, str]]:
    root = parse_xml(data, "test part")
    return [dict(e.attrib) for e in root.iter(f"{{{NS}}}Relationship")]


def rels(body: bytes, head: bytes = DECLARATION, root: bytes = b"") -> bytes:
    opening = b'<Relationships xmlns="' + NS.encode() + b'"' + root + b">"
    return head + opening + body + b"</Relationships>"


def test_an_office_part_is_read_without_lxml_and_as_lxml_reads_it() -> None:
    entries = plain_relationships(OFFICE)

    assert entries is not None
    assert entries == lxml_entries(OFFICE)
    assert entries[1]["TargetMode"] == "External"


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(rels(b'<Relationship Id="a" Target="x&amp;y"/>'), id="entity"),
        pytest.param(rels(b'<Relationship Id="a" Target="x\ty"/>'), id="tab"),
        pytest.param(rels(b'<Relationship Id="a" Target="x\r\ny"/>'), id="newline"),
        pytest.param(rels(b"<Relationship Id='a' Target='x'/>"), id="single-quotes"),
        pytest.param(rels(b'<!-- c --><Relationship Id="a"/>'), id="comment"),
        pytest.param(rels(b'<Relationship Id="a"></Relationship>'), id="end-tag"),
        pytest.param(
            rels(b'<Relationship xmlns:q="urn:q" q:Id="b" Id="a"/>'), id="prefixed"
        ),
        pytest.param(
            rels(b'<Relationship Id="a"/>', root=b' xmlns:q="urn:q"'), id="ns"
        ),
        pytest.param(
            rels(b'<Relationship Id="\xc3\xa9"/>'.decode("latin-1").encode()),
            id="non-ascii",
        ),
        pytest.param(
            rels(b'<Relationship Id="a"/>', head=b"\xef\xbb\xbf" + DECLARATION),
            id="bom",
        ),
        pytest.param(
            rels(
                b'<Relationship Id="a"/>',
                head=b'<?xml version="1.0" encoding="ISO-8859-1"?>',
            ),
            id="latin-1",
        ),
        pytest.param(rels(b'<Relationship Id="a"/>', head=b""), id="no-declaration"),
        pytest.param(
            rels(b' \n<Relationship\n Id = "a" Type="t" />\t', head=b"\n "),
            id="whitespace",
        ),
        pytest.param(rels(b"<?pi x?><Relationship Id='a'/>"), id="pi"),
        pytest.param(rels(b'<Other Id="a"/><Relationship Id="b"/>'), id="other"),
        pytest.param(rels(b"") + b"<!-- after -->", id="trailing-comment"),
        pytest.param(rels(b'<Relationship Id=""/>'), id="empty-value"),
    ],
)
def test_every_part_reads_as_lxml_reads_it(data: bytes) -> None:
    entries = plain_relationships(data)

    assert entries is None or entries == lxml_entries(data)
    assert relationships_of(data) == [
        (e.get("Id", ""), e.get("Type", ""), e.get("TargetMode") == "External")
        for e in lxml_entries(data)
    ]


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(rels(b'<Relationship Id="a" Id="b"/>'), id="duplicate"),
        pytest.param(rels(b'<Relationship Id="a">'), id="unclosed"),
        pytest.param(rels(b'<Relationship Id="a"/>') + b"<x/>", id="two-roots"),
        pytest.param(rels(b'<Relationship Id="a"/>\x0c'), id="form-feed"),
        pytest.param(
            rels(b"", head=b'<?xml version="1.0" encoding="utf-8" junk="1"?>'),
            id="bad-declaration",
        ),
    ],
)
def test_a_broken_part_is_refused_as_lxml_refuses_it(data: bytes) -> None:
    assert plain_relationships(data) is None
    with pytest.raises(CorruptDocument):
        relationships_of(data)


_VALUE = st.lists(
    st.sampled_from(["a", "/", ".", " ", "\t", "\n", "&amp;", "&#65;", "'", ">"]),
    max_size=6,
).map("".join)
_SPACE = st.sampled_from(["", " ", "\n", "\r\n", "\t"])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(_SPACE, _VALUE, _VALUE), max_size=4), _SPACE)
def test_generated_parts_read_as_lxml_reads_them(
    entries: list[tuple[str, str, str]], space: str
) -> None:
    body = "".join(
        f'{gap}<Relationship Id="{rid}"{gap or " "}Target="{target}"{gap}/>'
        for gap, rid, target in entries
    )
    data = rels((body + space).encode())

    found = plain_relationships(data)

    assert found is None or found == lxml_entries(data)


def relationships_of(data: bytes) -> list[tuple[str, str, bool]]:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("[Content_Types].xml", b"<Types/>")
        archive.writestr("_rels/.rels", data)
    with Package(buffer.getvalue(), ExtractContext(), "DOCX") as package:
        return [(rel.id, rel.type, rel.external) for rel in package.relationships("")]
