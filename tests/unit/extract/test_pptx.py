from __future__ import annotations

import copy
import io
import zipfile

import pytest
from lxml import etree
from pptx import Presentation
from pptx.presentation import Presentation as Deck
from pptx.util import Inches

from docmill.exceptions import CorruptDocument
from docmill.extract.base import ExtractContext, ExtractionResult
from docmill.extract.ooxml import P, Package
from docmill.extract.pptx import (
    _read_shape_tree,
    _read_slide_list,
    _shape_tree,
    extract_pptx,
)

TITLE_AND_CONTENT = 1
BLANK = 6


def saved(deck: Deck) -> bytes:
    buffer = io.BytesIO()
    deck.save(buffer)
    return buffer.getvalue()


def extract(deck: Deck, ctx: ExtractContext | None = None) -> ExtractionResult:
    return extract_pptx(saved(deck), ctx or ExtractContext())


def titled_slide(deck: Deck, title: str, body: str) -> None:
    slide = deck.slides.add_slide(deck.slide_layouts[TITLE_AND_CONTENT])
    slide.shapes.title.text = title
    slide.placeholders[1].text_frame.text = body


def test_each_slide_is_one_page() -> None:
    deck = Presentation()
    titled_slide(deck, "Plan", "First point")
    titled_slide(deck, "Budget", "Second point")

    assert extract(deck).pages == ["Plan\nFirst point", "Budget\nSecond point"]


def test_slide_titles_become_markdown_headings() -> None:
    deck = Presentation()
    titled_slide(deck, "Plan", "First point")

    assert extract(deck).markdown == "## Plan\n\nFirst point"


def test_speaker_notes_follow_the_slide_text() -> None:
    deck = Presentation()
    titled_slide(deck, "Plan", "First point")
    deck.slides[0].notes_slide.notes_text_frame.text = "Say hello"

    result = extract(deck)

    assert result.pages == ["Plan\nFirst point\n\nNotes:\nSay hello"]
    assert result.markdown == "## Plan\n\nFirst point\n\n### Notes\n\nSay hello"


def test_tables_become_markdown_tables() -> None:
    deck = Presentation()
    slide = deck.slides.add_slide(deck.slide_layouts[BLANK])
    frame = slide.shapes.add_table(2, 2, Inches(1), Inches(1), Inches(4), Inches(1))
    for (row, column), value in {(0, 0): "A", (0, 1): "B", (1, 0): "1"}.items():
        frame.table.cell(row, column).text = value

    result = extract(deck)

    assert result.text == "A\tB\n1"
    assert result.markdown == "| A | B |\n| --- | --- |\n| 1 |  |"


def test_text_inside_nested_groups_is_read() -> None:
    deck = Presentation()
    slide = deck.slides.add_slide(deck.slide_layouts[BLANK])
    outer = slide.shapes.add_group_shape()
    inner = outer.shapes.add_group_shape()
    box = inner.shapes.add_textbox(0, 0, Inches(1), Inches(1))
    box.text_frame.text = "Deep inside"

    assert extract(deck).text == "Deep inside"


def test_master_text_is_added_once_for_the_deck() -> None:
    deck = Presentation()
    titled_slide(deck, "One", "a")
    titled_slide(deck, "Two", "b")
    slide = deck.slides[0]
    box = slide.shapes.add_textbox(0, 0, Inches(1), Inches(1))
    box.text_frame.text = "Confidential"
    deck.slide_master.shapes._spTree.append(copy.deepcopy(box._element))
    box._element.getparent().remove(box._element)

    result = extract(deck)

    assert result.text.count("Confidential") == 1
    assert result.text.endswith("--- Slide masters ---\nConfidential")


def test_deck_without_slides_has_no_pages() -> None:
    result = extract(Presentation())

    assert (result.pages, result.text) == ([], "")


def test_progress_is_reported_per_slide() -> None:
    deck = Presentation()
    titled_slide(deck, "One", "a")
    titled_slide(deck, "Two", "b")
    calls: list[tuple[int, int, str]] = []

    extract(deck, ExtractContext(on_progress=lambda *call: calls.append(call)))

    assert calls == [(1, 2, "slides"), (2, 2, "slides")]


