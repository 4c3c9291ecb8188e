"""
OpenDocument text (ODT) and presentations (ODP).

``content.xml`` holds the body; ``styles.xml`` the page headers and footers
of an ODT; ``meta.xml`` the title, author and dates. ODF keeps text in mixed
content (an element's text and the tails of its children), unlike OOXML's
one-text-per-run, so the inline walk reads both. Footnotes and comments are
gathered while the body is read and follow it under separators. An ODP's
slides (``draw:page``) become pages.
"""

from __future__ import annotations

import re
from typing import Any

from lxml import etree

from docmill.exceptions import CorruptDocument, EncryptedDocument, EntityBomb
from docmill.extract import mime
from docmill.extract.base import ExtractContext, ExtractionResult, Source
from docmill.extract.ooxml import (
    Block,
    Package,
    blocks_markdown,
    cell_block,
    compose_sections,
    iso_date,
    joined_blocks,
    markdown_table,
    parse_xml,
    with_marks,
)

OFFICE = "urn:oasis:names:tc:opendocument:xmlns:office:1.0"
TEXT = "urn:oasis:names:tc:opendocument:xmlns:text:1.0"
TABLE = "urn:oasis:names:tc:opendocument:xmlns:table:1.0"
DRAW = "urn:oasis:names:tc:opendocument:xmlns:drawing:1.0"
STYLE = "urn:oasis:names:tc:opendocument:xmlns:style:1.0"
PRESENTATION = "urn:oasis:names:tc:opendocument:xmlns:presentation:1.0"
META = "urn:oasis:names:tc:opendocument:xmlns:meta:1.0"
MANIFEST = "urn:oasis:names:tc:opendocument:xmlns:manifest:1.0"
DC = "http://purl.org/dc/elements/1.1/"
XLINK = "http://www.w3.org/1999/xlink"
SVG = "urn:oasis:names:tc:opendocument:xmlns:svg-compatible:1.0"

_P = f"{{{TEXT}}}p"
_H = f"{{{TEXT}}}h"
_LIST = f"{{{TEXT}}}list"
_LIST_ITEM = f"{{{TEXT}}}list-item"
_LIST_HEADER = f"{{{TEXT}}}list-header"
_SPACE = f"{{{TEXT}}}s"
_TAB = f"{{{TEXT}}}tab"
_LINE_BREAK = f"{{{TEXT}}}line-break"
_NOTE = f"{{{TEXT}}}note"
_NOTE_CITATION = f"{{{TEXT}}}note-citation"
_NOTE_BODY = f"{{{TEXT}}}note-body"
_LINK = f"{{{TEXT}}}a"
_TABLE = f"{{{TABLE}}}table"
_ROW = f"{{{TABLE}}}table-row"
_CELL = f"{{{TABLE}}}table-cell"
_COVERED_CELL = f"{{{TABLE}}}covered-table-cell"
_FRAME = f"{{{DRAW}}}frame"
_TEXT_BOX = f"{{{DRAW}}}text-box"
_DRAW_PAGE = f"{{{DRAW}}}page"
_DRAW_PREFIX = f"{{{DRAW}}}"
_ANNOTATION = f"{{{OFFICE}}}annotation"
_NOTES = f"{{{PRESENTATION}}}notes"
_CLASS = f"{{{PRESENTATION}}}class"
_STYLE_NAME = f"{{{TEXT}}}style-name"
_OUTLINE_LEVEL = f"{{{TEXT}}}outline-level"
_COLUMNS_REPEATED = f"{{{TABLE}}}number-columns-repeated"
_ROWS_REPEATED = f"{{{TABLE}}}number-rows-repeated"
_HREF = f"{{{XLINK}}}href"

