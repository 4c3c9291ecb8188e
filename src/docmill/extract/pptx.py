"""
PPTX: one page per slide, in the order ``ppt/presentation.xml`` lists them.

A slide's page holds its shapes' text (grouped shapes, tables and SmartArt
included) followed by its speaker notes. Text that lives on the slide masters
and layouts the deck uses is added once for the whole deck, after the slides:
only static shapes and header or footer placeholders count there, since the
other placeholders hold prompts ("Click to edit Master title style") rather
than content.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from lxml import etree

from docmill.exceptions import CorruptDocument
from docmill.extract import mime
from docmill.extract.base import ExtractContext, ExtractionResult, Source
from docmill.extract.ooxml import MC, A, P, Package, R, markdown_table, parse_xml

_SP = f"{{{P}}}sp"
_GRP_SP = f"{{{P}}}grpSp"
_GRAPHIC_FRAME = f"{{{P}}}graphicFrame"
_SP_TREE = f"{{{P}}}spTree"
_C_SLD = f"{{{P}}}cSld"
# The declaration, the root's start tag (group 1 its name) and the start of
# cSld (group 2) right after it. Attribute values may hold ">", not "<".
_SHAPES_HEAD = re.compile(
    rb"""(?:\xef\xbb\xbf)?\s*(?:<\?xml[^<>]*\?>)?\s*"""
    rb"""<([\w.-]+:(?:sld|sldLayout|sldMaster|notes))"""
    rb"""(?:\s+[\w:.-]+\s*=\s*(?:"[^"]*"|'[^']*'))*\s*>\s*(<p:cSld[\s>])"""
)
_C_SLD_END = b"</p:cSld>"
# The presentation part's declaration and root start tag (group 1 its name).
_PRESENTATION_HEAD = re.compile(
    rb"""(?:\xef\xbb\xbf)?\s*(?:<\?xml[^<>]*\?>)?\s*"""
    rb"""<([\w.-]+:presentation)"""
    rb"""(?:\s+[\w:.-]+\s*=\s*(?:"[^"]*"|'[^']*'))*\s*>"""
)
_SLD_ID_LST_END = b"</p:sldIdLst>"
_P_URI = P.encode()
_P_PREFIXED = re.compile(
    rb"""\sxmlns:p\s*=\s*["']""" + re.escape(_P_URI) + rb"""["']"""
)
_P_SLD_ID = re.compile(rb"<p:sldId[\s/>]")
_PH = f"{{{P}}}ph"
_TX_BODY = f"{{{P}}}txBody"
_SLD_ID = f"{{{P}}}sldId"
_A_P = f"{{{A}}}p"
_A_T = f"{{{A}}}t"
_A_BR = f"{{{A}}}br"
_A_TBL = f"{{{A}}}tbl"
_A_TR = f"{{{A}}}tr"
_A_TC = f"{{{A}}}tc"
_R_ID = f"{{{R}}}id"
_R_DM = f"{{{R}}}dm"
_ALTERNATE = f"{{{MC}}}AlternateContent"
_CHOICE = f"{{{MC}}}Choice"
_DIAGRAM = "http://schemas.openxmlformats.org/drawingml/2006/diagram"
_DIAGRAM_TEXT = f"{{{_DIAGRAM}}}t"
_DIAGRAM_RELS = f"{{{_DIAGRAM}}}relIds"
_NV_PR = f"{{{P}}}nvPr"

_TITLE_PLACEHOLDERS = frozenset({"title", "ctrTitle"})
# On a notes page these show the slide's picture, number and running text.
_NOTES_CHROME = frozenset({"sldImg", "sldNum", "hdr", "ftr", "dt"})
# On masters and layouts only these placeholders carry real content.
_MASTER_CONTENT = frozenset({"hdr", "ftr"})

SLIDE_SEPARATOR = "\n\n---\n\n"


@dataclass
class Slide:
    """The readable content of one slide."""

    title: str = ""
    text: list[str] = field(default_factory=list)
    markdown: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def extract_pptx(source: Source, ctx: ExtractContext) -> ExtractionResult:
    with Package(source, ctx, "PPTX") as package:
        presentation = package.main_part("ppt/presentation.xml")
        slide_names = _slide_order(package, presentation)
        slides: list[Slide] = []
        templates: list[str] = []
        for number, name in enumerate(slide_names, start=1):
            slides.append(_read_slide(package, name))
            templates.extend(_templates_of(package, name, templates))
            ctx.progress(number, len(slide_names), "slides")
        master_lines = _master_text(package, templates, slides)
        metadata = package.core_properties()

    metadata["slides"] = len(slides)
    pages = [_page_text(slide) for slide in slides]
    text = "\n\n".join(pages)
    markdown = SLIDE_SEPARATOR.join(_page_markdown(slide) for slide in slides)
    if master_lines:
        text += "\n\n--- Slide masters ---\n" + "\n".join(master_lines)
        markdown += "\n\n## Slide masters\n\n" + "\n\n".join(master_lines)
    return ExtractionResult(
        mime.PPTX,
        text.strip("\n"),
        pages=pages,
        markdown=markdown.strip("\n"),
        metadata=metadata,
    )


