"""The status read path (``RowReader``): same rows as the engine, on both databases."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import text, update

from docmill.db.models import Document
from docmill.exceptions import DocumentNotFound
from docmill.queue.store import _SUMMARY, JobStore, NewDocument, utcnow

pytestmark = pytest.mark.anyio


async def queue_document(store: JobStore) -> str:
    return await store.create(
        NewDocument(
            source="text",
            sha256="a" * 64,
            size_bytes=3,
            storage_key="a" * 64,
            title="Grüße",
            user_metadata={"team": ["ledger", 3]},
        )
    )


async def test_summary_reads_like_the_engine(store: Any) -> None:
    document_id = await queue_document(store)
    async with store.engine.begin() as connection:
        await connection.execute(
            update(Document)
            .where(Document.id == document_id)
            .values(progress={"stage": "text", "done": 1}, started_at=utcnow())
        )
        through_engine = (
            await connection.execute(_SUMMARY, {"document_id": document_id})
        ).one()

    row, content = await store.get_summary(document_id)

    assert row._asdict() == through_engine._asdict()
    assert row.user_metadata == {"team": ["ledger", 3]}
    assert row.created_at.utcoffset() == timedelta(0)
    assert row.has_content is False and content is None
    if store.engine.dialect.name == "postgresql":
        # Read through the asyncpg pool, not the engine it falls back to.
        assert store.reads._pool is not None and store.reads._pool_failures == 0


async def test_summary_of_unknown_document_is_not_found(store: Any) -> None:
    with pytest.raises(DocumentNotFound):
        await store.get_summary("nope")


async def test_locked_sqlite_read_waits_in_the_engine(
    store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    if store.engine.dialect.name != "sqlite":
        pytest.skip("the direct read is SQLite's")
    document_id = await queue_document(store)

    def locked(*args: Any) -> Any:
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(store.reads, "_sqlite_first", locked)
    row, _ = await store.get_summary(document_id)

    assert row.id == document_id


async def test_postgres_read_survives_a_dropped_connection(store: Any) -> None:
    if store.engine.dialect.name != "postgresql":
        pytest.skip("the asyncpg pool is PostgreSQL's")
    document_id = await queue_document(store)
    await store.get_summary(document_id)
    async with store.engine.connect() as connection:
        await connection.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        )

    rows = [await store.get_summary(document_id) for _ in range(3)]

    assert all(row.id == document_id for row, _ in rows)
    assert store.reads._pool_failures == 0


async def test_postgres_pool_that_keeps_failing_is_given_up(
    store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    if store.engine.dialect.name != "postgresql":
        pytest.skip("the asyncpg pool is PostgreSQL's")
    document_id = await queue_document(store)
    calls = []

    async def refused(*args: Any) -> Any:
        calls.append(args)
        raise TypeError("connect() got an unexpected keyword argument")

    monkeypatch.setattr(store.reads, "_asyncpg_pool", refused)

    rows = [await store.get_summary(document_id) for _ in range(5)]

    assert all(row.id == document_id for row, _ in rows)
    assert len(calls) == 3


async def test_postgres_read_costs_one_round_trip(
    store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Returning a connection to the read pool sends nothing to the server."""
    if store.engine.dialect.name != "postgresql":
        pytest.skip("the asyncpg pool is PostgreSQL's")
    import asyncpg

    document_id = await queue_document(store)
    await store.get_summary(document_id)
    sent: list[str] = []
    execute = asyncpg.Connection.execute

    async def recording(self: Any, query: str, *args: Any, **kwargs: Any) -> Any:
        sent.append(query)
        return await execute(self, query, *args, **kwargs)

    monkeypatch.setattr(asyncpg.Connection, "execute", recording)
    for _ in range(3):
        await store.get_summary(document_id)

    assert sent == []


async def test_postgres_reads_of_one_turn_go_as_one_query(
    store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    if store.engine.dialect.name != "postgresql":
        pytest.skip("the asyncpg pool is PostgreSQL's")
    import asyncpg

    ids = [await queue_document(store) for _ in range(3)]
    await store.get_summary(ids[0])
    batches: list[Any] = []
    fetch = asyncpg.Pool.fetch

    async def recording(self: Any, query: str, *args: Any, **kwargs: Any) -> Any:
        batches.append(args)
        return await fetch(self, query, *args, **kwargs)

    monkeypatch.setattr(asyncpg.Pool, "fetch", recording)
    asked = [*ids, ids[0], "nope"]
    answers = await asyncio.gather(
        *(store.get_summary(document_id) for document_id in asked),
        return_exceptions=True,
    )

    assert [row.id for row, _ in answers[:4]] == asked[:4]
    assert isinstance(answers[4], DocumentNotFound)
    assert len(batches) == 1
    assert sorted(batches[0][0]) == sorted({*asked})