# Text that is not the document's own: change-tracking records, declarations
# and indexes' generated bodies are read through their visible copies.
_SKIPPED = frozenset(
    {
        f"{{{TEXT}}}tracked-changes",
        f"{{{TEXT}}}sequence-decls",
        f"{{{TEXT}}}variable-decls",
        f"{{{TEXT}}}user-field-decls",
        f"{{{TEXT}}}bookmark",
        f"{{{TEXT}}}bookmark-start",
        f"{{{TEXT}}}bookmark-end",
        f"{{{TEXT}}}soft-page-break",
        f"{{{TEXT}}}change",
        f"{{{TEXT}}}change-start",
        f"{{{TEXT}}}change-end",
        f"{{{OFFICE}}}annotation-end",
        f"{{{DC}}}creator",
        f"{{{DC}}}date",
        f"{{{TABLE}}}table-column",
        f"{{{TABLE}}}table-columns",
        f"{{{OFFICE}}}forms",
        # A shape's accessible name and description, not its visible text.
        f"{{{SVG}}}title",
        f"{{{SVG}}}desc",
    }
)
# Tables repeat empty cells and rows thousands of times to fill the grid;
# repeats are honoured up to this many, and empty trailing ones dropped.
MAX_REPEAT = 100
_HEADER_TAGS = tuple(
    f"{{{STYLE}}}{name}"
    for name in ("header", "header-left", "header-first", "footer", "footer-left")
)
_META_FIELDS = {
    f"{{{DC}}}title": "title",
    f"{{{DC}}}subject": "subject",
    f"{{{DC}}}description": "description",
    f"{{{DC}}}creator": "last_modified_by",
    f"{{{META}}}initial-creator": "author",
    f"{{{META}}}creation-date": "created",
    f"{{{DC}}}date": "modified",
}


def extract_odf(source: Source, ctx: ExtractContext) -> ExtractionResult:
    with Package(source, ctx, "OpenDocument") as package:
        _refuse_encrypted(package)
        media_type = _media_type(package, ctx)
        content = package.parse("content.xml")
        used = {element.get(_STYLE_NAME, "") for element in content.iter(_LIST)}
        styles = _styles(package, used)
        reader = _Reader(_list_styles(content, styles))
        metadata = read_meta(package)
        if media_type == mime.ODP:
            return _presentation(content, reader, metadata, ctx)

        body = content.find(f"{{{OFFICE}}}body/{{{OFFICE}}}text")
        blocks = reader.blocks(body) if body is not None else []
        extras = [
            ("Headers", _page_styles(reader, styles, "header")),
            ("Footers", _page_styles(reader, styles, "footer")),
            ("Footnotes", reader.footnotes),
            ("Endnotes", reader.endnotes),
            ("Comments", reader.comments),
        ]
    text, markdown = compose_sections(blocks, extras)
    return ExtractionResult(mime.ODT, text, markdown=markdown, metadata=metadata)


def _refuse_encrypted(package: Package) -> None:
    name = "META-INF/manifest.xml"
    if name not in package:
        return
    data = package.read_xml(name)
    # No element can be named encryption-data unless the name is in the
    # bytes; most manifests are then not worth parsing.
    if b"encryption-data" not in data:
        return
    manifest = parse_xml(data, f"OpenDocument part {name!r}")
    for entry in manifest.iter(f"{{{MANIFEST}}}file-entry"):
        path = entry.get(f"{{{MANIFEST}}}full-path")
        if (
            path == "content.xml"
            and entry.find(f"{{{MANIFEST}}}encryption-data") is not None
        ):
            raise EncryptedDocument(
                "the OpenDocument file is encrypted with a password; "
                "submit it unprotected"
            )


def _media_type(package: Package, ctx: ExtractContext) -> str:
    if ctx.media_type in (mime.ODT, mime.ODP):
        return ctx.media_type
    if "mimetype" in package:
        declared = package.read("mimetype")[:100].decode("ascii", "replace").strip()
        if declared == mime.ODP:
            return mime.ODP
    return mime.ODT


def read_meta(package: Package) -> dict[str, Any]:
    """Return ``meta.xml``'s title, author and dates as metadata."""
    try:
        root = package.parse_optional("meta.xml")
    except (CorruptDocument, EntityBomb):
        return {}
    metadata: dict[str, Any] = {}
    meta = None if root is None else root.find(f"{{{OFFICE}}}meta")
    if meta is None:
        return metadata
    for element in meta:
        name = _META_FIELDS.get(element.tag) if isinstance(element.tag, str) else None
        value = (element.text or "").strip()
        if name and value:
            metadata[name] = (
                iso_date(value) if name in ("created", "modified") else value
            )
    if "author" not in metadata and "last_modified_by" in metadata:
        metadata["author"] = metadata["last_modified_by"]
    return metadata


