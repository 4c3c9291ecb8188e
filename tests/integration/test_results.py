"""Result bodies read a slice at a time, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import pytest

from docmill.db.engine import RowReader
from docmill.exceptions import ResultChanged
from docmill.queue import results
from docmill.queue.store import JobStore
from tests.integration.test_store import _payload, queue_document

pytestmark = pytest.mark.anyio

# Two-, three- and four-byte characters, so slices of 5 (bytes on SQLite,
# characters on PostgreSQL) cut through them in every position.
TEXT = "naïve 東京 ok 🙂 end\n" * 40 + "tail"


async def _completed(store: JobStore, text: str, markdown: str | None = None) -> str:
    document_id = await queue_document(store)
    claim = await store.claim_next("w:1")
    await store.complete(claim, _payload(text) | {"markdown": markdown})
    return document_id


async def _read(body: results.ResultBody) -> bytes:
    return b"".join([chunk async for chunk in body.chunks])


@pytest.fixture
def small_slices(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Slices of 5; records the size of every slice the database answers."""
    monkeypatch.setattr(results, "SLICE_SIZE", 5)
    sizes: list[int] = []
    sqlite_slice, first = RowReader.sqlite_slice, RowReader.first

    async def record_slice(self: RowReader, *args: Any) -> Any:
        found = await sqlite_slice(self, *args)
        if found is not None:
            sizes.append(len(found[2]))
        return found

    async def record_first(self: RowReader, statement: Any, **params: Any) -> Any:
        row = await first(self, statement, **params)
        for name in ("part", "body"):
            if row is not None and name in row._fields:
                sizes.append(len(getattr(row, name)))
        return row

    pread = os.pread

    def record_pread(fd: int, size: int, offset: int) -> bytes:
        data = pread(fd, size, offset)
        sizes.append(len(data))
        return data

    monkeypatch.setattr(RowReader, "sqlite_slice", record_slice)
    monkeypatch.setattr(RowReader, "first", record_first)
    monkeypatch.setattr(os, "pread", record_pread)
    return sizes


async def test_text_body_is_the_utf8_text_across_slices(
    store: Any, small_slices: list[int]
) -> None:
    document_id = await _completed(store, TEXT)

    body = await store.open_result(document_id)

    assert (body.size, await _read(body)) == (len(TEXT.encode()), TEXT.encode())


async def test_body_never_reads_more_than_a_slice(
    store: Any, small_slices: list[int]
) -> None:
    document_id = await _completed(store, TEXT)

    await _read(await store.open_result(document_id))

    assert (max(small_slices), sum(small_slices)) == (5, len(TEXT.encode()))


async def test_readers_of_one_large_result_share_one_copy(
    store: Any, small_slices: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """On PostgreSQL a large body is copied once to a file, then read there."""
    if store.reads.sqlite_file:
        pytest.skip("SQLite reads each slice in place, with no copy")
    copies: list[str] = []
    copy_pooled = RowReader.copy_pooled

    async def record_copy(self: RowReader, sql: str, *args: Any, output: Any) -> bool:
        copies.append(args[0])
        return await copy_pooled(self, sql, *args, output=output)

    monkeypatch.setattr(RowReader, "copy_pooled", record_copy)
    document_id = await _completed(store, TEXT)
    bodies = [await store.open_result(document_id) for _ in range(3)]

    read = await asyncio.gather(*(_read(body) for body in bodies))

    assert (read, copies) == ([TEXT.encode()] * 3, [document_id])


async def test_markdown_body_falls_back_to_text(
    store: Any, small_slices: list[int]
) -> None:
    with_markdown = await _completed(store, "plain", markdown="# 東京 heading")
    without = await _completed(store, TEXT)

    bodies = [
        await _read(await store.open_result(document_id, markdown=True))
        for document_id in (with_markdown, without)
    ]

    assert bodies == ["# 東京 heading".encode(), TEXT.encode()]


async def test_empty_text_is_an_empty_body(store: Any) -> None:
    document_id = await _completed(store, "")

    body = await store.open_result(document_id)

    assert (body.size, await _read(body)) == (0, b"")


async def test_document_without_result_has_no_body(store: Any) -> None:
    document_id = await queue_document(store)

    assert await store.open_result(document_id) is None


async def test_result_replaced_midway_ends_the_body(
    store: Any, small_slices: list[int]
) -> None:
    document_id = await _completed(store, TEXT)
    body = await store.open_result(document_id)
    await store.reprocess(document_id)
    await store.complete(await store.claim_next("w:1"), _payload(TEXT.upper()))

    with pytest.raises(ResultChanged):
        await _read(body)


async def test_result_deleted_midway_ends_the_body(
    store: Any, small_slices: list[int]
) -> None:
    document_id = await _completed(store, TEXT)
    body = await store.open_result(document_id)
    await store.delete(document_id)

    with pytest.raises(ResultChanged):
        await _read(body)
