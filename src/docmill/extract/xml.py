"""
XML: the text values of its elements, one element per line.

An element holding only other elements contributes nothing itself; an
element whose text runs between child elements (mixed content, as in
``<p>a <b>b</b> c</p>``) is one line. Attribute values are not text.

The parser never expands an entity, never loads a DTD and never touches the
network, so entity bombs (billion laughs, quadratic blow-up) and external
entities (XXE) stay inert. An entity reference is kept in the text as it was
written, ``&name;``, so a reader sees that something was not expanded.

The encoding is a byte-order mark, then the XML declaration if the bytes
decode strictly with it, then detection; a UTF-16 file that declares UTF-8
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
from docmill.extract.text import encoding_metadata, extract_text, undecodable_warning
from docmill.extract.textcodec import decode

_DECLARED_ENCODING = re.compile(
    rb"""^\s*<\?xml[^>]*?encoding\s*=\s*["']([A-Za-z0-9_.:-]+)["']"""
)


def extract_xml(source: Source, ctx: ExtractContext) -> ExtractionResult:
    data = read_source(source)
    match = _DECLARED_ENCODING.match(data[:1024])
    decoded = decode(data, declared=match.group(1).decode("ascii") if match else None)
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
        result = extract_text(data, ctx)
        result.warnings.append(f"not well-formed XML, read as plain text: {exc}")
        return result

    if etree.QName(root).localname.lower() == "html":
        from docmill.extract.html import extract_html

        return extract_html(data, ctx)

    lines: list[str] = []
    _collect(root, lines)
    metadata: dict[str, Any] = {
        **encoding_metadata(decoded),
        "root": etree.QName(root).localname,
    }
    if etree.QName(root).namespace:
        metadata["namespace"] = etree.QName(root).namespace
    unexpanded = sum(1 for _ in root.iter(etree.Entity))
    warnings = undecodable_warning(decoded)
    if unexpanded:
        warnings.append(f"{unexpanded} entity references left unexpanded")
    return ExtractionResult(
        mime.XML, "\n".join(lines), metadata=metadata, warnings=warnings
    )


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
