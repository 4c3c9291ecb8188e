"""
A document's text or Markdown, read from the database a slice at a time.

A result can be tens of megabytes. Read whole, each reader held it two or
three times over (the driver's buffer, the decoded text, the encoded body)
for as long as its client took to download it: 30 slow readers of a 50
million character text took the API from 165 MB to 2.3 GB. Now a reader
holds one slice (``SLICE_SIZE`` bytes) at a time.

On SQLite each slice is read in place, with SQLite's incremental blob reads.
On PostgreSQL a body up to a slice is read whole; a larger one is copied
once to a temporary file (see ``_Spools``) and sent from there.

Every read checks that the document still has the result the body began
with (its ``finished_at``): a result replaced by reprocessing, or deleted,
before the body is sent ends it early with ``ResultChanged`` rather than
splicing two results under one Content-Length.
"""

from __future__ import annotations

import asyncio
import functools
import os
import struct
import tempfile
import weakref
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, func, literal_column, select

from docmill.db.engine import RowReader
from docmill.db.models import Document, DocumentContent
from docmill.exceptions import ResultChanged

# Bytes a reader holds at a time; a body up to this size on PostgreSQL is
# read whole, with no spool.
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
            func.current_setting(literal_column("'server_encoding'")).label("encoding"),
        )
        .select_from(Document)
        .join(DocumentContent, DocumentContent.document_id == Document.id)
        .where(Document.id == bindparam("document_id"))
    )


def _whole_at(markdown: bool) -> Any:
    return (
        select(_markdown_or_text(markdown).label("body"))
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
_WHOLES_AT = {markdown: _whole_at(markdown) for markdown in (False, True)}
_WHOLES = {markdown: _whole(markdown) for markdown in (False, True)}
# The COPY that spools a large body (asyncpg's SQL, binary format).
_COPIES = {
    markdown: "SELECT "
    + ("coalesce(c.markdown, c.text)" if markdown else "c.text")
    + " FROM document_contents AS c JOIN documents AS d ON d.id = c.document_id"
    " WHERE c.document_id = $1 AND d.finished_at = $2"
    for markdown in (False, True)
}


async def _open_postgres(
    reads: RowReader, document_id: str, markdown: bool
) -> ResultBody | None:
    head = await reads.first(_HEADS[markdown], document_id=document_id)
    if head is None:
        return None
    if head.encoding not in _UTF8_ENCODINGS:
        # octet_length counts the server's encoding, not the body's.
        return await _open_whole(reads, document_id, markdown)
    if head.size <= SLICE_SIZE:
        return ResultBody(
            head.size, _small_body(reads, document_id, markdown, head.finished_at)
        )
    key = (document_id, markdown, head.finished_at)
    return ResultBody(head.size, _spools(reads).body(key, head.size))


async def _small_body(
    reads: RowReader, document_id: str, markdown: bool, finished_at: Any
) -> AsyncIterator[bytes]:
    found = await reads.first(
        _WHOLES_AT[markdown], document_id=document_id, finished_at=finished_at
    )
    if found is None:
        raise ResultChanged(document_id)
    yield found.body.encode("utf-8")


class _Spool:
    """A large body copied to a temporary file, for the readers that share it."""

    def __init__(self) -> None:
        # Closed when its last reader leaves (or its copy ends, if later).
        self.file = tempfile.TemporaryFile()  # noqa: SIM115
        self.readers = 0
        # Where the body starts in the file, and its length.
        self.span: asyncio.Future[tuple[int, int]] | None = None


class _Spools:
    """
    Large bodies on PostgreSQL, spooled to files one at a time.

    PostgreSQL cannot read a byte range of a compressed text: ``substr``
    decompresses the value from its start up to the slice, so reading 50 MB
    a megabyte at a time cost the server 25 whole reads (30 readers of one
    such text took 185 s instead of 11). A body is instead copied once
    (``COPY ... TO STDOUT``, whose one message asyncpg holds whole) into an
    unnamed temporary file, and read from there a slice at a time. Only one
    copy runs at a time in a process, so the API holds at most one large
    body at once however many readers start together; readers of the same
    result share its file.
    """

    def __init__(self, reads: RowReader) -> None:
        self.reads = reads
        self.one_at_a_time = asyncio.Lock()
        self.open: dict[tuple[str, bool, Any], _Spool] = {}

    async def body(self, key: tuple[str, bool, Any], size: int) -> AsyncIterator[bytes]:
        spool = self.open.get(key)
        if spool is None:
            spool = self.open[key] = _Spool()
            spool.span = asyncio.ensure_future(self._fill(spool, *key))
        spool.readers += 1
        try:
            assert spool.span is not None
            start, length = await asyncio.shield(spool.span)
            if length != size:
                raise ResultChanged(key[0])
            sent = 0
            while sent < length:
                chunk = await asyncio.to_thread(
                    os.pread,
                    spool.file.fileno(),
                    min(SLICE_SIZE, length - sent),
                    start + sent,
                )
                if not chunk:
                    raise ResultChanged(key[0])
                sent += len(chunk)
                yield chunk
        finally:
            spool.readers -= 1
            if spool.readers == 0:
                if self.open.get(key) is spool:
                    del self.open[key]
                assert spool.span is not None
                spool.span.add_done_callback(functools.partial(_close, spool))

    async def _fill(
        self, spool: _Spool, document_id: str, markdown: bool, finished_at: Any
    ) -> tuple[int, int]:
        async def write(data: bytes) -> None:
            await asyncio.to_thread(spool.file.write, data)

        async with self.one_at_a_time:
            copied = await self.reads.copy_pooled(
                _COPIES[markdown], document_id, finished_at, output=write
            )
            if not copied:
                # No pool: through the engine, the whole body at once.
                found = await self.reads.first(
                    _WHOLES_AT[markdown],
                    document_id=document_id,
                    finished_at=finished_at,
                )
                if found is None:
                    raise ResultChanged(document_id)
                body = found.body.encode("utf-8")
                await write(body)
                await asyncio.to_thread(spool.file.flush)
                return 0, len(body)
        return await asyncio.to_thread(_copied_span, spool.file, document_id)


def _close(spool: _Spool, span: asyncio.Future[tuple[int, int]]) -> None:
    if not span.cancelled():
        span.exception()  # retrieved: its readers, if any, have seen it
    spool.file.close()


def _copied_span(file: Any, document_id: str) -> tuple[int, int]:
    """Where the one value of a binary COPY's one row starts, and its length."""
    file.flush()
    file.seek(0)
    header = file.read(19)
    if header[:11] != b"PGCOPY\n\xff\r\n\x00":
        raise ValueError(f"not a binary COPY: {header[:11]!r}")
    (extension,) = struct.unpack("!i", header[15:19])
    file.seek(19 + extension)
    row = file.read(6)
    if len(row) < 6 or struct.unpack("!h", row[:2])[0] != 1:
        raise ResultChanged(document_id)  # no row: replaced or deleted
    (length,) = struct.unpack("!i", row[2:])
    return 19 + extension + 6, length


_ALL_SPOOLS: weakref.WeakKeyDictionary[RowReader, _Spools] = weakref.WeakKeyDictionary()


def _spools(reads: RowReader) -> _Spools:
    spools = _ALL_SPOOLS.get(reads)
    if spools is None:
        spools = _ALL_SPOOLS[reads] = _Spools(reads)
    return spools


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
