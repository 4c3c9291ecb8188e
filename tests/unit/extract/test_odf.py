from __future__ import annotations

import io
import zipfile

import pytest

from docmill.exceptions import CorruptDocument, EncryptedDocument
from docmill.extract import mime
from docmill.extract.base import ExtractContext, ExtractionResult
from docmill.extract.odf import _cut_styles, extract_odf

NAMESPACES = (
    'xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
    'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" '
    'xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" '
    'xmlns:draw="urn:oasis:names:tc:opendocument:xmlns:drawing:1.0" '
    'xmlns:style="urn:oasis:names:tc:opendocument:xmlns:style:1.0" '
    'xmlns:presentation="urn:oasis:names:tc:opendocument:xmlns:presentation:1.0" '
    'xmlns:meta="urn:oasis:names:tc:opendocument:xmlns:meta:1.0" '
    'xmlns:dc="http://purl.org/dc/elements/1.1/" '
    'xmlns:xlink="http://www.w3.org/1999/xlink"'
)
MANIFEST_NS = "urn:oasis:names:tc:opendocument:xmlns:manifest:1.0"


def build_odf(
    body: str,
    *,
    media_type: str = mime.ODT,
    automatic_styles: str = "",
    master_styles: str = "",
    meta: str = "",
    encrypted: bool = False,
    styles_xml: str | None = None,
) -> bytes:
    """Write a minimal OpenDocument package; ``body`` is office:body's content."""
    encryption = "<manifest:encryption-data/>" if encrypted else ""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as package:
        package.writestr("mimetype", media_type)
        package.writestr(
            "content.xml",
            f"<office:document-content {NAMESPACES}><office:automatic-styles>"
            f"{automatic_styles}</office:automatic-styles>"
            f"<office:body>{body}</office:body></office:document-content>",
        )
        package.writestr(
            "styles.xml",
            styles_xml
            or f"<office:document-styles {NAMESPACES}><office:master-styles>"
            f"{master_styles}</office:master-styles></office:document-styles>",
        )
        package.writestr(
            "meta.xml",
            f"<office:document-meta {NAMESPACES}><office:meta>{meta}</office:meta>"
            "</office:document-meta>",
        )
        package.writestr(
            "META-INF/manifest.xml",
            f'<manifest:manifest xmlns:manifest="{MANIFEST_NS}">'
            '<manifest:file-entry manifest:full-path="content.xml">'
            f"{encryption}</manifest:file-entry></manifest:manifest>",
        )
    return buffer.getvalue()


def text_body(content: str) -> str:
    return f"<office:text>{content}</office:text>"


def extract(data: bytes) -> ExtractionResult:
    return extract_odf(data, ExtractContext())


def test_headings_and_paragraphs_become_markdown() -> None:
    body = text_body(
        '<text:h text:outline-level="2">Scope</text:h><text:p>Plain words.</text:p>'
    )

    result = extract(build_odf(body))

    assert result.text == "Scope\nPlain words."
    assert result.markdown == "## Scope\n\nPlain words."


def test_spaces_tabs_and_line_breaks_are_kept() -> None:
    body = text_body(
        '<text:p>a<text:s text:c="3"/>b<text:tab/>c<text:line-break/>d</text:p>'
    )

    assert extract(build_odf(body)).text == "a   b\tc\nd"


def test_numbered_list_style_gives_numbered_items() -> None:
    styles = (
        '<text:list-style style:name="L1">'
        '<text:list-level-style-number text:level="1"/></text:list-style>'
    )
    body = text_body(
        '<text:list text:style-name="L1">'
        "<text:list-item><text:p>one</text:p></text:list-item>"
        "<text:list-item><text:p>two</text:p></text:list-item></text:list>"
    )

    result = extract(build_odf(body, automatic_styles=styles))

    assert result.markdown == "1. one\n1. two"


def test_tables_become_markdown_tables() -> None:
    body = text_body(
        "<table:table><table:table-row>"
        "<table:table-cell><text:p>Day</text:p></table:table-cell>"
        "<table:table-cell><text:p>Mon</text:p></table:table-cell></table:table-row>"
        "<table:table-row><table:table-cell><text:p>Colour</text:p></table:table-cell>"
        '<table:table-cell table:number-columns-repeated="1024"/></table:table-row>'
        "</table:table>"
    )

    result = extract(build_odf(body))

    assert result.text == "Day\tMon\nColour"
    assert result.markdown == "| Day | Mon |\n| --- | --- |\n| Colour |  |"


def test_footnotes_follow_the_body() -> None:
    body = text_body(
        "<text:p>Claim<text:note text:note-class='footnote'>"
        "<text:note-citation>1</text:note-citation><text:note-body>"
        "<text:p>Source.</text:p></text:note-body></text:note> stands.</text:p>"
    )

    result = extract(build_odf(body))

    assert result.text == "Claim stands.\n\n--- Footnotes ---\nSource."
    assert result.markdown == "Claim[^1] stands.\n\n## Footnotes\n\n[^1]: Source."


def test_page_footer_from_styles_follows_the_body() -> None:
    master = (
        '<style:master-page style:name="Standard"><style:footer>'
        "<text:p>Page footer</text:p></style:footer></style:master-page>"
    )

    result = extract(
        build_odf(text_body("<text:p>Body</text:p>"), master_styles=master)
    )

    assert result.text == "Body\n\n--- Footers ---\nPage footer"