def test_core_properties_become_metadata() -> None:
    deck = Presentation()
    deck.core_properties.title = "Roadmap"
    deck.core_properties.author = "Grace Hopper"

    metadata = extract(deck).metadata

    assert (metadata["title"], metadata["author"]) == ("Roadmap", "Grace Hopper")


def test_truncated_pptx_is_corrupt() -> None:
    data = saved(Presentation())[:-300]

    with pytest.raises(CorruptDocument):
        extract_pptx(data, ExtractContext())


def test_the_package_is_opened_and_each_rels_part_parsed_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The sniffer's open zip is handed to the extractor, and a slide's
    # relationships, asked for its notes, diagrams and layout, are read once.
    import zipfile

    from docmill.extract import ooxml
    from docmill.extract.pipeline import extract_bytes

    deck = Presentation()
    for number in range(3):
        titled_slide(deck, f"Slide {number}", "point")
    data = saved(deck)
    opened: list[object] = []
    parsed: list[str] = []
    real_init, real_parse = zipfile.ZipFile.__init__, ooxml.Package.parse

    def counting_init(self: zipfile.ZipFile, *args: object, **kwargs: object) -> None:
        opened.append(args[0])
        real_init(self, *args, **kwargs)  # type: ignore[arg-type]

    def counting_parse(self: ooxml.Package, name: str) -> object:
        parsed.append(name)
        return real_parse(self, name)

    monkeypatch.setattr(zipfile.ZipFile, "__init__", counting_init)
    monkeypatch.setattr(ooxml.Package, "parse", counting_parse)
    result = extract_bytes(data)
    assert result.metadata["slides"] == 3
    assert len(opened) == 1
    rels = [name for name in parsed if name.endswith(".rels")]
    assert sorted(rels) == sorted(set(rels))


@pytest.mark.parametrize(
    "body",
    [
        pytest.param("<p:cSld><p:bg/><p:spTree n='1'/></p:cSld>", id="in-cSld"),
        pytest.param(
            "<p:other><p:spTree n='1'/></p:other><p:cSld><p:spTree n='2'/></p:cSld>",
            id="cSld-not-first",
        ),
        pytest.param("<p:cSld/><p:x><p:spTree n='1'/></p:x>", id="cSld-empty"),
    ],
)
def test_shape_tree_is_the_first_in_document_order(body: str) -> None:
    root = etree.fromstring(f'<p:sld xmlns:p="{P}">{body}</p:sld>')

    tree = _shape_tree(root)

    assert tree is not None and tree.get("n") == "1"


def shape_tree_of(part: bytes) -> etree._Element | None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("ppt/slides/slide1.xml", part)
    with Package(buffer.getvalue(), ExtractContext(), "PPTX") as package:
        return _read_shape_tree(package, "ppt/slides/slide1.xml")


SHAPES = "<p:cSld><p:spTree><p:sp n='{n}'/></p:spTree></p:cSld>"


@pytest.mark.parametrize(
    ("part", "expected"),
    [
        pytest.param(
            f'<?xml version="1.0"?><p:sld xmlns:p="{P}">'
            + SHAPES.format(n=1)
            + "<p:timing><p:x/></p:timing></p:sld>",
            "1",
            id="cut",
        ),
        pytest.param(
            f'<p:sld xmlns:p="{P}"><p:cSld><!-- </p:cSld> --><p:spTree>'
            "<p:sp n='1'/></p:spTree></p:cSld></p:sld>",
            "1",
            id="comment-hides-an-end-tag",
        ),
        pytest.param(
            f'<p:sld xmlns:p="{P}"><p:cSld/><p:x><p:spTree><p:sp n="2"/>'
            "</p:spTree></p:x></p:sld>",
            "2",
            id="shapes-outside-cSld",
        ),
        pytest.param(
            f'<p:sld xmlns:p="{P}">' + SHAPES.format(n=1) + "<p:timing></p:sld>",
            "1",
            id="broken-after-the-shapes",
        ),
    ],
)
def test_shape_tree_read_from_a_cut_matches_the_whole_part(
    part: str, expected: str
) -> None:
    tree = shape_tree_of(part.encode())

    assert tree is not None
    assert [shape.get("n") for shape in tree] == [expected]


