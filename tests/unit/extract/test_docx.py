from __future__ import annotations

import io
import zipfile

import docx
import pytest

from docmill.exceptions import CorruptDocument, LimitExceeded
from docmill.extract.base import ExtractContext, ExtractionResult, Limits
from docmill.extract.docx import extract_docx

W_NS = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
STRICT_W_NS = "http://purl.oclc.org/ooxml/wordprocessingml/main"
R_NS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
MC_NS = "http://schemas.openxmlformats.org/markup-compatibility/2006"
REL_TYPE = R_NS + "/"


def build_docx(
    body: str,
    *,
    namespace: str = W_NS,
    footnotes: str | None = None,
    links: dict[str, str] | None = None,
    prolog: str = "",
    styles: str | bytes | None = None,
    numbering: str | None = None,
) -> bytes:
    """Write a minimal DOCX package around ``body`` (the w:body's inner XML)."""
    rels = [
        f'<Relationship Id="{rid}" Type="{REL_TYPE}hyperlink" Target="{url}" '
        'TargetMode="External"/>'
        for rid, url in (links or {}).items()
    ]
    if footnotes is not None:
        rels.append(
            f'<Relationship Id="rIdF" Type="{REL_TYPE}footnotes" '
            'Target="footnotes.xml"/>'
        )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as package:
        package.writestr(
            "_rels/.rels",
            '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/'
            f'relationships"><Relationship Id="rId1" Type="{REL_TYPE}officeDocument" '
            'Target="word/document.xml"/></Relationships>',
        )
        package.writestr(
            "word/_rels/document.xml.rels",
            '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/'
            f'relationships">{"".join(rels)}</Relationships>',
        )
        package.writestr(
            "word/document.xml",
            f'{prolog}<w:document xmlns:w="{namespace}" xmlns:r="{R_NS}" '
            f'xmlns:mc="{MC_NS}"><w:body>{body}</w:body></w:document>',
        )
        if styles is not None:
            package.writestr("word/styles.xml", styles)
        if numbering is not None:
            package.writestr("word/numbering.xml", numbering)
        if footnotes is not None:
            package.writestr(
                "word/footnotes.xml",
                f'<w:footnotes xmlns:w="{W_NS}">{footnotes}</w:footnotes>',
            )
    return buffer.getvalue()


def paragraph(text: str) -> str:
    return f"<w:p><w:r><w:t>{text}</w:t></w:r></w:p>"


def saved(document: docx.document.Document) -> bytes:
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def extract(data: bytes) -> ExtractionResult:
    return extract_docx(data, ExtractContext())


def test_heading_style_becomes_markdown_heading() -> None:
    document = docx.Document()
    document.add_heading("Annual report", 2)
    document.add_paragraph("Intro text.")

    result = extract(saved(document))

    assert result.markdown == "## Annual report\n\nIntro text."


def test_bulleted_and_numbered_lists_get_markdown_markers() -> None:
    document = docx.Document()
    document.add_paragraph("first", style="List Bullet")
    document.add_paragraph("second", style="List Bullet")
    document.add_paragraph("step", style="List Number")

    assert extract(saved(document)).markdown == "- first\n- second\n1. step"


def test_table_is_tab_separated_in_text_and_a_markdown_table() -> None:
    document = docx.Document()
    table = document.add_table(rows=2, cols=2)
    for (row, column), value in {
        (0, 0): "Name",
        (0, 1): "Age",
        (1, 0): "Ada",
        (1, 1): "36",
    }.items():
        table.cell(row, column).text = value

    result = extract(saved(document))

    assert result.text == "Name\tAge\nAda\t36"
    assert result.markdown == "| Name | Age |\n| --- | --- |\n| Ada | 36 |"


def test_header_and_footer_follow_the_body_under_separators() -> None:
    document = docx.Document()
    document.add_paragraph("Body.")
    document.sections[0].header.paragraphs[0].text = "Top line"
    document.sections[0].footer.paragraphs[0].text = "Bottom line"

    result = extract(saved(document))

    assert result.text == (
        "Body.\n\n--- Headers ---\nTop line\n\n--- Footers ---\nBottom line"
    )