def _slide_order(package: Package, presentation: str) -> list[str]:
    if presentation not in package:
        raise CorruptDocument("the PPTX has no presentation part")
    targets = {rel.id: rel.target for rel in package.related(presentation, "slide")}
    root = _read_slide_list(package, presentation)
    names = []
    for slide_id in root.iter(_SLD_ID):
        name = targets.get(slide_id.get(_R_ID, ""))
        if name is not None and name in package:
            names.append(name)
    return names


def _read_slide(package: Package, name: str) -> Slide:
    slide = Slide()
    tree = _read_shape_tree(package, name)
    diagrams = {rel.id: rel.target for rel in package.related(name, "diagramData")}
    if tree is not None:
        _read_shapes(package, tree, slide, diagrams)
    for rel in package.related(name, "notesSlide"):
        notes_tree = (
            _read_shape_tree(package, rel.target) if rel.target in package else None
        )
        if notes_tree is not None:
            slide.notes.extend(_plain_shape_text(notes_tree, _NOTES_CHROME))
    return slide


def _read_slide_list(package: Package, name: str) -> etree._Element:
    """
    The presentation part, parsed as far as its slide list where that gives
    the slides a whole parse would.

    The slide list comes early, ahead of the default text styles that make
    up most of the part: parsing up to ``</p:sldIdLst>`` took a small deck's
    parse from 53 to 6 µs. The cut is taken under the conditions
    ``_read_shape_tree`` sets, and only if no slide can follow it: the root
    binds the presentation namespace to ``p`` alone, and the rest neither
    names it nor holds a ``p:sldId``. As there, a part broken after its
    slide list now gives the slides instead of failing.
    """
    data = package.read_xml(name)
    what = f"{package.kind} part {name!r}"
    head = _PRESENTATION_HEAD.match(data)
    if head is not None:
        end = data.find(_SLD_ID_LST_END, head.end())
        rest = end + len(_SLD_ID_LST_END)
        if (
            end != -1
            and head.group(0).count(_P_URI) == 1
            and _P_PREFIXED.search(head.group(0))
            and data.find(_P_URI, rest) == -1
            and _P_SLD_ID.search(data, rest) is None
            and not _follows_lt(data, b"!", end)
            and not _follows_lt(data, b"?", end, head.end())
        ):
            cut = data[:rest] + b"</" + head.group(1) + b">"
            try:
                return parse_xml(cut, what)
            except CorruptDocument:
                pass
    return parse_xml(data, what)


def _read_shape_tree(package: Package, name: str) -> etree._Element | None:
    """
    The shape tree of a slide, notes page, layout or master.

    Everything read from these parts sits in ``p:cSld``, the root's first
    child; what follows (a master's text styles, a slide's timing) can be as
    large again. So the part is cut after ``</p:cSld>`` and closed, and the
    prefix parses to the same ``p:cSld`` as the whole would. The cut is taken
    only when the first ``</p:cSld>`` must be the real end tag: nothing but
    the declaration before the root, and no comment, CDATA section or
    processing instruction ahead of it. Anything else is parsed whole.
    Unlike a whole parse, the cut does not notice a part broken after its
    shapes; such a deck now keeps that slide's text instead of failing.
    """
    data = package.read_xml(name)
    what = f"{package.kind} part {name!r}"
    head = _SHAPES_HEAD.match(data)
    if head is not None:
        end = data.find(_C_SLD_END, head.end())
        if (
            end != -1
            and not _follows_lt(data, b"!", end)
            and not _follows_lt(data, b"?", end, head.start(2))
        ):
            cut = data[: end + len(_C_SLD_END)] + b"</" + head.group(1) + b">"
            try:
                tree = _shape_tree(parse_xml(cut, what))
            except CorruptDocument:
                tree = None
            if tree is not None:
                return tree
    return _shape_tree(parse_xml(data, what))


def _follows_lt(data: bytes, char: bytes, end: int, start: int = 0) -> bool:
    # Whether "<" + char occurs in data[start:end]. A two-byte search for a
    # pair opening with "<" crawls through XML; memchr on the rarer byte
    # does not.
    position = data.find(char, start, end)
    while position != -1:
        if data[position - 1 : position] == b"<":
            return True
        position = data.find(char, position + 1, end)
    return False


def _shape_tree(root: etree._Element) -> etree._Element | None:
    """The part's first ``p:spTree``, where slides, notes and masters keep it."""
    # Like _placeholder: a walk instead of the path engine. The schema puts
    # cSld first and the tree inside it after the background, so the walk
    # finds what a search in document order would; elsewhere, search.
    first = next(iter(root), None)
    if first is not None and first.tag == _C_SLD:
        for tree in first:
            if tree.tag == _SP_TREE:
                return tree
    return root.find(f".//{_SP_TREE}")


def _read_shapes(
    package: Package,
    tree: etree._Element,
    slide: Slide,
    diagrams: dict[str, str],
) -> None:
    for shape in tree:
        tag = shape.tag
        if tag == _SP:
            _read_text_shape(shape, slide)
        elif tag == _GRP_SP:
            _read_shapes(package, shape, slide, diagrams)
        elif tag == _GRAPHIC_FRAME:
            _read_frame(package, shape, slide, diagrams)
        elif tag == _ALTERNATE:
            choice = shape.find(_CHOICE)
            if choice is not None:
                _read_shapes(package, choice, slide, diagrams)