class _Reader:
    """Renders ODF text elements to blocks, collecting notes and comments."""

    def __init__(self, ordered_lists: dict[str, dict[int, bool]]) -> None:
        self.ordered_lists = ordered_lists
        self.footnotes: list[Block] = []
        self.endnotes: list[Block] = []
        self.comments: list[Block] = []

    def blocks(self, container: etree._Element) -> list[Block]:
        blocks: list[Block] = []
        for child in container:
            self.read_block(child, blocks)
        return blocks

    def read_block(self, element: etree._Element, blocks: list[Block]) -> None:
        tag = element.tag
        if tag in (_P, _H):
            self._paragraph(element, blocks)
        elif tag == _LIST:
            self._list(element, blocks, 0, element.get(_STYLE_NAME))
        elif tag == _TABLE:
            blocks.append(self._table(element))
        elif tag == _FRAME:
            self.read_frame(element, blocks)
        elif isinstance(tag, str) and tag not in _SKIPPED:
            # Sections, index bodies, shapes: containers of further blocks.
            for child in element:
                self.read_block(child, blocks)

    def _paragraph(
        self,
        paragraph: etree._Element,
        blocks: list[Block],
        level: int = -1,
        marker: str = "",
    ) -> None:
        parts: list[str] = []
        marks: list[tuple[int, str]] = []
        boxes: list[etree._Element] = []
        self._inline(paragraph, parts, marks, boxes)
        text = "".join(parts).strip()
        if text:
            inline = with_marks(parts, marks).strip() if marks else text
            if paragraph.tag == _H:
                depth = min(max(_int(paragraph.get(_OUTLINE_LEVEL), 1), 1), 6)
                blocks.append(Block(text, f"{'#' * depth} {inline}", inline))
            elif level >= 0:
                blocks.append(Block(text, f"{marker} {inline}", inline, level=level))
            else:
                blocks.append(Block(text, inline, inline))
        for box in boxes:
            self.read_block(box, blocks)

    def _inline(
        self,
        element: etree._Element,
        parts: list[str],
        marks: list[tuple[int, str]],
        boxes: list[etree._Element],
    ) -> None:
        if element.text:
            parts.append(element.text)
        for child in element:
            tag = child.tag
            if tag == _SPACE:
                parts.append(" " * min(max(_int(child.get(f"{{{TEXT}}}c"), 1), 1), 100))
            elif tag == _TAB:
                parts.append("\t")
            elif tag == _LINE_BREAK:
                parts.append("\n")
            elif tag == _NOTE:
                marks.append((len(parts), f"[^{self._note(child)}]"))
            elif tag == _ANNOTATION:
                self._comment(child)
            elif isinstance(tag, str) and tag.startswith(_DRAW_PREFIX):
                # Frames and shapes anchored in the line hold paragraphs of
                # their own; they follow the anchoring paragraph.
                boxes.append(child)
            elif tag == _LINK:
                start = len(parts)
                first_mark = len(marks)
                self._inline(child, parts, marks, boxes)
                target = child.get(_HREF)
                if target and "".join(parts[start:]).strip():
                    marks.insert(first_mark, (start, "["))
                    marks.append((len(parts), f"]({target})"))
            elif isinstance(tag, str) and tag not in _SKIPPED:
                self._inline(child, parts, marks, boxes)
            if child.tail:
                parts.append(child.tail)

    def _note(self, note: etree._Element) -> str:
        citation = note.find(_NOTE_CITATION)
        label = (citation.text or "").strip() if citation is not None else ""
        label = label or str(len(self.footnotes) + len(self.endnotes) + 1)
        body = note.find(_NOTE_BODY)
        content = joined_blocks(self.blocks(body)) if body is not None else None
        if content is not None and content.text:
            endnote = note.get(f"{{{TEXT}}}note-class") == "endnote"
            target = self.endnotes if endnote else self.footnotes
            label = f"e{label}" if endnote else label
            target.append(
                Block(content.text, f"[^{label}]: {content.inline}", content.inline)
            )
        return label

    def _comment(self, annotation: etree._Element) -> None:
        creator = annotation.find(f"{{{DC}}}creator")
        author = (creator.text or "").strip() if creator is not None else ""
        content = joined_blocks(self.blocks(annotation))
        if content.text:
            text = f"{author}: {content.text}" if author else content.text
            markdown = (
                f"- **{author}**: {content.inline}" if author else f"- {content.inline}"
            )
            self.comments.append(Block(text, markdown, content.inline, level=0))

    def _list(
        self,
        element: etree._Element,
        blocks: list[Block],
        level: int,
        style: str | None,
    ) -> None:
        style = element.get(_STYLE_NAME) or style
        ordered = self.ordered_lists.get(style or "", {}).get(level + 1, False)
        marker = "1." if ordered else "-"
        for item in element:
            if item.tag not in (_LIST_ITEM, _LIST_HEADER):
                continue
            for child in item:
                if child.tag == _LIST:
                    self._list(child, blocks, level + 1, style)
                elif child.tag in (_P, _H):
                    self._paragraph(child, blocks, level, marker)
                else:
                    self.read_block(child, blocks)

    def _table(self, table: etree._Element) -> Block:
        rows: list[list[Block]] = []
        for row in table.iter(_ROW):
            if _owning_table(row) is not table:
                continue
            cells: list[Block] = []
            for cell in row:
                if cell.tag not in (_CELL, _COVERED_CELL):
                    continue
                block = cell_block(self.blocks(cell))
                cells.extend([block] * _repeats(cell, _COLUMNS_REPEATED))
            while cells and not cells[-1].text:
                cells.pop()
            if cells:
                rows.extend([cells] * _repeats(row, _ROWS_REPEATED))
        text = "\n".join("\t".join(cell.text for cell in row) for row in rows)
        markdown = markdown_table([[cell.inline for cell in row] for row in rows])
        return Block(text, markdown, text.replace("\n", " "))

    def read_frame(self, frame: etree._Element, blocks: list[Block]) -> None:
        for child in frame:
            if child.tag == _TEXT_BOX:
                blocks.extend(self.blocks(child))
            elif child.tag == _TABLE:
                blocks.append(self._table(child))