def test_comments_carry_their_author() -> None:
    document = docx.Document()
    commented = document.add_paragraph("Commented.")
    document.add_comment(commented.runs, text="A remark", author="Bob")

    result = extract(saved(document))

    assert result.text == "Commented.\n\n--- Comments ---\nBob: A remark"


def test_core_properties_become_metadata() -> None:
    document = docx.Document()
    document.core_properties.title = "Report"
    document.core_properties.author = "Ada Lovelace"

    metadata = extract(saved(document)).metadata

    assert (metadata["title"], metadata["author"]) == ("Report", "Ada Lovelace")


def test_sections_and_tables_are_counted() -> None:
    document = docx.Document()
    document.add_paragraph("One")
    document.add_section()
    document.add_table(rows=1, cols=1)

    metadata = extract(saved(document)).metadata

    assert (metadata["sections"], metadata["tables"]) == (2, 1)


def test_footnotes_follow_the_body_and_are_referenced_in_markdown() -> None:
    body = (
        '<w:p><w:r><w:t>Claim.</w:t></w:r><w:r><w:footnoteReference w:id="1"/>'
        "</w:r></w:p>"
    )
    notes = (
        '<w:footnote w:type="separator" w:id="0"><w:p><w:r><w:separator/></w:r>'
        '</w:p></w:footnote><w:footnote w:id="1">'
        + paragraph("Source: me.")
        + "</w:footnote>"
    )

    result = extract(build_docx(body, footnotes=notes))

    assert result.text == "Claim.\n\n--- Footnotes ---\nSource: me."
    assert result.markdown == "Claim.[^1]\n\n## Footnotes\n\n[^1]: Source: me."


def test_text_box_in_alternate_content_is_read_once() -> None:
    box = f"<w:txbxContent>{paragraph('Boxed words')}</w:txbxContent>"
    body = (
        "<w:p><w:r><mc:AlternateContent>"
        f"<mc:Choice Requires='wps'><w:drawing>{box}</w:drawing></mc:Choice>"
        f"<mc:Fallback><w:pict>{box}</w:pict></mc:Fallback>"
        "</mc:AlternateContent></w:r><w:r><w:t>Anchor text</w:t></w:r></w:p>"
    )

    assert extract(build_docx(body)).text == "Anchor text\nBoxed words"


def test_hyperlink_split_across_runs_is_joined() -> None:
    body = (
        '<w:p><w:r><w:t xml:space="preserve">See </w:t></w:r>'
        '<w:hyperlink r:id="rId9"><w:r><w:t>the </w:t></w:r><w:r><w:t>docs</w:t>'
        "</w:r></w:hyperlink><w:r><w:t>.</w:t></w:r></w:p>"
    )

    result = extract(build_docx(body, links={"rId9": "https://example.org/"}))

    assert result.text == "See the docs."
    assert result.markdown == "See [the docs](https://example.org/)."


def test_tabs_and_breaks_become_whitespace() -> None:
    body = "<w:p><w:r><w:t>a</w:t><w:tab/><w:t>b</w:t><w:br/><w:t>c</w:t></w:r></w:p>"

    assert extract(build_docx(body)).text == "a\tb\nc"


def test_deleted_revisions_and_field_codes_are_left_out() -> None:
    body = (
        "<w:p><w:del><w:r><w:delText>gone</w:delText></w:r></w:del>"
        "<w:r><w:instrText>PAGE</w:instrText></w:r><w:r><w:t>kept</w:t></w:r></w:p>"
    )

    assert extract(build_docx(body)).text == "kept"


def test_strict_ooxml_namespace_is_read() -> None:
    data = build_docx(paragraph("Strict words"), namespace=STRICT_W_NS)

    assert extract(data).text == "Strict words"


def test_truncated_docx_is_corrupt() -> None:
    document = docx.Document()
    document.add_paragraph("Some text")

    with pytest.raises(CorruptDocument):
        extract(saved(document)[:-200])


def test_package_unpacking_past_the_limit_is_refused() -> None:
    data = build_docx(paragraph("x" * 5000))
    ctx = ExtractContext(limits=Limits(max_unpacked_bytes=1000))

    with pytest.raises(LimitExceeded):
        extract_docx(data, ctx)


