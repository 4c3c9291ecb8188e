"""
A document's text or Markdown, read from the database a slice at a time.

A result can be tens of megabytes. Read whole, each reader held it two or
three times over (the driver's buffer, the decoded text, the encoded body)
for as long as its client took to download it: 30 slow readers of a 50
million character text took the API from 165 MB to 2.3 GB. Read in slices,
a reader holds one slice.

Each slice is read with a check that the document still has the result the
body began with (its ``finished_at``): a result replaced by reprocessing,
or deleted, between two slices ends the body early with ``ResultChanged``
rather than splicing two results under one Content-Length.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, func, literal, select

from docmill.db.engine import RowReader
from docmill.db.models import Document, DocumentContent
from docmill.exceptions import ResultChanged

# Bytes a reader holds at a time on SQLite; characters on PostgreSQL.
SLICE_SIZE = 1024 * 1024
# Encodings in which PostgreSQL's octet_length is the UTF-8 body's length.
_UTF8_ENCODINGS = {"UTF8", "SQL_ASCII"}


@dataclass(frozen=True)
class ResultBody:
    """A result's UTF-8 body: its length in bytes, then its bytes."""

    size: int
    chunks: AsyncIterator[bytes]


async def open_result(
    reads: RowReader, document_id: str, markdown: bool
) -> ResultBody | None:
    """
    The body of a document's text, or of its Markdown (its text where it
    has none); None if the document has no result.
    """
    if reads.sqlite_file:
        return await _open_sqlite(reads, document_id, markdown)
    if reads.engine.dialect.name == "postgresql":
        return await _open_postgres(reads, document_id, markdown)
    return await _open_whole(reads, document_id, markdown)


_SQLITE_LOCATE = (
    "SELECT 'document_contents', "
    "CASE WHEN ? AND c.markdown IS NOT NULL THEN 'markdown' ELSE 'text' END, "
    "c.rowid, d.finished_at FROM document_contents AS c "
    "JOIN documents AS d ON d.id = c.document_id WHERE c.document_id = ?"
)


async def _open_sqlite(
    reads: RowReader, document_id: str, markdown: bool
) -> ResultBody | None:
    params = (markdown, document_id)
    first = await reads.sqlite_slice(_SQLITE_LOCATE, params, 0, SLICE_SIZE)
    if first is None:
        return None
    version, size, head = first

    async def chunks() -> AsyncIterator[bytes]:
        sent, chunk = 0, head
        while True:
            if chunk:
                yield chunk
            sent += len(chunk)
            if sent >= size:
                return
            found = await reads.sqlite_slice(_SQLITE_LOCATE, params, sent, SLICE_SIZE)
            if found is None or found[0] != version or found[1] != size:
                raise ResultChanged(document_id)
            chunk = found[2]
            if not chunk:
                raise ResultChanged(document_id)

    return ResultBody(size, chunks())


def _markdown_or_text(markdown: bool) -> Any:
    if not markdown:
        return DocumentContent.text
    return func.coalesce(DocumentContent.markdown, DocumentContent.text)


def _head(markdown: bool) -> Any:
    return (
        select(
            Document.finished_at,
            func.octet_length(_markdown_or_text(markdown)).label("size"),
            func.current_setting(literal("server_encoding")).label("encoding"),
        )
        .select_from(Document)
        .join(DocumentContent, DocumentContent.document_id == Document.id)
        .where(Document.id == bindparam("document_id"))
    )


def _slice(markdown: bool) -> Any:
    # Characters, not bytes: PostgreSQL has no byte slice of a text. Each
    # slice decompresses the stored value up to its end, so a whole body
    # costs the server about (slices / 2) whole reads (see design.md).
    return (
        select(
            func.substr(
                _markdown_or_text(markdown), bindparam("start"), bindparam("length")
            ).label("part")
        )
        .select_from(Document)
        .join(DocumentContent, DocumentContent.document_id == Document.id)
        .where(
            Document.id == bindparam("document_id"),
            Document.finished_at == bindparam("finished_at"),
        )
    )


def _whole(markdown: bool) -> Any:
    return select(_markdown_or_text(markdown).label("body")).where(
        DocumentContent.document_id == bindparam("document_id")
    )


# Built once each, for the row reader's cache of compiled statements.
_HEADS = {markdown: _head(markdown) for markdown in (False, True)}
_SLICES = {markdown: _slice(markdown) for markdown in (False, True)}
_WHOLES = {markdown: _whole(markdown) for markdown in (False, True)}


async def _open_postgres(
    reads: RowReader, document_id: str, markdown: bool
) -> ResultBody | None:
    head = await reads.first(_HEADS[markdown], document_id=document_id)
    if head is None:
        return None
    if head.encoding not in _UTF8_ENCODINGS:
        # octet_length counts the server's encoding, not the body's.
        return await _open_whole(reads, document_id, markdown)

    async def chunks() -> AsyncIterator[bytes]:
        sent, start = 0, 1
        while sent < head.size:
            found = await reads.first(
                _SLICES[markdown],
                document_id=document_id,
                finished_at=head.finished_at,
                start=start,
                length=SLICE_SIZE,
            )
            if found is None or not found.part:
                raise ResultChanged(document_id)
            chunk = found.part.encode("utf-8")
            sent += len(chunk)
            if sent > head.size:
                raise ResultChanged(document_id)
            start += len(found.part)
            yield chunk

    return ResultBody(head.size, chunks())


async def _open_whole(
    reads: RowReader, document_id: str, markdown: bool
) -> ResultBody | None:
    # An in-memory SQLite database (tests) or a PostgreSQL server in a
    # legacy encoding: one read of the whole value, as before slices.
    found = await reads.first(_WHOLES[markdown], document_id=document_id)
    if found is None:
        return None
    body = found.body.encode("utf-8")

    async def chunks() -> AsyncIterator[bytes]:
        yield body

    return ResultBody(len(body), chunks())
