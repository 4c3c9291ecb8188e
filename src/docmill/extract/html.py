"""
HTML: the text a reader sees, and the same as Markdown.

Only visible text is kept: scripts, styles, templates, the head (except its
title) and elements hidden with ``hidden`` or ``display:none`` (such as the
``ix:header`` of inline XBRL) are dropped. Block elements start new lines,
table cells are separated by tabs and rows by line breaks. ``markdown`` keeps
headings, lists, tables, links, emphasis, quotes and code.

The encoding is, in order: a byte-order mark, a ``<meta>`` charset if the
bytes decode strictly with it (pages declare UTF-8 and send cp1256), then
detection.
"""

from __future__ import annotations

import re
from typing import Any

from selectolax.lexbor import LexborHTMLParser, LexborNode

from docmill.exceptions import EmptyDocument
from docmill.extract import mime
from docmill.extract.base import ExtractContext, ExtractionResult, Source, read_source
from docmill.extract.delimited import markdown_table
from docmill.extract.text import encoding_metadata, undecodable_warning
from docmill.extract.textcodec import DecodedText, decode

# Browsers look for the charset declaration in the first 1024 bytes; pages
# with long comments or scripts in the head push it further, so look a bit
# further than that.
_PRESCAN_BYTES = 4096
_META_CHARSET = re.compile(
    rb"""<meta[^>]+?charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.IGNORECASE
)
# HTML's whitespace is ASCII only; a no-break space is text.
_HTML_SPACE = " \t\n\r\f"
_WHITESPACE = re.compile(r"[ \t\n\r\f]+")
_DISPLAY_NONE = re.compile(r"display\s*:\s*none", re.IGNORECASE)

_SKIPPED = frozenset(
    {
        "head",
        "script",
        "style",
        "noscript",
        "template",
        "iframe",
        "object",
        "embed",
        "canvas",
        "ix:header",
        "-comment",
        "-doctype",
    }
)
_BLOCKS = frozenset(
    {
        "address",
        "article",
        "aside",
        "body",
        "caption",
        "center",
        "dd",
        "details",
        "dialog",
        "div",
        "dl",
        "dt",
        "fieldset",
        "figcaption",
        "figure",
        "footer",
        "form",
        "header",
        "hgroup",
        "html",
        "legend",
        "main",
        "menu",
        "nav",
        "ol",
        "option",
        "section",
        "summary",
        "ul",
    }
)
# Blocks that read as paragraphs: a blank line before and after in Markdown.
_PARAGRAPHS = frozenset({"p", "h1", "h2", "h3", "h4", "h5", "h6", "pre", "hr"})
_HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
_EMPHASIS = {"strong": "**", "b": "**", "em": "*", "i": "*"}
_META_FIELDS = {
    "author": "author",
    "description": "description",
    "keywords": "keywords",
}


def extract_html(source: Source, ctx: ExtractContext) -> ExtractionResult:
    decoded, parser, root = _parse(read_source(source))
    metadata = {**encoding_metadata(decoded), **_head_metadata(parser)}
    text = _Renderer(markdown=False).render(root)
    markdown = _Renderer(markdown=True).render(root)
    return ExtractionResult(
        mime.HTML,
        text,
        markdown=markdown,
        metadata=metadata,
        warnings=undecodable_warning(decoded),
    )


def html_text(data: bytes) -> str:
    """
    The ``text`` that ``extract_html`` gives for ``data``, and nothing else.

    For callers that only want the words (a mail's HTML body): the Markdown
    rendering, a second walk of the whole tree, is skipped.
    """
    _decoded, _parser, root = _parse(data)
    return _Renderer(markdown=False).render(root)


def _parse(data: bytes) -> tuple[DecodedText, LexborHTMLParser, LexborNode]:
    decoded = decode_html(data)
    parser = LexborHTMLParser(decoded.text)
    root = parser.root
    if root is None:
        raise EmptyDocument("the HTML document has no elements")
    return decoded, parser, root


def decode_html(data: bytes) -> DecodedText:
    """Decode an HTML page: BOM, then a charset that reads strictly, then guess."""
    match = _META_CHARSET.search(data[:_PRESCAN_BYTES])
    declared = match.group(1).decode("ascii") if match else None
    return decode(data, declared=declared)


def _head_metadata(parser: LexborHTMLParser) -> dict[str, Any]:
    metadata: dict[str, Any] = {}
    title = parser.css_first("title")
    if title is not None:
        text = _WHITESPACE.sub(" ", title.text(deep=True)).strip()
        if text:
            metadata["title"] = text
    for meta in parser.css("meta[name]"):
        name = (meta.attributes.get("name") or "").lower()
        key = _META_FIELDS.get(name)
        content = (meta.attributes.get("content") or "").strip()
        if key and content and key not in metadata:
            metadata[key] = content
    return metadata


def _needs_collapse(text: str) -> bool:
    # Most text nodes hold single spaces only; the regular expression is the
    # slow part of the walk, so it runs only when there is something to fold.
    return "  " in text or "\n" in text or "\t" in text or "\r" in text or "\f" in text


class _Writer:
    """
    Collects text with HTML's whitespace rules.

    Runs of whitespace become one space, spaces never start or end a line,
    and a requested line break is written only before the next text, so
    empty blocks leave no blank lines behind.
    """

    def __init__(self) -> None:
        self.parts: list[str] = []
        self._breaks = 0  # line breaks wanted before the next text
        self._trailing_breaks = 0  # line breaks already at the end
        self._separator = ""  # what goes before the next text on this line

    def inline(self, text: str) -> None:
        if not text:
            return
        core = text.strip(_HTML_SPACE)
        if text[0] in _HTML_SPACE and not self._separator:
            self._separator = " "
        if not core:
            return
        if _needs_collapse(core):
            core = _WHITESPACE.sub(" ", core)
        self.raw(core)
        if text[-1] in _HTML_SPACE:
            self._separator = " "

    def raw(self, text: str) -> None:
        """Write ``text`` as it is (preformatted text, Markdown markers)."""
        if not text:
            return
        if self.parts:
            breaks = self._breaks - self._trailing_breaks
            if breaks > 0:
                self.parts.append("\n" * breaks)
            elif self._separator and not self._trailing_breaks:
                self.parts.append(self._separator)
        self.parts.append(text)
        self._breaks = 0
        self._separator = ""
        stripped = text.rstrip("\n")
        self._trailing_breaks = len(text) - len(stripped)
        if not stripped:
            self._trailing_breaks += 1

    def block(self, breaks: int = 1) -> None:
        if breaks > self._breaks:
            self._breaks = breaks
        self._separator = ""

    def line_break(self) -> None:
        if self.parts:
            self.parts.append("\n")
            self._trailing_breaks += 1
        self._separator = ""

    def separate(self, separator: str) -> None:
        self._separator = separator

    def getvalue(self) -> str:
        return "".join(self.parts).strip("\n")


class _Renderer:
    """Walks the tree once, writing plain text or Markdown."""

    def __init__(self, markdown: bool) -> None:
        self.markdown = markdown
        self._list_stack: list[list[int]] = []  # per open list: [next number]

    def render(self, node: LexborNode) -> str:
        writer = _Writer()
        self._children(node, writer)
        return writer.getvalue()

    def _children(self, node: LexborNode, writer: _Writer) -> None:
        # Text nodes are most of the tree; they are written here rather than
        # through a call to _node each.
        inline = writer.inline
        for child in node.iter(include_text=True):
            if child.tag == "-text":
                inline(child.text_content or "")
            else:
                self._node(child, writer)

    def _node(self, node: LexborNode, writer: _Writer) -> None:
        tag = node.tag or ""
        if tag == "-text":
            writer.inline(node.text_content or "")
            return
        if tag in _SKIPPED or _is_hidden(node):
            return
        if tag == "br":
            writer.line_break()
        elif tag == "table":
            self._table(node, writer)
        elif tag in ("ul", "ol"):
            self._list(node, writer, ordered=tag == "ol")
        elif tag == "li":
            self._list_item(node, writer)
        elif tag == "pre":
            self._preformatted(node, writer)
        elif tag in _HEADINGS or tag in _PARAGRAPHS:
            self._paragraph(node, writer, tag)
        elif tag == "blockquote":
            self._quote(node, writer)
        elif tag in _BLOCKS or tag in ("tr", "thead", "tbody", "tfoot"):
            writer.block(1)
            self._children(node, writer)
            writer.block(1)
        elif self.markdown and tag in _EMPHASIS:
            self._wrapped(node, writer, _EMPHASIS[tag], _EMPHASIS[tag])
        elif self.markdown and tag == "code":
            self._wrapped(node, writer, "`", "`")
        elif self.markdown and tag == "a":
            self._link(node, writer)
        elif tag in ("td", "th"):
            writer.separate("\t")
            self._children(node, writer)
            writer.separate("\t")
        else:
            self._children(node, writer)

    def _paragraph(self, node: LexborNode, writer: _Writer, tag: str) -> None:
        gap = 2 if self.markdown else 1
        writer.block(gap)
        if tag == "hr":
            if self.markdown:
                writer.raw("---")
        elif self.markdown and tag in _HEADINGS:
            inner = self._inline(node)
            if inner:
                writer.raw("#" * _HEADINGS[tag] + " " + inner)
        else:
            self._children(node, writer)
        writer.block(gap)

    def _list(self, node: LexborNode, writer: _Writer, ordered: bool) -> None:
        writer.block(2 if self.markdown and not self._list_stack else 1)
        start = node.attributes.get("start") if ordered else None
        number = int(start) if start and start.isdigit() else 1
        self._list_stack.append([number if ordered else 0])
        self._children(node, writer)
        self._list_stack.pop()
        writer.block(2 if self.markdown and not self._list_stack else 1)

    def _list_item(self, node: LexborNode, writer: _Writer) -> None:
        writer.block(1)
        if self.markdown:
            counter = self._list_stack[-1] if self._list_stack else [0]
            indent = "  " * max(len(self._list_stack) - 1, 0)
            if counter[0]:
                marker = f"{counter[0]}."
                counter[0] += 1
            else:
                marker = "-"
            writer.raw(f"{indent}{marker} ")
        self._children(node, writer)
        writer.block(1)

    def _table(self, node: LexborNode, writer: _Writer) -> None:
        rows = [
            [(self._cell(cell), _span(cell)) for cell in _cells(row)]
            for row in _rows(node)
        ]
        rows = [row for row in rows if any(text for text, _ in row)]
        if not rows:
            return
        writer.block(2 if self.markdown else 1)
        if self.markdown:
            spread = [
                [part for text, span in row for part in [text] + [""] * (span - 1)]
                for row in rows
            ]
            writer.raw(markdown_table(spread))
        else:
            lines = ["\t".join(text for text, _ in row if text) for row in rows]
            writer.raw("\n".join(lines))
        writer.block(2 if self.markdown else 1)

    def _cell(self, node: LexborNode) -> str:
        return " ".join(self._inline(node).split())

    def _preformatted(self, node: LexborNode, writer: _Writer) -> None:
        text = node.text(deep=True).strip("\n")
        writer.block(2 if self.markdown else 1)
        if self.markdown:
            writer.raw(f"```\n{text}\n```")
        elif text:
            writer.raw(text)
        writer.block(2 if self.markdown else 1)

    def _quote(self, node: LexborNode, writer: _Writer) -> None:
        writer.block(2 if self.markdown else 1)
        inner = _Renderer(self.markdown).render(node)
        if self.markdown and inner:
            inner = "\n".join(f"> {line}".rstrip() for line in inner.split("\n"))
        writer.raw(inner)
        writer.block(2 if self.markdown else 1)

    def _wrapped(
        self, node: LexborNode, writer: _Writer, before: str, after: str
    ) -> None:
        inner = self._inline(node)
        if not inner:
            return
        self._keep_spacing(node, writer, f"{before}{inner}{after}")

    def _link(self, node: LexborNode, writer: _Writer) -> None:
        inner = self._inline(node)
        href = (node.attributes.get("href") or "").strip()
        if not inner:
            return
        if not href or href.startswith(("#", "javascript:")):
            self._keep_spacing(node, writer, inner)
        else:
            self._keep_spacing(node, writer, f"[{inner}]({href.replace(' ', '%20')})")

    def _keep_spacing(self, node: LexborNode, writer: _Writer, text: str) -> None:
        # The element's leading and trailing spaces belong outside the markers.
        full = node.text(deep=True)
        if full[:1].isspace():
            writer.inline(" ")
        writer.inline(text)
        if full[-1:].isspace():
            writer.inline(" ")

    def _inline(self, node: LexborNode) -> str:
        return " ".join(_Renderer(self.markdown).render(node).split())


def _is_hidden(node: LexborNode) -> bool:
    attributes = node.attributes
    if not attributes:
        return False
    if "hidden" in attributes:
        return True
    style = attributes.get("style")
    return bool(style and _DISPLAY_NONE.search(style))


def _rows(table: LexborNode) -> list[LexborNode]:
    rows = []
    for child in table.iter():
        if child.tag == "tr":
            rows.append(child)
        elif child.tag in ("thead", "tbody", "tfoot"):
            rows.extend(row for row in child.iter() if row.tag == "tr")
    return rows


def _cells(row: LexborNode) -> list[LexborNode]:
    return [cell for cell in row.iter() if cell.tag in ("td", "th")]


def _span(cell: LexborNode) -> int:
    value = cell.attributes.get("colspan") or "1"
    return min(int(value), 100) if value.isdigit() and int(value) > 0 else 1
