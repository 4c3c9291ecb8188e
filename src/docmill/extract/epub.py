"""
EPUB 2 and 3: the XHTML chapters in spine order, rendered by the HTML
extractor, with the title and author from the package document (OPF).

A chapter whose Markdown does not open with a heading gets one from the
table of contents (EPUB 3 nav or EPUB 2 NCX) when it names the chapter.
"""

from __future__ import annotations

import posixpath
from typing import Any
from urllib.parse import unquote

from lxml import etree

from docmill.exceptions import (
    CorruptDocument,
    EmptyDocument,
    EncryptedDocument,
    EntityBomb,
)
from docmill.extract import mime
from docmill.extract.base import ExtractContext, ExtractionResult, Source
from docmill.extract.html import extract_html
from docmill.extract.ooxml import Package

CONTAINER = "urn:oasis:names:tc:opendocument:xmlns:container"
OPF = "http://www.idpf.org/2007/opf"
DC = "http://purl.org/dc/elements/1.1/"
NCX = "http://www.daisy.org/z3986/2005/ncx/"
XHTML = "http://www.w3.org/1999/xhtml"
EPUB_OPS = "http://www.idpf.org/2007/ops"
XMLENC = "http://www.w3.org/2001/04/xmlenc#"

_CHAPTER_TYPES = frozenset({"application/xhtml+xml", "text/html"})
# Font obfuscation, which hides fonts and not text, is no reason to refuse.
_FONT_OBFUSCATION = frozenset(
    {"http://www.idpf.org/2008/embedding", "http://ns.adobe.com/pdf/enc#RC"}
)
_DC_FIELDS = {
    "title": "title",
    "creator": "author",
    "language": "language",
    "publisher": "publisher",
    "date": "created",
    "description": "description",
}
CHAPTER_SEPARATOR = "\n\n"


def extract_epub(source: Source, ctx: ExtractContext) -> ExtractionResult:
    with Package(source, ctx, "EPUB") as package:
        _refuse_encrypted(package)
        opf_name = _package_document(package)
        opf = package.parse(opf_name)
        metadata = _metadata(opf)
        manifest = _manifest(opf, posixpath.dirname(opf_name))
        chapters = _spine(opf, manifest, package)
        labels = _toc_labels(package, opf, manifest)

        texts: list[str] = []
        markdown: list[str] = []
        for number, name in enumerate(chapters, start=1):
            text, chapter_markdown = _chapter(package.read(name), ctx)
            if text:
                texts.append(text)
                markdown.append(_titled(chapter_markdown, labels.get(name)))
            ctx.progress(number, len(chapters), "chapters")

    metadata["chapters"] = len(chapters)
    return ExtractionResult(
        mime.EPUB,
        CHAPTER_SEPARATOR.join(texts),
        markdown=CHAPTER_SEPARATOR.join(markdown),
        metadata=metadata,
    )


def _refuse_encrypted(package: Package) -> None:
    encryption = package.parse_optional("META-INF/encryption.xml")
    if encryption is None:
        return
    for method in encryption.iter(f"{{{XMLENC}}}EncryptionMethod"):
        if method.get("Algorithm") not in _FONT_OBFUSCATION:
            raise EncryptedDocument(
                "the EPUB's content is encrypted (DRM); docmill cannot read it"
            )


def _package_document(package: Package) -> str:
    container = package.parse("META-INF/container.xml")
    rootfile = container.find(f".//{{{CONTAINER}}}rootfile")
    path = rootfile.get("full-path") if rootfile is not None else None
    if not path or path not in package:
        raise CorruptDocument("the EPUB's container names no package document")
    return str(path)


def _metadata(opf: etree._Element) -> dict[str, Any]:
    metadata: dict[str, Any] = {}
    block = opf.find(f"{{{OPF}}}metadata")
    if block is None:
        return metadata
    for element in block:
        if not isinstance(element.tag, str):
            continue
        name = _DC_FIELDS.get(etree.QName(element).localname)
        value = " ".join((element.text or "").split())
        if name and value and element.tag.startswith(f"{{{DC}}}"):
            # The first of several creators or titles is the main one.
            metadata.setdefault(name, value)
    return metadata


def _manifest(opf: etree._Element, folder: str) -> dict[str, tuple[str, str]]:
    """Map manifest ids to (member name, media type)."""
    items: dict[str, tuple[str, str]] = {}
    for item in opf.iter(f"{{{OPF}}}item"):
        href = item.get("href")
        if href:
            name = _resolve(folder, href)
            items[item.get("id", "")] = (name, item.get("media-type", ""))
    return items


def _resolve(folder: str, href: str) -> str:
    return posixpath.normpath(posixpath.join(folder, unquote(href.split("#", 1)[0])))


def _spine(
    opf: etree._Element, manifest: dict[str, tuple[str, str]], package: Package
) -> list[str]:
    chapters: list[str] = []
    for itemref in opf.iter(f"{{{OPF}}}itemref"):
        name, media_type = manifest.get(itemref.get("idref", ""), ("", ""))
        if media_type in _CHAPTER_TYPES and name in package and name not in chapters:
            chapters.append(name)
    return chapters


def _toc_labels(
    package: Package, opf: etree._Element, manifest: dict[str, tuple[str, str]]
) -> dict[str, str]:
    """Map chapter member names to their table-of-contents labels."""
    labels: dict[str, str] = {}
    for item in opf.iter(f"{{{OPF}}}item"):
        name, media_type = manifest.get(item.get("id", ""), ("", ""))
        if "nav" in (item.get("properties") or "").split():
            _nav_labels(package, name, labels)
        elif media_type == "application/x-dtbncx+xml":
            _ncx_labels(package, name, labels)
    return labels


def _nav_labels(package: Package, name: str, labels: dict[str, str]) -> None:
    root = _parse_quietly(package, name)
    if root is None:
        return
    for nav in root.iter(f"{{{XHTML}}}nav"):
        if nav.get(f"{{{EPUB_OPS}}}type") != "toc":
            continue
        for link in nav.iter(f"{{{XHTML}}}a"):
            label = " ".join("".join(link.itertext()).split())
            href = link.get("href")
            if href and label:
                labels.setdefault(_resolve(posixpath.dirname(name), href), label)


def _ncx_labels(package: Package, name: str, labels: dict[str, str]) -> None:
    root = _parse_quietly(package, name)
    if root is None:
        return
    for point in root.iter(f"{{{NCX}}}navPoint"):
        text = point.find(f"{{{NCX}}}navLabel/{{{NCX}}}text")
        content = point.find(f"{{{NCX}}}content")
        if text is None or content is None or not content.get("src"):
            continue
        label = " ".join((text.text or "").split())
        target = _resolve(posixpath.dirname(name), content.get("src", ""))
        if label:
            labels.setdefault(target, label)


def _parse_quietly(package: Package, name: str) -> etree._Element | None:
    # A broken or hostile table of contents costs the headings, never the book.
    try:
        return package.parse_optional(name)
    except (CorruptDocument, EntityBomb):
        return None


def _chapter(data: bytes, ctx: ExtractContext) -> tuple[str, str]:
    try:
        result = extract_html(data, ctx)
    except EmptyDocument:
        return "", ""
    return result.text.strip(), (result.markdown or "").strip()


def _titled(markdown: str, label: str | None) -> str:
    if label is None or markdown.startswith("#"):
        return markdown
    return f"## {label}\n\n{markdown}"
