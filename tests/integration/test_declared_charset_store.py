"""
The declared charset in the job store and migration 0011, on SQLite and
PostgreSQL.
"""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from docmill.db.engine import create_engine
from docmill.db.migrate import upgrade
from docmill.queue.store import JobStore, NewDocument
from tests.support import downgrade, insert_old_document

pytestmark = pytest.mark.anyio


def new_document(n: int, charset: str | None = None) -> NewDocument:
    return NewDocument(
        source="upload",
        sha256=f"{n:064x}",
        size_bytes=1,
        storage_key=f"k{n}",
        charset=charset,
    )


async def test_a_claim_carries_the_declared_charset(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        await upgrade(engine)
        store = JobStore(engine)
        declared = await store.create(new_document(1, "windows-1253"))
        claim = await store.claim_next("w1")
        await store.close()
    finally:
        await engine.dispose()

    assert claim is not None
    assert (claim.document_id, claim.charset) == (declared, "windows-1253")


async def count(engine: AsyncEngine, query: str) -> int:
    async with engine.connect() as connection:
        return int((await connection.execute(text(query))).scalar_one())


async def test_migration_0011_keeps_documents_both_ways(database_url: str) -> None:
    """
    Documents (and what hangs off them) survive the upgrade with no charset,
    and the downgrade with one: SQLite drops the column in place (Alembic's
    batch mode, which rebuilds the table, fails on the search view).
    """
    engine = create_engine(database_url)
    try:
        await upgrade(engine, "0010")
        store = JobStore(engine)
        before = await insert_old_document(engine, "0" * 64)
        async with engine.begin() as connection:
            await connection.execute(
                text(
                    "INSERT INTO document_contents (document_id, text) "
                    "VALUES (:id, 'kept')"
                ),
                {"id": before},
            )
        await upgrade(engine)
        upgraded = (await store.get(before)).charset
        after = await store.create(new_document(2, "koi8-r"))
        declared = (await store.get(after)).charset
        await downgrade(engine, "0010")
        kept = (
            await count(engine, "SELECT count(*) FROM documents"),
            await count(engine, "SELECT count(*) FROM document_contents"),
        )
        await upgrade(engine)
        again = (await store.get(after)).charset
        await store.close()
    finally:
        await engine.dispose()

    assert (upgraded, declared, again) == (None, "koi8-r", None)
    assert kept == (2, 1)
