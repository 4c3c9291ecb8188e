"""The documents table's queue indexes (migration 0009), on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text

from docmill.db.engine import create_engine
from docmill.db.migrate import upgrade
from docmill.queue import store as store_module
from docmill.queue.store import JobStore, NewDocument
from tests.integration.test_store import _payload
from tests.support import add_later_columns, downgrade

pytestmark = pytest.mark.anyio


async def queue(store: JobStore, name: str) -> str:
    return await store.create(
        NewDocument(
            source="text", sha256=name * 64, size_bytes=1, storage_key=name * 64
        )
    )


async def claim_index_entries(store: JobStore) -> int:
    """
    Entries of the claim index: on SQLite counted in its leaf pages; on
    PostgreSQL, where that needs an extension, the rows its predicate admits.
    """
    if store.engine.dialect.name == "sqlite":
        sql = (
            "SELECT sum(ncell) FROM dbstat "
            "WHERE name = 'ix_documents_claim' AND pagetype = 'leaf'"
        )
    else:
        sql = (
            "SELECT count(*) FROM documents WHERE CASE (SELECT "
            "pg_get_expr(indpred, indrelid) FROM pg_index "
            "WHERE indexrelid = 'ix_documents_claim'::regclass) "
            "WHEN '((status)::text = ''pending''::text)' THEN status = 'pending' "
            "ELSE true END"
        )
    async with store.engine.connect() as connection:
        return int((await connection.execute(text(sql))).scalar_one())


async def test_claim_index_holds_only_pending_documents(store: Any) -> None:
    """A started document leaves the claim index; a finished one never returns."""
    for name in "abc":
        await queue(store, name)
    claim = await store.claim_next("w:1")
    await store.complete(claim, _payload("done"))

    assert await claim_index_entries(store) == 2


async def test_sqlite_claim_walks_the_claim_index_in_queue_order(
    store: Any,
) -> None:
    """
    No sort of the pending documents: the index gives them in claim order.
    Without ``status`` as its first column SQLite chose the status listing
    index and sorted every pending row.
    """
    if store.engine.dialect.name != "sqlite":
        pytest.skip("SQLite's plan")
    due = store_module._DUE.compile(dialect=store.engine.dialect)
    async with store.engine.connect() as connection:
        plan = (
            await connection.exec_driver_sql(
                f"EXPLAIN QUERY PLAN {due}", ("2999-01-01 00:00:00.000000", 4, 0)
            )
        ).all()

    assert [row[-1] for row in plan] == [
        "SEARCH documents USING INDEX ix_documents_claim (status=?)"
    ]


async def test_migration_0009_downgrades_to_full_queue_indexes(
    database_url: str,
) -> None:
    engine = create_engine(database_url)
    try:
        await upgrade(engine)
        store = JobStore(engine)
        first = await queue(store, "a")
        await downgrade(engine, "0008")
        await add_later_columns(engine)
        second = await queue(store, "b")
        claims = [await store.claim_next("w:1") for _ in range(2)]
        await store.close()
    finally:
        await engine.dispose()

    assert [claim.document_id for claim in claims if claim] == [first, second]
