"""
Reading the zip packages of Office Open XML (and ODF and EPUB, which share the
shape): capped member reads, XML parsing that never expands entities or
touches the network, relationship lookup and core properties.

Strict OOXML differs from the transitional flavour only in its namespace URIs,
so parts are rewritten to the transitional URIs before parsing and every
format module names elements once.
"""

from __future__ import annotations

import io
import posixpath
import re
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from types import TracebackType
from typing import IO, Any, NamedTuple

from lxml import etree

from docmill.exceptions import (
    CorruptDocument,
    EncryptedDocument,
    EntityBomb,
    ExtractionError,
    LimitExceeded,
)
from docmill.extract.base import ExtractContext, Source, open_source
from docmill.extract.zipread import DEFLATE_MAX_RATIO, ZipArchive, read_member

W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
S = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
P = "http://schemas.openxmlformats.org/presentationml/2006/main"
A = "http://schemas.openxmlformats.org/drawingml/2006/main"
R = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
MC = "http://schemas.openxmlformats.org/markup-compatibility/2006"
PACKAGE_RELS = "http://schemas.openxmlformats.org/package/2006/relationships"

_CP = "http://schemas.openxmlformats.org/package/2006/metadata/core-properties"
_DC = "http://purl.org/dc/elements/1.1/"
_DCTERMS = "http://purl.org/dc/terms/"
_CORE_FIELDS = {
    f"{{{_DC}}}title": "title",
    f"{{{_DC}}}creator": "author",
    f"{{{_DC}}}subject": "subject",
    f"{{{_DC}}}description": "description",
    f"{{{_CP}}}keywords": "keywords",
    f"{{{_CP}}}lastModifiedBy": "last_modified_by",
    f"{{{_DCTERMS}}}created": "created",
    f"{{{_DCTERMS}}}modified": "modified",
}
_STRICT_MARK = b"purl.oclc.org/ooxml/"
_STRICT_URI = re.compile(rb"http://purl\.oclc\.org/ooxml/([A-Za-z]+)/([A-Za-z]+)")
_TRANSITIONAL_URI = rb"http://schemas.openxmlformats.org/\1/2006/\2"
# Whitespace that str.split() splits on, other than the plain space.
_OTHER_SPACE = re.compile(r"[^\S ]")

# One parser for every part: no DTD, no entity expansion, no network, and
# libxml2's default size caps left on.
_SAFE_OPTIONS: dict[str, Any] = {
    "resolve_entities": False,
    "no_network": True,
    "load_dtd": False,
    "huge_tree": False,
}
# libxml2's own nesting limit, which only XML_PARSE_HUGE (huge_tree) lifts.
MAX_XML_DEPTH = 256
_PARSER = etree.XMLParser(remove_comments=True, remove_pis=True, **_SAFE_OPTIONS)

# NotImplementedError: a compression method zipfile lacks (deflate64, lzma).
# Wide enough for content under both "- " and "1. " markers.
LIST_INDENT = "   "
_ZIP_ERRORS = (
    zipfile.BadZipFile,
    zlib.error,
    EOFError,
    OSError,
    ValueError,
    NotImplementedError,
)


@dataclass(slots=True)
class Block:
    """One rendered paragraph or table."""

    text: str
    markdown: str
    # Inline Markdown with no block prefix, for use inside a table cell.
    inline: str
    # Nesting level of a list item (its Markdown then lacks the indent); -1
    # for anything that is not one.
    level: int = -1


class Relationship(NamedTuple):
    """One entry of a ``.rels`` part, its target resolved to a member name."""

    id: str
    type: str
    target: str
    external: bool

    @property
    def kind(self) -> str:
        """The last segment of the type URI (``header``, ``slide``)."""
        return self.type.rsplit("/", 1)[-1]


