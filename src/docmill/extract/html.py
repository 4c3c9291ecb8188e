"""
HTML: the text a reader sees, and the same as Markdown.

Only visible text is kept: scripts, styles, templates, the head (except its
title) and elements hidden with ``hidden`` or ``display:none`` (such as the
``ix:header`` of inline XBRL) are dropped. Block elements start new lines,
table cells are separated by tabs and rows by line breaks. ``markdown`` keeps
headings, lists, tables, links, emphasis, quotes and code.

The encoding is, in order: a byte-order mark, then a charset declared with
the upload, UTF-8 and a ``<meta>`` charset, each if the bytes decode strictly
with it (pages declare UTF-8 and send cp1256), then detection.
"""

from __future__ import annotations

import re
import sys
from typing import Any

from selectolax.lexbor import LexborHTMLParser, LexborNode

from docmill.exceptions import EmptyDocument, LimitExceeded
from docmill.extract import mime
from docmill.extract.base import ExtractContext, ExtractionResult, Source, read_source
from docmill.extract.charsets import decode_declared
from docmill.extract.delimited import markdown_table
from docmill.extract.text import encoding_metadata, text_warnings
from docmill.extract.textcodec import DecodedText

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

# Deeper markup is refused before parsing (see check_nesting), which spares
# lexbor's tree builder a pathological page.
MAX_NESTING = 4096
# A page whose walk meets Python's recursion limit (about 500 levels of div,
# 250 of emphasis) is read again by _DeepRenderer, which reads the content
# of elements nested deeper than this as plain text, in one piece. The walk
# takes up to seven frames a level (a table's), and some renderings cost the
# square of the depth (each quote level prefixes every line inside it; each
# cell and emphasis reads its content again): 5 s at 500 levels of
# blockquote, 300 s at 4,096. Browsers stop nesting at a few hundred levels,
# but unclosed div, span or font tags in generated pages nest without end;
# such pages failed whole before.
MAX_RENDERED_DEPTH = 500
_FRAMES_PER_LEVEL = 8
# A comment, or a start or end tag's name.
_TAG = re.compile(r"<!--.*?(?:-->|\Z)|<(/?)([A-Za-z][^\s/>]*)", re.DOTALL)
# Elements whose content is text, not markup, each with its end tag.
_RAW_TEXT = {
    name: re.compile(f"</{name}", re.IGNORECASE)
    for name in ("script", "style", "textarea", "title", "xmp", "plaintext")
}
# Void elements, and those a sibling's start closes without an end tag.
_NOT_NESTING = frozenset(
    {
        *("area", "base", "br", "col", "embed", "hr", "img", "input", "link"),
        *("meta", "param", "source", "track", "wbr", "keygen", "basefont"),
        *("p", "li", "dt", "dd", "tr", "td", "th", "option", "optgroup"),
        *("thead", "tbody", "tfoot", "colgroup", "caption", "rb", "rt", "rp"),
        *("html", "head", "body"),
    }
)

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
    decoded, parser, root = _parse(read_source(source), ctx.charset)
    metadata = {**encoding_metadata(decoded), **_head_metadata(parser)}
    warnings = text_warnings(decoded, ctx.charset)
    text, markdown, flattened = _render(root, markdown=True)
    if flattened:
        warnings.append(
            f"{flattened} element(s) nested deeper than {MAX_RENDERED_DEPTH} "
            "levels read as plain text, without their structure"
        )
    return ExtractionResult(
        mime.HTML,
        text,
        markdown=markdown,
        metadata=metadata,
        warnings=warnings,
    )


def html_text(data: bytes) -> str:
    """
    The ``text`` that ``extract_html`` gives for ``data``, and nothing else.

    For callers that only want the words (a mail's HTML body): no Markdown is
    written on the walk.
    """
    _decoded, _parser, root = _parse(data)
    return _render(root, markdown=False)[0]