def _owning_table(row: etree._Element) -> etree._Element | None:
    parent = row.getparent()
    while parent is not None and parent.tag != _TABLE:
        parent = parent.getparent()
    return parent


def _repeats(element: etree._Element, attribute: str) -> int:
    return min(max(_int(element.get(attribute), 1), 1), MAX_REPEAT)


def _int(value: str | None, default: int) -> int:
    try:
        return int(value) if value is not None else default
    except ValueError:
        return default


def _list_styles(*roots: etree._Element | None) -> dict[str, dict[int, bool]]:
    """Map list style names to whether each level is numbered."""
    styles: dict[str, dict[int, bool]] = {}
    number_style = f"{{{TEXT}}}list-level-style-number"
    for root in roots:
        if root is None:
            continue
        for style in root.iter(f"{{{TEXT}}}list-style"):
            levels = styles.setdefault(style.get(f"{{{STYLE}}}name", ""), {})
            for level in style:
                levels[_int(level.get(f"{{{TEXT}}}level"), 1)] = (
                    level.tag == number_style
                )
    return styles


# A start tag, its quoted attribute values free to hold ">"; group 1 is "/"
# when the element closes itself.
_TAG_REST = rb"""(?:\s+[\w:.-]+\s*=\s*(?:"[^"]*"|'[^']*'))*\s*(/?)>"""
_STYLES_ROOT = re.compile(rb"<office:document-styles" + _TAG_REST)
_STYLE_NAME_ATTRIBUTE = re.compile(rb"""\sstyle:name\s*=\s*["']([^"']*)["']""")
_TAG_END = re.compile(_TAG_REST)
_HEAD = re.compile(
    rb"""(?:\xef\xbb\xbf)?\s*(?:<\?xml(?:\s+version\s*=\s*["'][^"']*["'])?"""
    rb"""(?:\s+encoding\s*=\s*["'](?i:utf-8)["'])?"""
    rb"""(?:\s+standalone\s*=\s*["'][^"']*["'])?\s*\?>)?\s*"""
)
# The prefixes the cut looks for must mean what their names say.
_STYLES_PREFIXES = (
    f'xmlns:office="{OFFICE}"'.encode(),
    f'xmlns:style="{STYLE}"'.encode(),
    f'xmlns:text="{TEXT}"'.encode(),
)


def _styles(package: Package, used: set[str]) -> etree._Element | None:
    """
    The parts of ``styles.xml`` the reader uses: the master pages, and the
    list styles that ``used`` names or the master pages mention.

    A styles part runs to 50 KB of paragraph, font and list styles that
    nothing here reads, and parsing it whole took a third of an ODT's time.
    The master styles and the list styles that may be looked up are cut out
    of the bytes under the original root element and only they are parsed.
    A list style is kept when the content's lists name it, when its name
    occurs anywhere in the master styles, or when it has no plain name, so a
    lookup never misses. The cut is taken only where it cannot misread: a
    UTF-8 part with no comment, CDATA section, DTD or processing instruction
    that could hide or fake a tag, and every namespace declared once, on the
    root, with the usual prefixes. Anything else, or a cut that does not
    parse, is parsed whole as before.

    Unlike a whole parse, a cut does not notice a styles part broken outside
    the kept elements; such a document now keeps its text instead of failing.
    """
    name = "styles.xml"
    if name not in package:
        return None
    data = package.read_xml(name)
    cut = _cut_styles(data, used)
    if cut is not None:
        try:
            return parse_xml(cut, f"{package.kind} part {name!r}")
        except CorruptDocument:
            pass
    return parse_xml(data, f"{package.kind} part {name!r}")