def _read_text_shape(shape: etree._Element, slide: Slide) -> None:
    body = shape.find(_TX_BODY)
    if body is None:
        return
    paragraphs = _paragraphs(body)
    if not paragraphs:
        return
    placeholder = _placeholder(shape)
    kind = placeholder.get("type") if placeholder is not None else None
    if kind in _TITLE_PLACEHOLDERS and not slide.title:
        slide.title = " ".join(paragraphs)
        slide.text.append("\n".join(paragraphs))
        return
    slide.text.append("\n".join(paragraphs))
    slide.markdown.append("\n\n".join(paragraphs))


def _read_frame(
    package: Package,
    frame: etree._Element,
    slide: Slide,
    diagrams: dict[str, str],
) -> None:
    table = frame.find(f".//{_A_TBL}")
    if table is not None:
        rows = [
            [" ".join(_paragraphs(cell)) for cell in row.iter(_A_TC)]
            for row in table.iter(_A_TR)
        ]
        if not any(any(row) for row in rows):
            return
        slide.text.append("\n".join("\t".join(row).rstrip() for row in rows))
        slide.markdown.append(markdown_table(rows))
        return
    smart_art = frame.find(f".//{_DIAGRAM_RELS}")
    if smart_art is not None:
        data = package.parse_optional(diagrams.get(smart_art.get(_R_DM, "")))
        if data is None:
            return
        nodes = [
            text
            for node in data.iter(_DIAGRAM_TEXT)
            if (text := " ".join(_paragraphs(node)))
        ]
        if nodes:
            slide.text.append("\n".join(nodes))
            slide.markdown.append("\n".join(f"- {node}" for node in nodes))


def _placeholder(shape: etree._Element) -> etree._Element | None:
    """The shape's ``*/p:nvPr/p:ph``, found by walking its first two levels."""
    # A path find() goes through lxml's path engine, which cost more than the
    # rest of reading a shape; the walk visits the same few elements.
    for child in shape:
        for properties in child:
            if properties.tag == _NV_PR:
                for element in properties:
                    if element.tag == _PH:
                        return element
    return None


def _run_text(piece: etree._Element) -> str:
    if not len(piece):
        return piece.text or ""
    # Entity references are left unexpanded, as nodes; the text after each
    # is that node's tail.
    return (piece.text or "") + "".join(node.tail or "" for node in piece)


def _paragraphs(container: etree._Element) -> list[str]:
    found = []
    for paragraph in container.iter(_A_P):
        text = "".join(
            _run_text(piece) if piece.tag == _A_T else "\n"
            for piece in paragraph.iter(_A_T, _A_BR)
        ).strip()
        if text:
            found.append(text)
    return found


def _plain_shape_text(tree: etree._Element, skipped: frozenset[str]) -> list[str]:
    lines: list[str] = []
    for shape in tree.iter(_SP):
        placeholder = _placeholder(shape)
        if placeholder is not None and placeholder.get("type") in skipped:
            continue
        body = shape.find(_TX_BODY)
        if body is not None:
            lines.extend(_paragraphs(body))
    return lines


def _templates_of(package: Package, slide: str, seen: list[str]) -> list[str]:
    """Return the layout and master behind ``slide`` not already in ``seen``."""
    found: list[str] = []
    for layout in package.related(slide, "slideLayout"):
        if layout.target in seen or layout.target in found:
            continue
        found.append(layout.target)
        for master in package.related(layout.target, "slideMaster"):
            if master.target not in seen and master.target not in found:
                found.append(master.target)
    return found


def _master_text(
    package: Package, templates: list[str], slides: list[Slide]
) -> list[str]:
    shown = {
        line for slide in slides for block in slide.text for line in block.split("\n")
    }
    lines: list[str] = []
    # Masters first: a layout mostly repeats its master's static text.
    for name in sorted(templates, key=lambda part: "slideMaster" not in part):
        tree = _read_shape_tree(package, name) if name in package else None
        if tree is None:
            continue
        for shape in tree.iter(_SP):
            placeholder = _placeholder(shape)
            if (
                placeholder is not None
                and placeholder.get("type") not in _MASTER_CONTENT
            ):
                continue
            body = shape.find(_TX_BODY)
            for line in _paragraphs(body) if body is not None else []:
                if line not in shown:
                    shown.add(line)
                    lines.append(line)
    return lines


def _page_text(slide: Slide) -> str:
    text = "\n".join(slide.text)
    if slide.notes:
        text += "\n\nNotes:\n" + "\n".join(slide.notes)
    return text.strip("\n")


def _page_markdown(slide: Slide) -> str:
    blocks = [f"## {slide.title}"] if slide.title else []
    blocks.extend(slide.markdown)
    if slide.notes:
        blocks.append("### Notes\n\n" + "\n\n".join(slide.notes))
    return "\n\n".join(blocks)