def _render(root: LexborNode, markdown: bool) -> tuple[str, str | None, int]:
    """
    The page's text and Markdown, and how many elements were read as plain
    text for nesting too deep.

    Pages are walked without counting levels (a counter cost 1.3% of
    reading HTML); only one that meets the recursion limit is read again,
    counting.
    """
    try:
        return (*_Renderer(markdown).render(root), 0)
    except RecursionError:
        pass
    deep = _DeepRenderer(markdown)
    limit = sys.getrecursionlimit()
    # Python's frames live on the heap (3.11+), so a deeper limit for this
    # walk costs no C stack.
    sys.setrecursionlimit(limit + MAX_RENDERED_DEPTH * _FRAMES_PER_LEVEL)
    try:
        text, markdown_text = deep.render(root)
    except RecursionError as exc:
        # A path that takes more frames a level than counted.
        raise LimitExceeded(
            "the HTML nests its elements too deeply to read; nothing was read"
        ) from exc
    finally:
        sys.setrecursionlimit(limit)
    return text, markdown_text, deep.flattened


def _parse(
    data: bytes, charset: str | None = None
) -> tuple[DecodedText, LexborHTMLParser, LexborNode]:
    decoded = decode_html(data, charset)
    check_nesting(decoded.text)
    # lexbor reads UTF-8: bytes that decoded strictly as UTF-8 without a mark
    # are the text's own encoding already, and encoding the text again was
    # half of lexbor's parse.
    plain = decoded.encoding == "utf-8" and decoded.bom is None and decoded.confident
    parser = LexborHTMLParser(data if plain else decoded.text)
    root = parser.root
    if root is None:
        raise EmptyDocument("the HTML document has no elements")
    return decoded, parser, root


def check_nesting(html: str, limit: int = MAX_NESTING) -> None:
    """
    Refuse markup whose elements would nest deeper than ``limit``.

    lexbor's tree builder does work in proportion to the depth for each
    tag, so a page of 100,000 unclosed ``<div>`` (600 KB) costs it 15 s or
    more. The estimate follows end tags as a parser does (closing an element
    closes the ones opened inside it) but ignores the elements that close
    their siblings implicitly (``p``, ``li``, ``td``...) and void ones, so it
    never exceeds the real depth by much and usually falls short of it: it is
    a guard against pathological nesting, not a measure of the tree.
    """
    # Fewer tag openings than the limit cannot nest past it: most pages
    # stop here after one count in C.
    if html.count("<") <= limit:
        return
    depth = _estimated_depth(html, limit)
    if depth > limit:
        raise LimitExceeded(
            "the HTML nests its elements too deeply to read (more than "
            f"{limit} levels, refused before parsing); nothing was read"
        )


def _estimated_depth(html: str, limit: int) -> int:
    open_tags: list[str] = []
    # How many of each name are open, so an end tag with no open element of
    # its name is known to be a stray without searching the stack.
    counts: dict[str, int] = {}
    position = 0
    search = _TAG.search
    while True:
        match = search(html, position)
        if match is None:
            return len(open_tags)
        position = match.end()
        name = match.group(2)
        if name is None:
            continue  # a comment
        name = name.lower()
        if match.group(1):
            if counts.get(name):
                while True:
                    closed = open_tags.pop()
                    counts[closed] -= 1
                    if closed == name:
                        break
            continue
        if name in _RAW_TEXT:
            # Their content is not markup; a script full of "<div" strings
            # must not count.
            end = _RAW_TEXT[name].search(html, position)
            position = len(html) if end is None else end.start()
            continue
        if name in _NOT_NESTING:
            continue
        open_tags.append(name)
        counts[name] = counts.get(name, 0) + 1
        if len(open_tags) > limit:
            return len(open_tags)


def decode_html(data: bytes, charset: str | None = None) -> DecodedText:
    """
    Decode an HTML page: BOM, then the ``charset`` declared with the upload,
    then UTF-8 and the page's meta charset if they read strictly, then guess.
    """
    match = _META_CHARSET.search(data[:_PRESCAN_BYTES])
    declared = match.group(1).decode("ascii") if match else None
    return decode_declared(data, charset, declared)


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