def test_entities_in_a_part_are_never_expanded() -> None:
    prolog = '<!DOCTYPE w:document [<!ENTITY lol "lololol">]>'
    data = build_docx(paragraph("kept &lol; and after"), prolog=prolog)

    # The reference is dropped, not expanded; the text after it stays.
    assert extract(data).text == "kept  and after"


# Billion laughs: nine levels of ten references each, 10^9 "lol"s expanded.
LAUGHS = '<!DOCTYPE {root} [<!ENTITY l0 "lol">{levels}]>'.format(
    root="{root}",
    levels="".join(
        f'<!ENTITY l{level} "{f"&l{level - 1};" * 10}">' for level in range(1, 10)
    ),
)


def test_an_entity_bomb_in_the_body_is_refused_as_a_limit() -> None:
    data = build_docx(paragraph("&l9;"), prolog=LAUGHS.format(root="w:document"))

    with pytest.raises(LimitExceeded) as caught:
        extract(data)

    assert (caught.value.code, str(caught.value)) == (
        "limit_exceeded",
        "the DOCX body was refused: its entity references would expand past the "
        "XML parser's amplification limit (an entity bomb); docmill expands no "
        "entities",
    )


def test_an_entity_bomb_in_the_properties_costs_only_the_properties() -> None:
    buffer = io.BytesIO(build_docx(paragraph("Body text")))
    with zipfile.ZipFile(buffer, "a") as package:
        package.writestr(
            "docProps/core.xml",
            LAUGHS.format(root="cp:coreProperties")
            + '<cp:coreProperties xmlns:cp="urn:x"><title>&l9;</title>'
            "</cp:coreProperties>",
        )

    result = extract(buffer.getvalue())

    assert (result.text, result.metadata) == (
        "Body text",
        {"sections": 0, "tables": 0},
    )


HEADING_BODY = (
    '<w:p><w:pPr><w:pStyle w:val="Big"/></w:pPr><w:r><w:t>Title</w:t></w:r></w:p>'
    '<w:p><w:pPr><w:pStyle w:val="Plain"/></w:pPr><w:r><w:t>Body</w:t></w:r></w:p>'
)


def styles_part(styles: str, prolog: str = "") -> str:
    return f'{prolog}<w:styles xmlns:w="{W_NS}">{styles}</w:styles>'


@pytest.mark.parametrize(
    "styles",
    [
        pytest.param(
            '<w:style w:type="paragraph" w:styleId="Plain"><w:name w:val="Normal"/>'
            '</w:style><w:style w:type="paragraph" w:styleId="Big">'
            '<w:name w:val="heading 2"/></w:style>',
            id="found-in-the-bytes",
        ),
        pytest.param(
            '<w:style w:styleId="Big"><w:name w:val="heading 2"/></w:style>'
            '<!-- <w:style w:styleId="Big"><w:name w:val="x"/></w:style> -->',
            id="comment",
        ),
        pytest.param(
            '<w:style w:type="paragraph" w:styleId="Big" w:x="a>b">'
            '<w:name w:val="heading 2"/></w:style>',
            id="angle-bracket-in-a-value",
        ),
        pytest.param(
            '<w:style w:x="a>b" w:styleId="Big"><w:name w:val="heading 2"/></w:style>',
            id="angle-bracket-before-the-id",
        ),
        pytest.param(
            '<w:style w:styleId="B&#105;g"><w:name w:val="heading 2"/></w:style>',
            id="character-reference-in-the-id",
        ),
        pytest.param(
            '<w:style w:styleId="Plain"/><w:style w:styleId="Big">'
            '<w:name w:val="heading 2"/></w:style>',
            id="empty-style",
        ),
    ],
)
def test_heading_styles_are_read_whatever_the_styles_part_holds(styles: str) -> None:
    data = build_docx(HEADING_BODY, styles=styles_part(styles))

    assert extract(data).markdown == "## Title\n\nBody"


def test_heading_styles_are_read_from_a_utf16_styles_part() -> None:
    styles = styles_part(
        '<w:style w:styleId="Big"><w:name w:val="heading 2"/></w:style>',
        prolog='<?xml version="1.0" encoding="UTF-16"?>',
    )
    data = build_docx(HEADING_BODY, styles=styles.encode("utf-16"))

    assert extract(data).markdown == "## Title\n\nBody"


