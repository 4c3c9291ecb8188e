"""
DOCX: body paragraphs and tables in reading order, then the text that lives
in other parts (headers, footers, footnotes, endnotes, comments).

A large body is read with ``iterparse`` one top-level block at a time and
each block is dropped once rendered, so an 800-page handbook never sits in
memory as a whole tree; a small one is parsed whole, which is quicker.
Text boxes are rendered after the paragraph that anchors them; of an
``mc:AlternateContent`` only the first ``mc:Choice`` is read, since its
``mc:Fallback`` repeats the same content for older readers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from lxml import etree

from docmill.exceptions import CorruptDocument, ExtractionError
from docmill.extract import mime
from docmill.extract.base import ExtractContext, ExtractionResult, Source
from docmill.extract.ooxml import (
    MC,
    Block,
    Package,
    R,
    W,
    cell_block,
    compose_sections,
    iterparse,
    joined_blocks,
    markdown_table,
    parse_xml,
    with_marks,
)

_P = f"{{{W}}}p"
_R = f"{{{W}}}r"
_T = f"{{{W}}}t"
_TBL = f"{{{W}}}tbl"
_TR = f"{{{W}}}tr"
_TC = f"{{{W}}}tc"
_SDT = f"{{{W}}}sdt"
_SDT_CONTENT = f"{{{W}}}sdtContent"
_CUSTOM_XML = f"{{{W}}}customXml"
_BODY = f"{{{W}}}body"
_SECT_PR = f"{{{W}}}sectPr"
_P_PR = f"{{{W}}}pPr"
_P_STYLE = f"{{{W}}}pStyle"
_NUM_PR = f"{{{W}}}numPr"
_NUM_ID = f"{{{W}}}numId"
_ILVL = f"{{{W}}}ilvl"
_TC_PR = f"{{{W}}}tcPr"
_GRID_SPAN = f"{{{W}}}gridSpan"
_HYPERLINK = f"{{{W}}}hyperlink"
_TXBX_CONTENT = f"{{{W}}}txbxContent"
_FOOTNOTE_REF = f"{{{W}}}footnoteReference"
_ENDNOTE_REF = f"{{{W}}}endnoteReference"
_VAL = f"{{{W}}}val"
_ID = f"{{{W}}}id"
_TYPE = f"{{{W}}}type"
_AUTHOR = f"{{{W}}}author"
_ANCHOR = f"{{{W}}}anchor"
_R_ID = f"{{{R}}}id"
_ALTERNATE = f"{{{MC}}}AlternateContent"
_CHOICE = f"{{{MC}}}Choice"

_CHARACTERS = {
    f"{{{W}}}tab": "\t",
    f"{{{W}}}ptab": "\t",
    f"{{{W}}}br": "\n",
    f"{{{W}}}cr": "\n",
    f"{{{W}}}noBreakHyphen": "-",
}
# Subtrees with no readable text, or with text that is not the document's:
# formatting, deleted revisions, field instructions.
_SKIPPED = frozenset(
    f"{{{W}}}{name}"
    for name in (
        "rPr",
        "pPr",
        "tblPr",
        "trPr",
        "tcPr",
        "tblGrid",
        "sectPr",
        "del",
        "moveFrom",
        "delText",
        "instrText",
        "fldChar",
        "softHyphen",
        "bookmarkStart",
        "bookmarkEnd",
        "proofErr",
        "lastRenderedPageBreak",
        "commentRangeStart",
        "commentRangeEnd",
        "commentReference",
        "annotationRef",
        "footnoteRef",
        "endnoteRef",
        "separator",
        "continuationSeparator",
    )
) | {f"{{{MC}}}Fallback"}
_BODY_TAGS = (_P, _TBL, _SDT, _CUSTOM_XML, _ALTERNATE, _SECT_PR)
_BODY_BLOCK_TAGS = frozenset(_BODY_TAGS) - {_SECT_PR}
# A body up to this size is parsed whole; a larger one is streamed a block
# at a time. The whole tree takes 20-35 times the body's bytes (measured on
# 1 MiB bodies: 25 MiB for empty paragraphs, 34 MiB with attributes, where
# streaming held 9-9.5), well under a child's memory cap.
WHOLE_BODY_BYTES = 1024 * 1024
_HEADING_NAME = re.compile(r"heading\s*(\d)", re.IGNORECASE)
_HEADING_ID = re.compile(r"heading(\d)", re.IGNORECASE)
_SECTIONS = (
    ("header", "Headers"),
    ("footer", "Footers"),
    ("footnotes", "Footnotes"),
    ("endnotes", "Endnotes"),
    ("comments", "Comments"),
)


@dataclass(slots=True)
class Style:
    heading: int = 0
    num_id: str | None = None
    level: int = 0


def extract_docx(source: Source, ctx: ExtractContext) -> ExtractionResult:
    with Package(source, ctx, "DOCX") as package:
        main = package.main_part("word/document.xml")
        relationships = package.relationships(main)
        reader = _Reader(
            styles=_read_styles(package, _targets(relationships, "styles")),
            ordered=_read_numbering(package, _targets(relationships, "numbering")),
            links={rel.id: rel.target for rel in relationships},
        )
        blocks = reader.read_body(package.read_xml(main))
        extras = [
            (title, _read_extra(package, reader, kind, relationships))
            for kind, title in _SECTIONS
        ]
        metadata = package.core_properties()

    metadata["sections"] = reader.sections
    metadata["tables"] = reader.tables
    text, markdown = compose_sections(blocks, [(t, b) for t, b in extras if b])
    return ExtractionResult(mime.DOCX, text, markdown=markdown, metadata=metadata)


def _targets(relationships: list[Any], kind: str) -> list[str]:
    return sorted(
        {rel.target for rel in relationships if rel.kind == kind and not rel.external},
        key=_natural_key,
    )


def _natural_key(name: str) -> list[Any]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


class _Reader:
    """Renders WordprocessingML blocks to text and Markdown."""

    def __init__(
        self,
        styles: _Styles,
        ordered: _Numbering,
        links: dict[str, str],
    ) -> None:
        self.styles = styles
        self.ordered = ordered
        self.links = links
        self.sections = 0
        self.tables = 0

    def read_body(self, data: bytes) -> list[Block]:
        if len(data) <= WHOLE_BODY_BYTES:
            blocks = self._read_whole_body(data)
            if blocks is not None:
                return blocks
        return self._stream_body(data)

    def _read_whole_body(self, data: bytes) -> list[Block] | None:
        # iterparse spends a Python event per element; one parse of a small
        # body took 60% of its time (a 7 KB body: 240 µs against 420). With
        # one w:body no block is cleared before it is read, so the blocks
        # are those _stream_body gives. A body that does not parse is left
        # to _stream_body, which fails the same way it always did.
        try:
            root = parse_xml(data, "DOCX body")
        except ExtractionError:
            return None
        bodies = list(root.iter(_BODY))
        if len(bodies) > 1:
            return None
        blocks: list[Block] = []
        for element in bodies[0] if bodies else ():
            tag = element.tag
            if tag in _BODY_BLOCK_TAGS:
                if tag == _TBL:
                    self.tables += 1
                self._block(element, blocks)
        self.sections += sum(1 for _ in root.iter(_SECT_PR))
        return blocks

    def _stream_body(self, data: bytes) -> list[Block]:
        blocks: list[Block] = []
        for element in iterparse(data, "DOCX body", _BODY_TAGS):
            if element.tag == _SECT_PR:
                self.sections += 1
                continue
            parent = element.getparent()
            if parent is None or parent.tag != _BODY:
                continue
            if element.tag == _TBL:
                self.tables += 1
            self._block(element, blocks)
            # Rendered blocks are dropped so memory stays one block deep.
            element.clear(keep_tail=True)
            while element.getprevious() is not None:
                del parent[0]
        return blocks

    def blocks(self, container: etree._Element) -> list[Block]:
        blocks: list[Block] = []
        for child in container:
            self._block(child, blocks)
        return blocks

    def _block(self, element: etree._Element, blocks: list[Block]) -> None:
        tag = element.tag
        if tag == _P:
            self._paragraph(element, blocks)
        elif tag == _TBL:
            blocks.append(self._table(element))
        elif tag in (_SDT, _CUSTOM_XML):
            content = element.find(_SDT_CONTENT) if tag == _SDT else element
            if content is not None:
                for child in content:
                    self._block(child, blocks)
        elif tag == _ALTERNATE:
            choice = element.find(_CHOICE)
            if choice is not None:
                for child in choice:
                    self._block(child, blocks)

    def _paragraph(self, paragraph: etree._Element, blocks: list[Block]) -> None:
        parts: list[str] = []
        marks: list[tuple[int, str]] = []
        boxes: list[etree._Element] = []
        self._collect(paragraph, parts, marks, boxes)
        text = "".join(parts).strip()
        if text:
            inline = with_marks(parts, marks).strip() if marks else text
            blocks.append(self._styled(paragraph, text, inline))
        for box in boxes:
            blocks.extend(self.blocks(box))

    def _collect(
        self,
        element: etree._Element,
        parts: list[str],
        marks: list[tuple[int, str]],
        boxes: list[etree._Element],
    ) -> None:
        for child in element:
            tag = child.tag
            if tag == _T:
                parts.append(child.text or "")
                if len(child):
                    # Entity references are left unexpanded, as nodes; the
                    # text after each is that node's tail.
                    parts.extend(node.tail or "" for node in child)
            elif tag == _R:
                self._collect(child, parts, marks, boxes)
            elif tag in _SKIPPED:
                continue
            elif tag in _CHARACTERS:
                parts.append(_CHARACTERS[tag])
            elif tag == _TXBX_CONTENT:
                boxes.append(child)
            elif tag == _HYPERLINK:
                self._hyperlink(child, parts, marks, boxes)
            elif tag in (_FOOTNOTE_REF, _ENDNOTE_REF):
                marks.append((len(parts), f"[^{_note_label(tag, child.get(_ID))}]"))
            elif tag == _ALTERNATE:
                choice = child.find(_CHOICE)
                if choice is not None:
                    self._collect(choice, parts, marks, boxes)
            elif isinstance(tag, str):
                self._collect(child, parts, marks, boxes)

    def _hyperlink(
        self,
        link: etree._Element,
        parts: list[str],
        marks: list[tuple[int, str]],
        boxes: list[etree._Element],
    ) -> None:
        start, first_mark = len(parts), len(marks)
        self._collect(link, parts, marks, boxes)
        target = self.links.get(link.get(_R_ID, ""))
        if target is None and link.get(_ANCHOR):
            target = f"#{link.get(_ANCHOR)}"
        if target is None or not "".join(parts[start:]).strip():
            return
        marks.insert(first_mark, (start, "["))
        marks.append((len(parts), f"]({target})"))

    def _styled(self, paragraph: etree._Element, text: str, inline: str) -> Block:
        style = _PLAIN
        num_id: str | None = None
        level = 0
        # The schema puts pPr first in a paragraph, and a walk over its
        # children finds both references for less than one find() costs
        # (lxml's find goes through its path engine): on an 800-page
        # document these lookups were a seventh of the time.
        properties = next(iter(paragraph), None)
        if properties is not None and properties.tag == _P_PR:
            style_ref = numbering = None
            for child in properties:
                tag = child.tag
                if tag == _P_STYLE:
                    style_ref = style_ref if style_ref is not None else child
                elif tag == _NUM_PR:
                    numbering = numbering if numbering is not None else child
            if style_ref is not None:
                style = self.styles.get(style_ref.get(_VAL, ""), style)
            num_id, level = style.num_id, style.level
            if numbering is not None:
                num_id, level = _numbering_ref(numbering, num_id, level)

        if style.heading:
            prefix = "#" * min(style.heading, 6)
            return Block(text, f"{prefix} {inline}", inline)
        if num_id and num_id != "0":
            ordered = self.ordered.get((num_id, level), False)
            marker = "1." if ordered else "-"
            return Block(text, f"{marker} {inline}", inline, level=level)
        return Block(text, inline, inline)

    def _table(self, table: etree._Element) -> Block:
        rows: list[list[Block]] = []
        for row in table.iter(_TR):
            # Rows of a table nested in a cell belong to that cell.
            if row.getparent() is not table:
                continue
            cells: list[Block] = []
            for cell in row.iter(_TC):
                if cell.getparent() is not row:
                    continue
                cells.append(cell_block(self.blocks(cell)))
                cells.extend(_EMPTY_CELL for _ in range(_grid_span(cell) - 1))
            rows.append(cells)
        return _table_block(rows)

    def notes(self, root: etree._Element, kind: str) -> list[Block]:
        blocks: list[Block] = []
        for note in root:
            if note.get(_TYPE) not in (None, "normal"):
                continue
            content = joined_blocks(self.blocks(note))
            if content.text:
                label = _note_label(note.tag, note.get(_ID))
                if kind == "comments":
                    author = note.get(_AUTHOR)
                    text = f"{author}: {content.text}" if author else content.text
                    markdown = f"- **{author}**: {content.inline}" if author else ""
                    markdown = markdown or f"- {content.inline}"
                    blocks.append(Block(text, markdown, content.inline, level=0))
                else:
                    markdown = f"[^{label}]: {content.inline}"
                    blocks.append(Block(content.text, markdown, content.inline))
        return blocks


_EMPTY_CELL = Block("", "", "")
# The style of a paragraph that names none; shared, never changed.
_PLAIN = Style()


def _note_label(tag: str, note_id: str | None) -> str:
    prefix = "e" if "endnote" in tag else ""
    return f"{prefix}{note_id or ''}"


def _numbering_ref(
    numbering: etree._Element, num_id: str | None, level: int
) -> tuple[str | None, int]:
    id_element = numbering.find(_NUM_ID)
    level_element = numbering.find(_ILVL)
    if id_element is not None:
        num_id = id_element.get(_VAL)
    if level_element is not None:
        level = _int(level_element.get(_VAL))
    return num_id, level


def _grid_span(cell: etree._Element) -> int:
    span = cell.find(f"{_TC_PR}/{_GRID_SPAN}")
    return max(1, min(_int(span.get(_VAL)), 64)) if span is not None else 1


def _int(value: str | None) -> int:
    try:
        return int(value or 0)
    except ValueError:
        return 0


def _table_block(rows: list[list[Block]]) -> Block:
    rows = [row for row in rows if row]
    if not rows:
        return _EMPTY_CELL
    text = "\n".join("\t".join(cell.text for cell in row).rstrip() for row in rows)
    markdown = markdown_table([[cell.inline for cell in row] for row in rows])
    return Block(text, markdown, text.replace("\n", " "))


def _read_styles(package: Package, names: list[str]) -> _Styles:
    name = names[0] if names else "word/styles.xml"
    if name not in package:
        return _Styles(None, name)
    return _Styles(package.read_xml(name), f"DOCX part {name!r}")


class _Styles:
    """
    A document's paragraph styles, each worked out when a paragraph names it.

    Templates define hundreds of styles and a document uses a handful; the
    styles part is often ten times the size of the body (python-docx's
    template holds 350 KB of them), so parsing it whole was most of the time
    spent on a typical DOCX. Instead each style element is found in the raw
    bytes and only the ones named are parsed, each wrapped in the part's
    root tag so its namespace prefixes resolve. Anything that could make a
    byte search lie (a comment, CDATA, a DOCTYPE, a non-UTF-8 encoding, a
    start tag the search cannot read) sends the part to one full parse, as
    before; so does a style fragment that does not parse.
    """

    def __init__(self, data: bytes | None, what: str) -> None:
        self._data = data
        self._what = what
        self._styles: dict[str, Style | None] = {}
        self._index: dict[str, tuple[int, int]] | None = None
        self._wrap = (b"", b"")
        self._elements: dict[str, etree._Element] | None = None

    def get(self, style_id: str, default: Style) -> Style:
        if style_id in self._styles:
            return self._styles[style_id] or default
        element = self._element(style_id)
        style: Style | None
        if element is not None:
            style = _read_style(style_id, element)
        elif self._data is None:
            style = _built_in_style(style_id)
        else:
            style = None
        self._styles[style_id] = style
        return style or default

    def _element(self, style_id: str) -> etree._Element | None:
        if self._data is None:
            return None
        if self._elements is None and self._index is None:
            self._index = _style_index(self._data)
            if self._index is None:
                self._parse_all()
            else:
                self._wrap = _root_wrapper(self._data)
        if self._elements is not None:
            return self._elements.get(style_id)
        assert self._index is not None
        span = self._index.get(style_id)
        if span is None:
            return None
        head, tail = self._wrap
        try:
            root = parse_xml(head + self._data[span[0] : span[1]] + tail, self._what)
        except CorruptDocument:
            root = None
        element = root[0] if root is not None and len(root) else None
        if (
            element is None
            or element.tag != _STYLE
            or element.get(_STYLE_ID) != style_id
        ):
            # The byte search misread the part: fall back to the full parse.
            self._parse_all()
            return self._element(style_id)
        return element

    def _parse_all(self) -> None:
        assert self._data is not None
        root = parse_xml(self._data, self._what)
        self._index = None
        self._elements = {}
        for element in root.iter(_STYLE):
            style_id = element.get(_STYLE_ID)
            if style_id:
                self._elements[style_id] = element


_STYLE = f"{{{W}}}style"
_STYLE_ID = f"{{{W}}}styleId"
# A style element's start tag with its id, and the prefix it is written with
# (group 1). An attribute value may hold ">" (never "<"), so a start tag this
# misses is caught by counting every "<prefix:style" in the part.
_STYLE_TAG = re.compile(
    rb"<((?:[A-Za-z_][\w.-]*:)?)style(?=[\s/>])[^>]*?"
    rb"\s(?:[A-Za-z_][\w.-]*:)?styleId\s*=\s*(?:\"([^\"<&]*)\"|'([^'<&]*)')[^>]*>"
)
_ANY_STYLE_TAG = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?style(?=[\s/>])")
_ROOT_TAG = re.compile(rb"<([A-Za-z_][\w.:-]*)[^>]*>")
_DECLARED_ENCODING = re.compile(rb"encoding\s*=\s*[\"']([A-Za-z0-9._-]+)")


def _style_index(data: bytes) -> dict[str, tuple[int, int]] | None:
    """Byte spans of each style element by id, or None to parse in full."""
    if b"<!" in data or not data.startswith((b"<?xml", b"<")):
        return None
    declaration = data[: data.find(b"?>")] if data.startswith(b"<?xml") else b""
    encoding = _DECLARED_ENCODING.search(declaration)
    if encoding and encoding.group(1).lower() not in (b"utf-8", b"utf8"):
        return None
    index: dict[str, tuple[int, int]] = {}
    found = 0
    for match in _STYLE_TAG.finditer(data):
        found += 1
        prefix = match.group(1)
        start, end = match.start(), match.end()
        if data[end - 2 : end] != b"/>":
            close = data.find(b"</" + prefix + b"style>", end)
            if close < 0:
                return None
            end = close + len(prefix) + 8
        raw_id = match.group(2) if match.group(2) is not None else match.group(3)
        try:
            style_id = raw_id.decode("utf-8")
        except UnicodeDecodeError:
            return None
        if style_id:
            index[style_id] = (start, end)
    # A style start tag the pattern could not read (no id, or a ">" inside a
    # value before the id) would be a style silently lost.
    if found != len(_ANY_STYLE_TAG.findall(data)):
        return None
    return index


def _root_wrapper(data: bytes) -> tuple[bytes, bytes]:
    # The root start tag carries the namespace declarations a fragment needs.
    start = data.find(b"?>") + 2 if data.startswith(b"<?xml") else 0
    match = _ROOT_TAG.search(data, start)
    if match is None or match.group(0).endswith(b"/>"):
        return b"<x>", b"</x>"
    return match.group(0), b"</" + match.group(1) + b">"


def _read_style(style_id: str, element: etree._Element) -> Style:
    name_element = element.find(f"{{{W}}}name")
    name = name_element.get(_VAL, "") if name_element is not None else ""
    style = Style(heading=_heading_level(style_id, name))
    numbering = element.find(f"{_P_PR}/{_NUM_PR}")
    if numbering is not None:
        style.num_id, style.level = _numbering_ref(numbering, None, 0)
    return style


def _built_in_style(style_id: str) -> Style | None:
    # A package with no styles part still names Word's built-in styles by
    # their ids (Heading1, Title; some writers use the name, "heading 1"):
    # its headings were read as plain paragraphs.
    level = _heading_level(style_id, style_id)
    return Style(heading=level) if level else None


def _heading_level(style_id: str, name: str) -> int:
    if name.lower() == "title" or style_id.lower() == "title":
        return 1
    match = _HEADING_NAME.fullmatch(name) or _HEADING_ID.fullmatch(style_id)
    return int(match.group(1)) if match else 0


def _read_numbering(package: Package, names: list[str]) -> _Numbering:
    name = names[0] if names else "word/numbering.xml"
    if name not in package:
        return _Numbering(None, name)
    return _Numbering(package.read_xml(name), f"DOCX part {name!r}")


class _Numbering:
    """
    Whether each list (numbering id and level) is ordered, worked out from
    the numbering part when a paragraph first asks.

    Word and the templates it starts from write a numbering part into
    documents that number no paragraph, and parsing it cost as much as
    reading a short body; it is read (and charged to the budget) in its
    place, and parsed only once needed. So a numbering part broken in a
    document that numbers nothing no longer fails the document.
    """

    def __init__(self, data: bytes | None, what: str) -> None:
        self._data = data
        self._what = what
        self._ordered: dict[tuple[str, int], bool] | None = None

    def get(self, key: tuple[str, int], default: bool) -> bool:
        if self._ordered is None:
            self._ordered = (
                _ordered_lists(parse_xml(self._data, self._what))
                if self._data is not None
                else {}
            )
        return self._ordered.get(key, default)


def _ordered_lists(root: etree._Element) -> dict[tuple[str, int], bool]:
    abstract: dict[str, dict[int, bool]] = {}
    for element in root.iter(f"{{{W}}}abstractNum"):
        levels = abstract.setdefault(element.get(f"{{{W}}}abstractNumId", ""), {})
        for level in element.iter(f"{{{W}}}lvl"):
            number_format = level.find(f"{{{W}}}numFmt")
            kind = number_format.get(_VAL) if number_format is not None else "bullet"
            levels[_int(level.get(f"{{{W}}}ilvl"))] = kind not in ("bullet", "none")
    ordered: dict[tuple[str, int], bool] = {}
    for element in root.iter(f"{{{W}}}num"):
        reference = element.find(f"{{{W}}}abstractNumId")
        if reference is None:
            continue
        for level, is_ordered in abstract.get(reference.get(_VAL, ""), {}).items():
            ordered[(element.get(f"{{{W}}}numId", ""), level)] = is_ordered
    return ordered


def _read_extra(
    package: Package, reader: _Reader, kind: str, relationships: list[Any]
) -> list[Block]:
    blocks: list[Block] = []
    seen: set[str] = set()
    for name in _targets(relationships, kind):
        root = package.parse_optional(name)
        if root is None:
            continue
        found = reader.notes(root, kind) if kind.endswith("s") else reader.blocks(root)
        for block in found:
            # Sections often repeat one header; it is worth reading once.
            if block.text not in seen:
                seen.add(block.text)
                blocks.append(block)
    return blocks