def _inline_parts(text: str) -> tuple[str, bool, bool]:
    """
    Inline text (not empty) as a writer takes it: its words with whitespace
    runs folded, and whether whitespace led and trailed them.

    Cut once per text node for both renderings, text and Markdown.
    """
    core = text.strip(_HTML_SPACE)
    if core and _needs_collapse(core):
        core = _WHITESPACE.sub(" ", core)
    return core, text[0] in _HTML_SPACE, text[-1] in _HTML_SPACE


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
        if text:
            self.inline_parts(*_inline_parts(text))

    def inline_parts(self, core: str, lead: bool, trail: bool) -> None:
        """Write inline text already cut by ``_inline_parts``."""
        if lead and not self._separator:
            self._separator = " "
        if not core:
            return
        self.raw(core)
        if trail:
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
    """
    Walks the tree once, writing plain text and, if asked, Markdown.

    Both are written on the same walk, each to its own ``_Writer``: the two
    differ only in what some elements add (markers, blank lines), so one walk
    visits each node once instead of twice. ``mw`` is None when no Markdown
    is wanted.
    """

    def __init__(self, markdown: bool) -> None:
        self.markdown = markdown
        # Per open list: [next number]; only the Markdown side uses it.
        self._list_stack: list[list[int]] = []

    def render(self, node: LexborNode) -> tuple[str, str | None]:
        tw = _Writer()
        mw = _Writer() if self.markdown else None
        self._children(node, tw, mw)
        return tw.getvalue(), mw.getvalue() if mw is not None else None

    def _inner(self) -> _Renderer:
        """A renderer for a part read on its own (a cell, a quote)."""
        return _Renderer(self.markdown)

    def _children(self, node: LexborNode, tw: _Writer, mw: _Writer | None) -> None:
        # Text nodes are most of the tree; they are written here rather than
        # through a call to _node each.
        text_inline = tw.inline
        if mw is None:
            for child in node.iter(include_text=True):
                tag = child.tag
                if tag == "-text":
                    text_inline(child.text_content or "")
                else:
                    self._node(child, tw, None, tag or "")
            return
        text_parts, markdown_parts = tw.inline_parts, mw.inline_parts
        for child in node.iter(include_text=True):
            tag = child.tag
            if tag == "-text":
                text = child.text_content
                if text:
                    parts = _inline_parts(text)
                    text_parts(*parts)
                    markdown_parts(*parts)
            else:
                self._node(child, tw, mw, tag or "")

    def _node(
        self, node: LexborNode, tw: _Writer, mw: _Writer | None, tag: str
    ) -> None:
        if tag in _SKIPPED or _is_hidden(node):
            return
        if tag == "br":
            tw.line_break()
            if mw is not None:
                mw.line_break()
        elif tag == "table":
            self._table(node, tw, mw)
        elif tag in ("ul", "ol"):
            self._list(node, tw, mw, ordered=tag == "ol")
        elif tag == "li":
            self._list_item(node, tw, mw)
        elif tag == "pre":
            self._preformatted(node, tw, mw)
        elif tag in _HEADINGS or tag in _PARAGRAPHS:
            self._paragraph(node, tw, mw, tag)
        elif tag == "blockquote":
            self._quote(node, tw, mw)
        elif tag in _BLOCKS or tag in ("tr", "thead", "tbody", "tfoot"):
            tw.block(1)
            if mw is not None:
                mw.block(1)
            self._children(node, tw, mw)
            tw.block(1)
            if mw is not None:
                mw.block(1)
        elif mw is not None and (tag in _EMPHASIS or tag in ("code", "a")):
            self._markup(node, tw, mw, tag)
        elif tag in ("td", "th"):
            tw.separate("\t")
            if mw is not None:
                mw.separate("\t")
            self._children(node, tw, mw)
            tw.separate("\t")
            if mw is not None:
                mw.separate("\t")
        else:
            self._children(node, tw, mw)

    def _paragraph(
        self, node: LexborNode, tw: _Writer, mw: _Writer | None, tag: str
    ) -> None:
        tw.block(1)
        if mw is None:
            if tag != "hr":
                self._children(node, tw, None)
            tw.block(1)
            return
        mw.block(2)
        if tag == "hr":
            mw.raw("---")
        elif tag in _HEADINGS:
            inner = self._inline_markdown(node, tw)
            if inner:
                mw.raw("#" * _HEADINGS[tag] + " " + inner)
        else:
            self._children(node, tw, mw)
        tw.block(1)
        mw.block(2)

    def _list(
        self, node: LexborNode, tw: _Writer, mw: _Writer | None, ordered: bool
    ) -> None:
        tw.block(1)
        if mw is not None:
            mw.block(1 if self._list_stack else 2)
        start = node.attributes.get("start") if ordered else None
        number = int(start) if start and start.isdigit() else 1
        self._list_stack.append([number if ordered else 0])
        self._children(node, tw, mw)
        self._list_stack.pop()
        tw.block(1)
        if mw is not None:
            mw.block(1 if self._list_stack else 2)

    def _list_item(self, node: LexborNode, tw: _Writer, mw: _Writer | None) -> None:
        tw.block(1)
        if mw is not None:
            mw.block(1)
            counter = self._list_stack[-1] if self._list_stack else [0]
            indent = "  " * max(len(self._list_stack) - 1, 0)
            if counter[0]:
                marker = f"{counter[0]}."
                counter[0] += 1
            else:
                marker = "-"
            mw.raw(f"{indent}{marker} ")
        self._children(node, tw, mw)
        tw.block(1)
        if mw is not None:
            mw.block(1)

    def _table(self, node: LexborNode, tw: _Writer, mw: _Writer | None) -> None:
        # Each cell is rendered on its own, both ways at once; a row empty in
        # one rendering may hold a marker in the other, so each side drops
        # its own empty rows.
        rows = [
            [(self._cell(cell), _span(cell)) for cell in _cells(row)]
            for row in _rows(node)
        ]
        text_rows = [
            [text for (text, _), _ in row if text]
            for row in rows
            if any(text for (text, _), _ in row)
        ]
        if text_rows:
            tw.block(1)
            tw.raw("\n".join("\t".join(row) for row in text_rows))
            tw.block(1)
        if mw is None:
            return
        spread = [
            [part for (_, md), span in row for part in [md] + [""] * (span - 1)]
            for row in rows
            if any(md for (_, md), _ in row)
        ]
        if spread:
            mw.block(2)
            mw.raw(markdown_table(spread))
            mw.block(2)

    def _cell(self, node: LexborNode) -> tuple[str, str]:
        text, markdown = self._inner().render(node)
        return " ".join(text.split()), " ".join((markdown or "").split())

    def _preformatted(self, node: LexborNode, tw: _Writer, mw: _Writer | None) -> None:
        text = node.text(deep=True).strip("\n")
        tw.block(1)
        if text:
            tw.raw(text)
        tw.block(1)
        if mw is not None:
            mw.block(2)
            mw.raw(f"```\n{text}\n```")
            mw.block(2)

    def _quote(self, node: LexborNode, tw: _Writer, mw: _Writer | None) -> None:
        text, markdown = self._inner().render(node)
        tw.block(1)
        tw.raw(text)
        tw.block(1)
        if mw is None or markdown is None:
            return
        if markdown:
            markdown = "\n".join(f"> {line}".rstrip() for line in markdown.split("\n"))
        mw.block(2)
        mw.raw(markdown)
        mw.block(2)

    def _markup(self, node: LexborNode, tw: _Writer, mw: _Writer, tag: str) -> None:
        # Emphasis, code and links: the text side reads their words as any
        # inline element's; the Markdown side wraps them in markers.
        inner = self._inline_markdown(node, tw)
        if not inner:
            return
        if tag == "a":
            href = (node.attributes.get("href") or "").strip()
            if href and not href.startswith(("#", "javascript:")):
                inner = f"[{inner}]({href.replace(' ', '%20')})"
        else:
            marker = _EMPHASIS.get(tag, "`")
            inner = f"{marker}{inner}{marker}"
        # The element's leading and trailing spaces belong outside the markers.
        full = node.text(deep=True)
        if full[:1].isspace():
            mw.inline(" ")
        mw.inline(inner)
        if full[-1:].isspace():
            mw.inline(" ")

    def _inline_markdown(self, node: LexborNode, tw: _Writer) -> str:
        """
        Write ``node``'s content to ``tw`` and return its Markdown on one line.

        The Markdown is written apart, as a fresh rendering outside any list,
        since it goes inside a marker (a heading, a link) rather than into
        the page as it is.
        """
        inner = _Writer()
        outer_lists, self._list_stack = self._list_stack, []
        self._children(node, tw, inner)
        self._list_stack = outer_lists
        return " ".join(inner.getvalue().split())