def test_a_damaged_styles_part_still_makes_the_docx_corrupt() -> None:
    data = build_docx(HEADING_BODY, styles=styles_part("<w:style w:styleId='Big'>"))

    with pytest.raises(CorruptDocument):
        extract(data)


def styled(style_id: str, text: str) -> str:
    return (
        f'<w:p><w:pPr><w:pStyle w:val="{style_id}"/></w:pPr>'
        f"<w:r><w:t>{text}</w:t></w:r></w:p>"
    )


def test_built_in_heading_ids_are_headings_without_a_styles_part() -> None:
    """With no styles part to name them, the headings were plain paragraphs."""
    body = (
        styled("Title", "Report")
        + styled("Heading1", "Scope")
        + styled("heading 2", "Detail")
        + styled("Heading9", "Fine print")
        + styled("BodyText", "Words")
    )

    result = extract(build_docx(body))

    assert result.markdown == (
        "# Report\n\n# Scope\n\n## Detail\n\n###### Fine print\n\nWords"
    )


NUMBERED = (
    '<w:p><w:pPr><w:numPr><w:ilvl w:val="0"/><w:numId w:val="1"/></w:numPr>'
    "</w:pPr><w:r><w:t>First step</w:t></w:r></w:p>"
)
NUMBERING = (
    f'<w:numbering xmlns:w="{W_NS}"><w:abstractNum w:abstractNumId="0">'
    '<w:lvl w:ilvl="0"><w:numFmt w:val="decimal"/></w:lvl></w:abstractNum>'
    '<w:num w:numId="1"><w:abstractNumId w:val="0"/></w:num></w:numbering>'
)


def test_a_numbered_paragraph_reads_its_list_kind_from_the_numbering_part() -> None:
    result = extract(build_docx(NUMBERED, numbering=NUMBERING))

    assert result.markdown == "1. First step"


def test_a_broken_numbering_part_fails_only_a_document_that_numbers() -> None:
    broken = NUMBERING.replace("</w:numbering>", "")

    result = extract(build_docx(paragraph("Plain words"), numbering=broken))

    assert result.text == "Plain words"
    with pytest.raises(CorruptDocument, match=r"numbering\.xml"):
        extract(build_docx(NUMBERED, numbering=broken))


def test_a_body_nested_past_the_parsers_limit_is_a_limit_exceeded() -> None:
    """It was `corrupt`, quoting libxml2's advice to use XML_PARSE_HUGE."""
    deep = "<w:sdt>" * 300 + paragraph("deep") + "</w:sdt>" * 300

    with pytest.raises(LimitExceeded) as caught:
        extract(build_docx(deep))

    assert caught.value.message == (
        "the DOCX body nests its elements too deeply to read (deeper than 256 "
        "levels); nothing was read"
    )


_TABLE = (
    "<w:tbl><w:tr><w:tc>"
    + paragraph("cell")
    + "<w:tbl><w:tr><w:tc>"
    + paragraph("inner")
    + "</w:tc></w:tr></w:tbl></w:tc></w:tr></w:tbl>"
)
_SECTION = "<w:p><w:pPr><w:sectPr/></w:pPr><w:r><w:t>end of one</w:t></w:r></w:p>"


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(paragraph("a") + _TABLE + paragraph("b"), id="nested-table"),
        pytest.param(_SECTION + paragraph("two") + "<w:sectPr/>", id="sections"),
        pytest.param(
            "<w:sdt><w:sdtContent>" + paragraph("in sdt") + "</w:sdtContent></w:sdt>"
            "<w:customXml>" + paragraph("in custom") + "</w:customXml>",
            id="containers",
        ),
        pytest.param(
            paragraph("outer")
            + "<w:p><w:body>"
            + paragraph("inner")
            + "</w:body></w:p>",
            id="second-body",
        ),
        pytest.param(paragraph("broken") + "<w:p>", id="not-well-formed"),
    ],
)
def test_a_small_body_parsed_whole_reads_as_when_streamed(
    body: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = build_docx(body)

    def outcome() -> object:
        try:
            result = extract(data)
        except CorruptDocument as exc:
            return exc.message
        return (result.text, result.markdown, result.metadata)

    whole = outcome()
    monkeypatch.setattr("docmill.extract.docx.WHOLE_BODY_BYTES", -1)

    assert whole == outcome()