class Package:
    """
    A zip-based document opened for reading.

    Every member read counts against the document's unpacking budget
    (``ctx.unpacked``), shared with every archive and package nested in the
    same top-level document: a bomb spread across many parts is caught, and
    so is one spread across many office files in a zip or a mail, which
    each had a whole ``max_unpacked_bytes`` of their own before.

    Args:
        source: the document's path or bytes.
        ctx: the extraction context whose limits apply.
        kind: the format's name for error messages (``"DOCX"``).
    """

    def __init__(self, source: Source, ctx: ExtractContext, kind: str) -> None:
        self.kind = kind
        self._budget = ctx.unpacked
        self._stream: IO[bytes] | None = None
        if ctx.archive is not None:
            # The sniffer's zip, central directory already read.
            self._zip, ctx.archive = ctx.archive, None
        else:
            self._stream = open_source(source)
            try:
                self._zip = ZipArchive(self._stream)
            except _ZIP_ERRORS as exc:
                self._stream.close()
                message = f"the {kind} is not a readable zip ({exc})"
                raise CorruptDocument(message) from exc
        self.names = set(self._zip.namelist())
        # A slide's relationships are asked for its notes, its diagrams and
        # its layout; each .rels part is read and parsed once.
        self._relationships: dict[str, list[Relationship]] = {}
        self._related: dict[str, dict[str, list[Relationship]]] = {}

    def __enter__(self) -> Package:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._zip.close()
        if self._stream is not None:
            self._stream.close()

    def __contains__(self, name: str) -> bool:
        return name in self.names

    def read(self, name: str) -> bytes:
        """Return a member's bytes; raise ``CorruptDocument`` if it is missing."""
        try:
            info = self._zip.getinfo(name)
        except KeyError as exc:
            message = f"the {self.kind} has no {name!r} part"
            raise CorruptDocument(message) from exc
        if info.flag_bits & 0x1:
            raise EncryptedDocument(f"the {self.kind} part {name!r} is encrypted")
        budget = self._budget
        if info.file_size > budget.left:
            # Nothing was unpacked: a package nested in another document
            # fails alone, and its siblings may still be read.
            raise self._too_big(name, info.file_size)
        # The declared size may lie; reading one byte past the budget proves it.
        try:
            data = read_member(self._zip, info, budget.left + 1)
            if data is None:
                with self._zip.open(info) as member:
                    data = member.read(budget.left + 1)
        except _ZIP_ERRORS as exc:
            message = f"the {self.kind} part {name!r} is damaged ({exc})"
            raise CorruptDocument(message) from exc
        # Charged even when it is too much: the budget is then spent, which
        # fails the outermost document too (``extract_child``), so a zip of a
        # hundred such files cannot unpack the limit once for each.
        budget.left -= len(data)
        if budget.left < 0:
            raise self._too_big(name, len(data))
        return data

    def reserve(self, names: list[str]) -> None:
        """
        Charge the budget for members another reader inflates with no limit
        of its own (calamine), reading them only when their size is in doubt.

        Deflate expands at most 1032 to 1, so when the worst case of every
        member fits the budget together, their real sizes must fit too: the
        worst case is charged and nothing is inflated. Otherwise each member
        is read as ``read`` would, with the same verdict and error. Charging
        the worst case leaves less for later reads, so call this last. The
        bound holds for a reader that stops at the central directory's
        compressed size, as calamine's does (a member whose stream runs past
        it fails there with "incomplete deflate stream").
        """
        infos = []
        for name in names:
            try:
                infos.append(self._zip.getinfo(name))
            except KeyError as exc:
                message = f"the {self.kind} has no {name!r} part"
                raise CorruptDocument(message) from exc
        left = self._budget.left
        bound = 0
        for info in infos:
            if info.flag_bits & 0x1 or info.file_size > left:
                bound = left + 1
                break
            if info.compress_type == zipfile.ZIP_STORED:
                bound += info.compress_size
            elif info.compress_type == zipfile.ZIP_DEFLATED:
                bound += info.compress_size * DEFLATE_MAX_RATIO
            else:
                bound = left + 1
                break
        if bound <= left:
            self._budget.left -= bound
            return
        for info in infos:
            self.read(info.filename)

    def _too_big(self, name: str, size: int) -> LimitExceeded:
        return LimitExceeded(
            f"the {self.kind} unpacks to more than the limit of "
            f"{self._budget.limit} bytes for one document, the files nested "
            f"in it included (part {name!r} holds {size})"
        )

    def read_xml(self, name: str) -> bytes:
        """Return a member's XML with Strict OOXML namespaces made transitional."""
        return to_transitional(self.read(name))

    def parse(self, name: str) -> etree._Element:
        """Parse a member as XML; raise ``CorruptDocument`` if it is not."""
        return parse_xml(self.read_xml(name), f"{self.kind} part {name!r}")

    def parse_optional(self, name: str | None) -> etree._Element | None:
        """Parse a member if the package has it, else return None."""
        if name is None or name not in self.names:
            return None
        return self.parse(name)

    def relationships(self, part: str) -> list[Relationship]:
        """Return the relationships of ``part`` (``""`` for the package)."""
        found = self._relationships.get(part)
        if found is None:
            found = self._relationships[part] = self._read_relationships(part)
        return found

    def _read_relationships(self, part: str) -> list[Relationship]:
        folder, rels_name = _rels_part(part)
        root = self.parse_optional(rels_name)
        if root is None:
            return []
        found: list[Relationship] = []
        for element in root.iter(f"{{{PACKAGE_RELS}}}Relationship"):
            target = element.get("Target", "")
            external = element.get("TargetMode") == "External"
            if not external:
                target = (
                    _cached_target(folder, target)
                    if len(folder) + len(target) <= _CACHED_NAME_CHARS
                    else resolve_target(folder, target)
                )
            found.append(
                Relationship(
                    element.get("Id", ""), element.get("Type", ""), target, external
                )
            )
        return found

    def related(self, part: str, kind: str) -> list[Relationship]:
        """Return the internal relationships of ``part`` of the given kind."""
        by_kind = self._related.get(part)
        if by_kind is None:
            # Sorted by kind once per part: a deck asks each slide for three
            # or four kinds, and rel.kind splits the type URI on every call.
            by_kind = self._related[part] = {}
            for rel in self.relationships(part):
                if not rel.external:
                    by_kind.setdefault(rel.kind, []).append(rel)
        return list(by_kind.get(kind, ()))

    def main_part(self, default: str) -> str:
        """Return the package's main document part, or ``default``."""
        for rel in self.related("", "officeDocument"):
            if rel.target in self.names:
                return rel.target
        return default

    def core_properties(self) -> dict[str, Any]:
        """Return ``docProps/core.xml`` as metadata; an absent part gives ``{}``."""
        names = [rel.target for rel in self.related("", "core-properties")]
        names.append("docProps/core.xml")
        part = next((name for name in names if name in self.names), None)
        try:
            root = self.parse_optional(part)
        except (CorruptDocument, EntityBomb):
            # Broken or hostile properties never cost the document its text.
            return {}
        return core_properties(root) if root is not None else {}