class _DeepRenderer(_Renderer):
    """
    The walk for a page too deep for ``_Renderer``: the content of elements
    past ``MAX_RENDERED_DEPTH`` levels is read as plain text, in one piece.
    """

    def __init__(self, markdown: bool, outer: _DeepRenderer | None = None) -> None:
        super().__init__(markdown)
        # Elements open around the one being read, those of the renderer
        # this one reads a cell or a quote for included; the page's renderer
        # counts what was flattened.
        self._depth = 0
        self._page = self
        if outer is not None:
            self._depth, self._page = outer._depth, outer._page
        self.flattened = 0

    def _inner(self) -> _Renderer:
        return _DeepRenderer(self.markdown, self)

    def _children(self, node: LexborNode, tw: _Writer, mw: _Writer | None) -> None:
        if self._depth >= MAX_RENDERED_DEPTH:
            self._page.flattened += 1
            text = _flat_text(node)
            for writer in (tw, mw) if mw is not None else (tw,):
                if text:
                    writer.block(1)
                    writer.raw(text)
                    writer.block(1)
            return
        self._depth += 1
        super()._children(node, tw, mw)
        self._depth -= 1


# Elements whose start and end break a flattened text's lines.
_LINE_BREAKING = _BLOCKS | _PARAGRAPHS | {"br", "li", "tr", "td", "th", "table"}


