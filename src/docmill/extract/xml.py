"""
XML: the text values of its elements, one element per line.

An element holding only other elements contributes nothing itself; an
element whose text runs between child elements (mixed content, as in
``<p>a <b>b</b> c</p>``) is one line. Attribute values are not text.

The parser never expands an entity, never loads a DTD and never touches the
network, so entity bombs (billion laughs, quadratic blow-up) and external
entities (XXE) stay inert. An entity reference is kept in the text as it was
written, ``&name;``, so a reader sees that something was not expanded.

The encoding is a byte-order mark, then a charset declared with the upload,
then the XML declaration, each only if the bytes decode strictly with it,
then detection (see ``charsets``); a UTF-16 file that declares UTF-8
therefore reads right. A document whose root is XHTML's ``html`` goes to the
HTML extractor, and one that is not well-formed is read as plain text.
"""

from __future__ import annotations

import re
from typing import Any

from lxml import etree

from docmill.exceptions import LimitExceeded
from docmill.extract import mime
from docmill.extract.base import ExtractContext, ExtractionResult, Source, read_source
from docmill.extract.charsets import decode_declared
from docmill.extract.text import encoding_metadata, extract_text, text_warnings

_DECLARED_ENCODING = re.compile(
    rb"""^\s*<\?xml[^>]*?encoding\s*=\s*["']([A-Za-z0-9_.:-]+)["']"""
)


def extract_xml(source: Source, ctx: ExtractContext) -> ExtractionResult:
    data = read_source(source)
    match = _DECLARED_ENCODING.match(data[:1024])
    decoded = decode_declared(
        data, ctx.charset, match.group(1).decode("ascii") if match else None
    )
    # Bytes that decoded strictly as UTF-8 without a mark are the UTF-8 the
    # parser wants already; only other encodings are re-encoded.
    utf8 = decoded.encoding == "utf-8" and decoded.bom is None
    try:
        root = etree.fromstring(
            data if utf8 else decoded.text.encode("utf-8"), _parser()
        )
    except etree.XMLSyntaxError as exc:
        if "amplification" in str(exc):
            # libxml2 measures what the references would expand to even when
            # it is told not to expand them, and refuses past a factor.
            raise LimitExceeded(
                "the XML's entity references would expand past the parser's "
                "amplification limit (an entity bomb); nothing was expanded"
            ) from exc
        if "Excessive depth" in str(exc):
            # As for JSON: elements nested past libxml2's limit are a limit
            # reached, not damage, and as plain text they were only markup.
            raise LimitExceeded(
                "the XML nests its elements too deeply to read (deeper than "
                f"{_MAX_DEPTH} levels); nothing was read"
            ) from exc
        result = extract_text(data, ctx)
        result.warnings.append(f"not well-formed XML, read as plain text: {exc}")
        return result

    if etree.QName(root).localname.lower() == "html":
        from docmill.extract.html import extract_html

        return extract_html(data, ctx)

    unexpanded = sum(1 for _ in root.iter(etree.Entity))
    lines = None if unexpanded else _leaf_lines(root) or _text_lines(root)
    if lines is None:
        lines = []
        _collect(root, lines)
    metadata: dict[str, Any] = {
        **encoding_metadata(decoded),
        "root": etree.QName(root).localname,
    }
    if etree.QName(root).namespace:
        metadata["namespace"] = etree.QName(root).namespace
    warnings = text_warnings(decoded, ctx.charset)
    if unexpanded:
        warnings.append(f"{unexpanded} entity references left unexpanded")
    return ExtractionResult(
        mime.XML, "\n".join(lines), metadata=metadata, warnings=warnings
    )


# libxml2's nesting limit without XML_PARSE_HUGE (huge_tree), which stays
# off: it would lift the limits on text and names too.
_MAX_DEPTH = 256


def _parser() -> etree.XMLParser:
    # The text handed over is already UTF-8 whatever the declaration says;
    # ``encoding`` makes lxml ignore the declaration.
    return etree.XMLParser(
        encoding="utf-8",
        resolve_entities=False,
        load_dtd=False,
        no_network=True,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )


# The elements that hold text of their own: their text or a child's tail is
# more than XML whitespace. libxml2 finds them in C, in document order;
# walking every element in Python, listing its children to look at their
# tails, was most of the time on a data file. (Excluding those inside
# another in the same expression made libxml2 quadratic.)
_TEXT_HOLDERS = etree.XPath("descendant-or-self::*[text()[normalize-space()]]")


# Whether any element with child elements holds text of its own: mixed
# content, which the leaves alone do not give.
_MIXED = etree.XPath("boolean(descendant-or-self::*[*][text()[normalize-space()]])")
# The leaves' texts as plain strings, without an element proxy for each.
# A leaf's text is one node, what ``element.text`` gives: the parser drops
# comments and processing instructions before they become nodes, so the
# text around them arrives as one run, CDATA included, and a document with
# entity references never comes here. Without mixed content every text
# holding more than XML whitespace is a leaf's, so the texts are asked for
# without asking which elements are leaves: testing each element for
# children was a third of the query (2.5 ms of a 600 KB data file).
_LEAF_TEXTS = etree.XPath(
    "descendant-or-self::text()[normalize-space()]", smart_strings=False
)
# Every character ``str.split()`` splits at but " " (``test_xml`` holds the
# list to this Python's Unicode data).
SPACES_BUT_SPACE = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f\x85\xa0\u1680\u2000\u2001\u2002\u2003"
    "\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)


def _leaf_lines(root: Any) -> list[str] | None:
    """
    ``_text_lines``' lines for a document without mixed content, in which
    every element holding text is a leaf: its text is its line.

    Asking libxml2 for the leaves' text strings costs a third of looking at
    each holding element from Python. Most texts need no folding: no space
    but " ", none at either end and no two together, checked once over the
    texts joined by a mark (a mark beside a space in a text only sends it to
    the fold). A search for a character wider than the text's own is free,
    so the list costs a scan per Latin-1 space. None when the document has
    mixed content or no text lines.
    """
    if _MIXED(root):
        return None
    texts: list[str] = _LEAF_TEXTS(root)
    joined = "|".join(texts)
    if (
        "  " not in joined
        and " |" not in joined
        and "| " not in joined
        and joined[:1] != " "
        and joined[-1:] != " "
        and not any(space in joined for space in SPACES_BUT_SPACE)
    ):
        return texts
    return [line for line in (" ".join(text.split()) for text in texts) if line]


def _text_lines(root: Any) -> list[str] | None:
    """
    ``_collect``'s lines, found by XPath; None when it cannot answer.

    XPath's whitespace is XML's (space, tab, line breaks) and Python's is
    wider (no-break space, em space...). An element with children whose own
    text is only such spaces is mixed content to XPath but not to
    ``_collect``; the caller then walks the tree instead. Entity references
    are not text nodes to XPath, so a document with any takes the walk too.
    """
    lines = []
    # The last element read whole (mixed content): the holders inside it
    # follow it in document order and are already in its line.
    whole = None
    for element in _TEXT_HOLDERS(root):
        if whole is not None:
            if any(parent is whole for parent in element.iterancestors()):
                continue
            whole = None
        if len(element):
            text = element.text
            if (not text or text.isspace()) and all(
                not child.tail or child.tail.isspace() for child in element
            ):
                return None
            whole = element
            line = " ".join("".join(element.itertext()).split())
        else:
            line = " ".join(element.text.split())
        if line:
            lines.append(line)
    return lines


def _collect(element: Any, lines: list[str]) -> None:
    if element.tag is etree.Entity:
        lines.append(element.text)
        return
    text = element.text
    children = list(element)
    if not children:
        # A leaf, most elements of a data file: its text is all its text.
        if text:
            line = " ".join(text.split())
            if line:
                lines.append(line)
        return
    if (text and not text.isspace()) or any(
        child.tail and not child.tail.isspace() for child in children
    ):
        # Mixed content: whitespace runs folded to one space and the ends
        # trimmed, what a regular expression and strip() do, seven times
        # faster.
        line = " ".join("".join(element.itertext()).split())
        if line:
            lines.append(line)
        return
    for child in children:
        _collect(child, lines)
