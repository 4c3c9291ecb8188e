"""
The extractor protocol and the shapes it produces.

An extractor is any callable ``(source, ctx) -> ExtractionResult``. ``source``
is a path for a top-level document and bytes for an embedded one (a mail
attachment, an archive member); ``open_source`` reads either. Extractors raise
subclasses of ``ExtractionError`` for documents they cannot read and never
catch ``BaseException``: the child process's time and memory limits must be
able to stop them.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol

Source = Path | bytes

ProgressCallback = Callable[[int, int, str], None]


@dataclass(frozen=True)
class Limits:
    """Safety limits one extraction must stay within."""

    max_text_chars: int = 50_000_000
    # Metadata strings, text, Markdown and pages of a document and of every
    # document embedded in it, together: what one result may make the
    # server hold.
    max_result_chars: int = 100_000_000
    max_archive_depth: int = 3
    max_archive_members: int = 1000
    max_unpacked_bytes: int = 256 * 1024 * 1024


@dataclass
class ChildResult:
    """A document found inside another one: an attachment or archive member."""

    name: str
    result: ExtractionResult | None = None
    error_code: str | None = None
    error_message: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "result": self.result.to_dict() if self.result else None,
            "error": (
                {"code": self.error_code, "message": self.error_message}
                if self.error_code
                else None
            ),
        }


@dataclass
class ExtractionResult:
    """
    What an extractor found in one document.

    ``pages`` is set only for formats with pages (PDF pages, slides, sheets);
    ``markdown`` only where the format has structure worth rendering.
    ``metadata`` holds the document's own properties (title, author, created,
    language) plus format facts such as ``encoding`` or ``needs_ocr_pages``.
    """

    mime_type: str
    text: str
    pages: list[str] | None = None
    markdown: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    children: list[ChildResult] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    # (text, its UTF-8 bytes) when the extractor holds those bytes anyway (a
    # UTF-8 text file's own), so the word count need not encode a large text
    # again. Kept with the text it encodes: it counts only while ``text`` is
    # still that very object. Not part of the result's data.
    utf8: tuple[str, bytes] | None = field(default=None, repr=False, compare=False)

    @property
    def page_count(self) -> int | None:
        return len(self.pages) if self.pages is not None else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "mime_type": self.mime_type,
            "text": self.text,
            "pages": self.pages,
            "markdown": self.markdown,
            "metadata": self.metadata,
            "children": [child.to_dict() for child in self.children],
            "warnings": self.warnings,
        }


class UnpackBudget:
    """
    The bytes a document may still unpack, shared by every archive nested in
    it: a budget per archive let a 7 KB zip of zips unpack its limit at each
    of its hundred inner archives.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.left = limit


class ExtractContext:
    """
    What an extractor may ask of its caller: limits, progress, recursion.

    Args:
        limits: the safety limits in force.
        depth: how many containers enclose this document (0 at the top).
        on_progress: called with ``(done, total, unit)`` as pages or sheets
            are read; the worker stores it on the document.
        password: the password the submitter gave for an encrypted document;
            extractors try the empty password when it is None.
        unpacked: the unpacking budget of the outermost document; a fresh
            one of ``limits.max_unpacked_bytes`` when omitted.
        charset: the charset the submitter declared for the document's
            bytes, as given (``windows-1253``). The pipeline keeps it only
            for the formats that are text (``mime.DECLARED_CHARSET_TYPES``);
            embedded documents never inherit it.
    """

    def __init__(
        self,
        limits: Limits | None = None,
        depth: int = 0,
        on_progress: ProgressCallback | None = None,
        password: str | None = None,
        unpacked: UnpackBudget | None = None,
        charset: str | None = None,
    ) -> None:
        self.limits = limits or Limits()
        self.depth = depth
        self.unpacked = unpacked or UnpackBudget(self.limits.max_unpacked_bytes)
        self._on_progress = on_progress
        self.password = password
        self.charset = charset
        # Set by the pipeline before the extractor runs: the sniffed media type
        # and the name the document was submitted under, if any.
        self.media_type = ""
        self.name: str | None = None
        # The sniffer's open zip of a zip-based document; an extractor that
        # reads the zip takes it (and closes it), the pipeline closes it
        # otherwise.
        self.archive: zipfile.ZipFile | None = None

    def progress(self, done: int, total: int, unit: str) -> None:
        if self._on_progress is not None and self.depth == 0:
            self._on_progress(done, total, unit)

    def extract_child(self, name: str, data: bytes) -> ChildResult:
        """
        Extract an embedded document, recording its failure instead of raising.

        A child past the depth limit is recorded as ``limit_exceeded``; the
        parent still completes. A child that spends the document's unpacking
        budget fails the document: the budget is the whole document's, and
        recording it on the child let the next sibling start unpacking again.
        """
        from docmill.exceptions import ExtractionError
        from docmill.extract.pipeline import extract_bytes

        if self.depth + 1 > self.limits.max_archive_depth:
            return ChildResult(
                name,
                error_code="limit_exceeded",
                error_message=(
                    f"not read: nesting depth {self.depth + 1} exceeds the limit "
                    f"of {self.limits.max_archive_depth}"
                ),
            )
        child_ctx = ExtractContext(self.limits, self.depth + 1, unpacked=self.unpacked)
        try:
            return ChildResult(name, result=extract_bytes(data, child_ctx))
        except ExtractionError as exc:
            if self.unpacked.left < 0:
                raise
            return ChildResult(name, error_code=exc.code, error_message=exc.message)


class Extractor(Protocol):
    """Reads one format."""

    def __call__(self, source: Source, ctx: ExtractContext) -> ExtractionResult: ...


def open_source(source: Source) -> IO[bytes]:
    if isinstance(source, bytes):
        return io.BytesIO(source)
    return open(source, "rb")


def read_source(source: Source) -> bytes:
    if isinstance(source, bytes):
        return source
    return source.read_bytes()