def numbered(name: str) -> str:
    return (
        f'<text:list-style style:name="{name}">'
        '<text:list-level-style-number text:level="1"/></text:list-style>'
    )


def bulleted(name: str) -> str:
    return (
        f'<text:list-style style:name="{name}">'
        '<text:list-level-style-bullet text:level="1"/></text:list-style>'
    )


def one_item_list(style: str, text: str) -> str:
    return (
        f'<text:list text:style-name="{style}">'
        f"<text:list-item><text:p>{text}</text:p></text:list-item></text:list>"
    )


# Named styles and master pages in styles.xml, laid out as office suites
# write them; {head} goes before the root, {inner} into office:styles.
STYLES_TEMPLATE = (
    "{head}<office:document-styles "
    + NAMESPACES
    + "><office:styles{inner}>"
    + bulleted("Unused")
    + numbered("Numbers")
    + '<style:style style:name="Standard" style:family="paragraph"/>'
    + "</office:styles><office:automatic-styles>"
    + numbered("InFooter")
    + "</office:automatic-styles><office:master-styles>"
    '<style:master-page style:name="Standard"><style:footer>'
    + one_item_list("InFooter", "Footer item")
    + "</style:footer></style:master-page></office:master-styles>"
    "</office:document-styles>"
)


@pytest.mark.parametrize(
    ("head", "inner"),
    [
        pytest.param('<?xml version="1.0" encoding="UTF-8"?>\n', "", id="cut"),
        pytest.param("<!-- a note -->", "", id="comment"),
        pytest.param('<?xml version="1.0" encoding="ISO-8859-1"?>', "", id="latin-1"),
        pytest.param(
            "",
            ' xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0"',
            id="inner-namespace",
        ),
    ],
)
def test_list_styles_from_styles_part_number_body_and_footer_lists(
    head: str, inner: str
) -> None:
    styles = STYLES_TEMPLATE.format(head=head, inner=inner)
    body = text_body(one_item_list("Numbers", "Body item"))

    result = extract(build_odf(body, styles_xml=styles))

    assert result.markdown == "1. Body item\n\n## Footers\n\n1. Footer item"


@pytest.mark.parametrize(
    ("head", "inner", "cut"),
    [
        ("", "", True),
        ('<?xml version="1.0"?>', "", True),
        ("<!-- a note -->", "", False),
        ('<?xml version="1.0" encoding="UTF-16"?>', "", False),
        ("", ' xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0"', False),
        ("", ' a="why?"', True),
    ],
)
def test_styles_cut_only_where_the_bytes_cannot_mislead(
    head: str, inner: str, cut: bool
) -> None:
    styles = STYLES_TEMPLATE.format(head=head, inner=inner).encode()

    kept = _cut_styles(styles, {"Numbers"})

    assert (kept is not None) is cut
    if kept is not None:
        assert b"Unused" not in kept
        assert b'"Numbers"' in kept and b'"InFooter"' in kept


def test_styles_broken_outside_the_kept_parts_keep_the_text() -> None:
    styles = STYLES_TEMPLATE.format(head="", inner="").replace(
        '<style:style style:name="Standard" style:family="paragraph"/>',
        "<style:style>",
    )
    body = text_body(one_item_list("Numbers", "Body item"))

    result = extract(build_odf(body, styles_xml=styles))

    assert result.text == "Body item\n\n--- Footers ---\nFooter item"


def test_styles_broken_inside_the_master_pages_are_corrupt() -> None:
    styles = STYLES_TEMPLATE.format(head="", inner="").replace(
        "</style:footer>", "</style:header>"
    )

    with pytest.raises(CorruptDocument, match=r"styles\.xml"):
        extract(build_odf(text_body("<text:p>Body</text:p>"), styles_xml=styles))


def test_meta_gives_title_author_and_dates() -> None:
    meta = (
        "<dc:title>Report</dc:title><meta:initial-creator>Ada</meta:initial-creator>"
        "<meta:creation-date>2009-10-05T19:04:01</meta:creation-date>"
    )

    metadata = extract(build_odf(text_body(""), meta=meta)).metadata

    assert metadata == {
        "title": "Report",
        "author": "Ada",
        "created": "2009-10-05T19:04:01",
    }


def test_encrypted_content_is_refused() -> None:
    data = build_odf(text_body("<text:p>secret</text:p>"), encrypted=True)

    with pytest.raises(EncryptedDocument):
        extract(data)


def test_presentation_slides_become_pages_with_notes() -> None:
    slide = (
        '<draw:page><draw:frame presentation:class="title"><draw:text-box>'
        "<text:p>Welcome</text:p></draw:text-box></draw:frame>"
        "<draw:frame><draw:text-box><text:p>Point</text:p></draw:text-box></draw:frame>"
        '<presentation:notes><draw:frame presentation:class="notes"><draw:text-box>'
        "<text:p>Smile</text:p></draw:text-box></draw:frame></presentation:notes>"
        "</draw:page>"
    )
    body = f"<office:presentation>{slide}</office:presentation>"

    result = extract(build_odf(body, media_type=mime.ODP))

    assert result.pages == ["Welcome\nPoint\n\nNotes:\nSmile"]
    assert result.markdown == "## Welcome\n\nPoint\n\n### Notes\n\nSmile"


def test_missing_content_is_corrupt() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as package:
        package.writestr("mimetype", mime.ODT)

    with pytest.raises(CorruptDocument):
        extract(buffer.getvalue())