def resolve_target(folder: str, target: str) -> str:
    """Resolve a relationship target against the folder of its source part."""
    if target.startswith("/"):
        return posixpath.normpath(target.lstrip("/"))
    return posixpath.normpath(posixpath.join(folder, target))


# Documents of one kind name the same parts and point them at the same
# targets (each slide at ../slideLayouts/slideLayout1.xml), and posixpath's
# join and normpath are Python loops: a deck spent 20 of them a file. Both
# results depend on the names alone, so they are kept across documents, but
# only for names of a plausible length: the caches live as long as the
# worker's process, and a hostile package's long targets (ten of 2 MB each
# fit in a 20 KB file) would stay there for every later document.
_CACHED_NAME_CHARS = 512


_cached_target = lru_cache(maxsize=4096)(resolve_target)


def _rels_part(part: str) -> tuple[str, str]:
    """The folder of ``part`` and the name of its relationships part."""
    if len(part) > _CACHED_NAME_CHARS:
        return _rels_part_of(part)
    return _cached_rels_part(part)


def _rels_part_of(part: str) -> tuple[str, str]:
    folder, base = posixpath.split(part)
    return folder, posixpath.join(folder, "_rels", f"{base}.rels")


_cached_rels_part = lru_cache(maxsize=4096)(_rels_part_of)


def to_transitional(data: bytes) -> bytes:
    if _STRICT_MARK not in data:
        return data
    return _STRICT_URI.sub(_TRANSITIONAL_URI, data)


def parse_xml(data: bytes, what: str) -> etree._Element:
    """Parse XML safely; ``what`` names the part in the error message."""
    try:
        return etree.fromstring(data, _PARSER)
    except etree.XMLSyntaxError as exc:
        raise _refusal(exc, what) from exc


def iterparse(
    data: bytes, what: str, tags: tuple[str, ...]
) -> Iterator[etree._Element]:
    """
    Yield each element named in ``tags`` as its end tag is read.

    The caller may clear what it has consumed, so a large part never has to
    sit in memory as one tree.
    """
    events = etree.iterparse(
        io.BytesIO(data),
        events=("end",),
        tag=tags,
        remove_comments=True,
        remove_pis=True,
        **_SAFE_OPTIONS,
    )
    try:
        for _event, element in events:
            yield element
    except etree.XMLSyntaxError as exc:
        raise _refusal(exc, what) from exc


def _refusal(exc: etree.XMLSyntaxError, what: str) -> ExtractionError:
    if "amplification" in str(exc):
        # libxml2 weighs what the entity references would expand to even
        # though it is told not to expand them, and stops past a factor: the
        # part is hostile (billion laughs, quadratic blow-up), not damaged.
        return EntityBomb(
            f"the {what} was refused: its entity references would expand past "
            "the XML parser's amplification limit (an entity bomb); docmill "
            "expands no entities"
        )
    if "Excessive depth" in str(exc):
        # libxml2 stops at 256 levels and suggests an option we must not
        # set; nesting that deep is a limit reached, as in plain XML.
        return LimitExceeded(
            f"the {what} nests its elements too deeply to read (deeper than "
            f"{MAX_XML_DEPTH} levels); nothing was read"
        )
    return CorruptDocument(f"the {what} is not well-formed XML ({exc})")