def test_part_broken_inside_the_shapes_is_corrupt() -> None:
    part = f'<p:sld xmlns:p="{P}"><p:cSld><p:spTree></p:cSld></p:sld>'

    with pytest.raises(CorruptDocument, match="slide1"):
        shape_tree_of(part.encode())


def slide_ids_of(part: str) -> list[str | None]:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("ppt/presentation.xml", part.encode())
    with Package(buffer.getvalue(), ExtractContext(), "PPTX") as package:
        root = _read_slide_list(package, "ppt/presentation.xml")
    return [element.get("id") for element in root.iter(f"{{{P}}}sldId")]


DECK = f'<?xml version="1.0"?><p:presentation xmlns:p="{P}">{{}}</p:presentation>'
SLIDES = "<p:sldIdLst><p:sldId id='1'/><p:sldId id='2'/></p:sldIdLst>"
STYLES = "<p:defaultTextStyle><p:x/></p:defaultTextStyle>"


@pytest.mark.parametrize(
    ("part", "expected"),
    [
        pytest.param(DECK.format(SLIDES + STYLES), ["1", "2"], id="cut"),
        pytest.param(
            DECK.format(SLIDES + "<p:sldIdLst><p:sldId id='3'/></p:sldIdLst>"),
            ["1", "2", "3"],
            id="a-second-list",
        ),
        pytest.param(
            DECK.format(SLIDES + f"<q:sldId xmlns:q='{P}' id='3'/>"),
            ["1", "2", "3"],
            id="namespace-bound-again",
        ),
        pytest.param(
            f'<p:presentation xmlns:p="{P}" xmlns:q="{P}">{SLIDES}'
            "<q:sldId id='3'/></p:presentation>",
            ["1", "2", "3"],
            id="root-binds-two-prefixes",
        ),
        pytest.param(
            DECK.format(
                "<p:sldIdLst><p:sldId id='1'/><!-- </p:sldIdLst> -->"
                "<p:sldId id='2'/></p:sldIdLst>"
            ),
            ["1", "2"],
            id="comment-hides-an-end-tag",
        ),
        pytest.param(
            DECK.format("<p:x>" + SLIDES + "</p:x>" + STYLES),
            ["1", "2"],
            id="list-nested",
        ),
        # Deliberate: as with a slide's shapes, a part broken after what is
        # read keeps the deck readable.
        pytest.param(
            DECK.format(SLIDES + "<p:defaultTextStyle>"),
            ["1", "2"],
            id="broken-after-the-list",
        ),
    ],
)
def test_slide_list_read_from_a_cut_matches_the_whole_part(
    part: str, expected: list[str]
) -> None:
    assert expected == slide_ids_of(part)


def test_presentation_broken_inside_the_slide_list_is_corrupt() -> None:
    with pytest.raises(CorruptDocument, match="presentation"):
        slide_ids_of(DECK.format("<p:sldIdLst><p:sldId id='1'></p:sldIdLst>"))


def test_text_after_an_unexpanded_entity_reference_is_kept() -> None:
    deck = Presentation()
    titled_slide(deck, "Plan", "MARKER")
    source = io.BytesIO(saved(deck))
    target = io.BytesIO()
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for item in old.infolist():
            data = old.read(item)
            if item.filename == "ppt/slides/slide1.xml":
                declaration, rest = data.split(b"?>", 1)
                data = (
                    declaration
                    + b'?><!DOCTYPE p:sld [<!ENTITY e "expanded">]>'
                    + rest.replace(b"MARKER", b"kept &e; and after")
                )
            new.writestr(item, data)

    result = extract_pptx(target.getvalue(), ExtractContext())

    # The reference is dropped, not expanded; the text after it stays.
    assert result.pages == ["Plan\nkept  and after"]