def _cut_styles(data: bytes, used: set[str]) -> bytes | None:
    root = _STYLES_ROOT.search(data)
    if (
        root is None
        or root.group(1)
        # Before the root, an XML declaration at most, in UTF-8.
        or not _HEAD.fullmatch(data, 0, root.start())
        or _follows_lt(data, b"!", 0)
        or _follows_lt(data, b"?", root.end())
        or data.find(b"xmlns", root.end()) != -1
        or not all(prefix in root.group(0) for prefix in _STYLES_PREFIXES)
    ):
        return None
    spans: list[tuple[int, int]] = []
    masters: list[tuple[int, int]] = []
    for tag in (b"office:master-styles", b"text:list-style"):
        close = b"</" + tag + b">"
        position = root.end()
        # bytes.find skips to the candidates far faster than a regex search.
        while (start := data.find(b"<" + tag, position)) != -1:
            found = _TAG_END.match(data, start + 1 + len(tag))
            if found is None:
                position = start + 1
                continue
            end = found.end() if found.group(1) else data.find(close, found.end())
            if end == -1:
                return None
            if not found.group(1):
                end += len(close)
            if tag == b"office:master-styles":
                masters.append((start, end))
            # A list style inside the master styles comes with them.
            elif not any(first <= start < last for first, last in masters):
                spans.append((start, end))
            position = end
    spans += masters
    master_xml = b"".join(data[start:end] for start, end in masters)
    pieces = [data[: root.end()]]
    for start, end in sorted(spans):
        piece = data[start:end]
        name = _STYLE_NAME_ATTRIBUTE.search(piece, 0, piece.find(b">"))
        if (
            piece.startswith(b"<office:master-styles")
            or name is None
            or b"&" in name.group(1)
            or name.group(1).decode(errors="replace") in used
            or name.group(1) in master_xml
        ):
            pieces.append(piece)
    pieces.append(b"</office:document-styles>")
    return b"".join(pieces)


def _follows_lt(data: bytes, char: bytes, start: int) -> bool:
    # Whether "<" + char occurs from start on. Two-byte searches for a pair
    # that opens with "<" crawl through XML; memchr on the rarer byte does not.
    position = data.find(char, start)
    while position != -1:
        if data[position - 1 : position] == b"<":
            return True
        position = data.find(char, position + 1)
    return False


def _page_styles(
    reader: _Reader, styles: etree._Element | None, kind: str
) -> list[Block]:
    if styles is None:
        return []
    blocks: list[Block] = []
    seen: set[str] = set()
    for element in styles.iter(*_HEADER_TAGS):
        if not etree.QName(element).localname.startswith(kind):
            continue
        for block in reader.blocks(element):
            if block.text not in seen:
                seen.add(block.text)
                blocks.append(block)
    return blocks


def _presentation(
    content: etree._Element,
    reader: _Reader,
    metadata: dict[str, Any],
    ctx: ExtractContext,
) -> ExtractionResult:
    slides = list(content.iter(_DRAW_PAGE))
    pages: list[str] = []
    markdown: list[str] = []
    for number, slide in enumerate(slides, start=1):
        title, blocks, notes = _read_slide(reader, slide)
        page = "\n".join(([title] if title else []) + [block.text for block in blocks])
        slide_markdown = [f"## {title}"] if title else []
        slide_markdown.append(blocks_markdown(blocks))
        if notes:
            page += "\n\nNotes:\n" + "\n".join(block.text for block in notes)
            slide_markdown.append("### Notes\n\n" + blocks_markdown(notes))
        pages.append(page.strip("\n"))
        markdown.append("\n\n".join(part for part in slide_markdown if part))
        ctx.progress(number, len(slides), "slides")
    metadata["slides"] = len(slides)
    return ExtractionResult(
        mime.ODP,
        "\n\n".join(pages),
        pages=pages,
        markdown="\n\n---\n\n".join(markdown),
        metadata=metadata,
    )


def _read_slide(
    reader: _Reader, slide: etree._Element
) -> tuple[str, list[Block], list[Block]]:
    title = ""
    blocks: list[Block] = []
    notes: list[Block] = []
    for child in slide:
        if child.tag == _NOTES:
            for frame in child.iter(_FRAME):
                if frame.get(_CLASS) == "notes":
                    reader.read_frame(frame, notes)
        elif child.tag == _FRAME and child.get(_CLASS) == "title" and not title:
            found: list[Block] = []
            reader.read_frame(child, found)
            title = " ".join(block.text for block in found)
        else:
            reader.read_block(child, blocks)
    return title, blocks, notes