def _flat_text(top: LexborNode) -> str:
    """
    The text inside ``top`` as lines, one per block, in a loop rather than a
    recursion: the words as written, without Markdown or table layout.
    """
    out: list[str] = []
    node = top.child
    while node is not None:
        tag = node.tag or ""
        if tag == "-text":
            out.append(node.text_content or "")
        elif tag in _SKIPPED or _is_hidden(node):
            tag = "-text"  # neither entered nor breaking a line
        elif tag in _LINE_BREAKING:
            out.append("\n")
        if tag != "-text" and node.child is not None:
            node = node.child
            continue
        # Up past the last children, closing their blocks, to the next one.
        while node is not None and node.next is None:
            node = node.parent
            if node is None or node.mem_id == top.mem_id:
                node = None
            elif (node.tag or "") in _LINE_BREAKING:
                out.append("\n")
        if node is not None:
            node = node.next
    lines = (" ".join(line.split()) for line in "".join(out).split("\n"))
    return "\n".join(line for line in lines if line)


def _is_hidden(node: LexborNode) -> bool:
    attributes = node.attributes
    if not attributes:
        return False
    if "hidden" in attributes:
        return True
    style = attributes.get("style")
    # Filings style every element; most styles lack "none" altogether, and a
    # substring test in C spares them the case-blind regular expression.
    return bool(style and "none" in style.lower() and _DISPLAY_NONE.search(style))


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