def core_properties(root: etree._Element) -> dict[str, Any]:
    metadata: dict[str, Any] = {}
    for element in root:
        name = _CORE_FIELDS.get(element.tag) if isinstance(element.tag, str) else None
        value = (element.text or "").strip()
        if name and value:
            metadata[name] = (
                iso_date(value) if name in {"created", "modified"} else value
            )
    return metadata


def iso_date(value: str) -> str:
    """Normalise a W3C date to ISO 8601 with an explicit offset, if it parses."""
    try:
        return datetime.fromisoformat(value).isoformat()
    except ValueError:
        return value


def markdown_table(rows: list[list[str]]) -> str:
    """
    Render rows of inline cell text as a Markdown table, the first row its head.

    Short rows are padded; pipes and line breaks inside cells are escaped so
    a cell never breaks the table.
    """
    rows = [row for row in rows if row]
    if not rows:
        return ""
    width = max(map(len, rows))
    # Rows joined as cells are: a table clean as a whole has every row clean
    # (a cell's edge space meets a separator either way), and one set of
    # scans of it replaces a set per row.
    table_clean = _clean_joined("\x00".join(map("\x00".join, rows)))
    lines = []
    for index, row in enumerate(rows):
        cells = (
            row
            if table_clean or _clean_joined("\x00".join(row))
            else [_table_cell(cell) for cell in row]
        )
        if len(cells) < width:
            cells = [*cells, *([""] * (width - len(cells)))]
        lines.append("| " + " | ".join(cells) + " |")
        if index == 0:
            lines.append("|" + " --- |" * width)
    return "\n".join(lines)


def _clean_joined(joined: str) -> bool:
    # Whether _table_cell would leave every cell of cells joined by NUL as
    # it is: no pipe, and no whitespace but single spaces inside a cell. A
    # few scans in C decide it, instead of a Python call per cell.
    return not (
        "|" in joined
        or "  " in joined
        or " \x00" in joined
        or "\x00 " in joined
        or joined[:1] == " "
        or joined[-1:] == " "
        or _OTHER_SPACE.search(joined)
    )


def _table_cell(text: str) -> str:
    return " ".join(text.replace("|", "\\|").split())


def blocks_markdown(blocks: list[Block]) -> str:
    """Join rendered blocks into Markdown, nesting list items as Markdown can."""
    pieces: list[str] = []
    # Levels of the list items enclosing the current one. A Word list may open
    # at level 3 or skip levels, but Markdown nests one step at a time and
    # reads deeper indents as code, so the depth shown is this stack's height.
    open_levels: list[int] = []
    for block in blocks:
        if pieces:
            in_list = bool(open_levels) and block.level >= 0
            pieces.append("\n" if in_list else "\n\n")
        if block.level < 0:
            open_levels.clear()
            pieces.append(block.markdown)
            continue
        while open_levels and open_levels[-1] >= block.level:
            open_levels.pop()
        pieces.append(LIST_INDENT * len(open_levels) + block.markdown)
        open_levels.append(block.level)
    return "".join(pieces)


# Word and ODF both interleave note marks with run text and build table cells
# from paragraphs; these helpers are the one place that does it.
def with_marks(parts: list[str], marks: list[tuple[int, str]]) -> str:
    pieces: list[str] = []
    position = 0
    for index, mark in marks:
        pieces.extend(parts[position:index])
        pieces.append(mark)
        position = max(position, index)
    pieces.extend(parts[position:])
    return "".join(pieces)


def cell_block(blocks: list[Block]) -> Block:
    text = " ".join(block.text.replace("\n", " ") for block in blocks)
    inline = " ".join(block.inline.replace("\n", " ") for block in blocks)
    return Block(text, inline, inline)


def joined_blocks(blocks: list[Block]) -> Block:
    return Block(
        "\n".join(block.text for block in blocks),
        "\n\n".join(block.markdown for block in blocks),
        " ".join(block.inline.replace("\n", " ") for block in blocks),
    )


def compose_sections(
    blocks: list[Block], extras: list[tuple[str, list[Block]]]
) -> tuple[str, str]:
    """
    Text and Markdown of a body followed by its titled extra parts.

    Headers, footers, notes and comments follow the body, each under its
    title, so a reader of the text can tell them from the body; empty ones
    are left out.
    """
    text = "\n".join(block.text for block in blocks)
    markdown = blocks_markdown(blocks)
    for title, section in extras:
        if not section:
            continue
        text += f"\n\n--- {title} ---\n" + "\n".join(block.text for block in section)
        markdown += f"\n\n## {title}\n\n" + blocks_markdown(section)
    return text.strip("\n"), markdown.strip("\n")
