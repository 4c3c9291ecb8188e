"""
Listing a parser's documents (``JobStore.list(parser=...)``) and migration
0010, on SQLite and PostgreSQL.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select, text, update

from docmill.db.engine import create_engine, write_transaction
from docmill.db.migrate import upgrade
from docmill.db.models import Document
from docmill.parsing.store import ParserStore
from docmill.queue import store as store_module
from docmill.queue.store import JobStore, NewDocument
from tests.support import downgrade, insert_old_document

pytestmark = pytest.mark.anyio


async def new_document(store: JobStore, n: int, owner: str | None = None) -> str:
    return await store.create(
        NewDocument(
            source="text",
            sha256=f"{n:064x}",
            size_bytes=1,
            storage_key=f"k{n}",
            owner=owner,
        )
    )


async def submitted_with(store: JobStore, document_id: str, parser: str) -> None:
    async with write_transaction(store.engine) as connection:
        await connection.execute(
            update(Document).where(Document.id == document_id).values(parser=parser)
        )


async def parsed_by(store: JobStore, document_id: str, parser: str) -> None:
    await ParserStore(store.engine).save_fields(
        document_id,
        {
            "parser": parser,
            "parser_version": 1,
            "fields": {},
            "errors": {},
            "matches": None,
        },
    )


async def pages(store: JobStore, limit: int, **filters: Any) -> list[list[str]]:
    """Every page of the listing, each as its ids, following the cursor."""
    found: list[list[str]] = []
    before = None
    while True:
        rows = await store.list(limit=limit, before=before, **filters)
        if not rows:
            return found
        found.append([row.id for row in rows])
        before = (rows[-1].created_at, rows[-1].id)


async def test_a_parsers_documents_page_newest_first_from_both_halves(
    store: Any,
) -> None:
    """
    Submitted with the parser, parsed by it later, or both: each document
    once, newest first, across pages, whichever half it came from.
    """
    ids = [await new_document(store, n) for n in range(8)]
    for n in (1, 4, 7):
        await submitted_with(store, ids[n], "p")
    await submitted_with(store, ids[5], "q")
    for n in (0, 2, 4, 6):
        await parsed_by(store, ids[n], "p")
    await parsed_by(store, ids[3], "q")
    newest_first = [ids[n] for n in (7, 6, 4, 2, 1, 0)]

    assert await pages(store, limit=50, parser="p") == [newest_first]
    assert await pages(store, limit=2, parser="p") == [
        newest_first[0:2],
        newest_first[2:4],
        newest_first[4:6],
    ]
    assert await pages(store, limit=4, parser="q") == [[ids[5], ids[3]]]
    assert await pages(store, limit=4, parser="r") == []


async def test_a_parsers_listing_applies_the_other_filters_to_both_halves(
    store: Any,
) -> None:
    ids = [await new_document(store, n, owner="ab"[n % 2]) for n in range(6)]
    for n in (0, 1, 2):
        await submitted_with(store, ids[n], "p")
    for n in (3, 4, 5):
        await parsed_by(store, ids[n], "p")

    assert await pages(store, limit=1, parser="p", owner="a") == [
        [ids[4]],
        [ids[2]],
        [ids[0]],
    ]
    assert await pages(store, limit=5, parser="p", status="completed") == []


async def test_sqlite_reads_each_half_of_a_parsers_listing_from_its_index(
    store: Any,
) -> None:
    """
    No walk over every document and no sort of a parser's documents: each
    half is an index read in date order, from the cursor on, and only the
    two halves' pages are sorted together. With one condition over both
    halves SQLite walked the documents' date index and tested every row.
    """
    if store.engine.dialect.name != "sqlite":
        pytest.skip("SQLite's plan")
    ids = [await new_document(store, n) for n in range(2)]
    await submitted_with(store, ids[0], "p")
    await parsed_by(store, ids[1], "p")
    row = (await store.list(parser="p", limit=1))[0]
    page = store_module._by_parser(
        select(Document.__table__), "p", (row.created_at, row.id), 50
    )
    compiled = page.compile(dialect=store.engine.dialect)
    params = tuple(compiled.params[name] for name in compiled.positiontup or [])
    async with store.engine.connect() as connection:
        plan = [
            row[-1]
            for row in (
                await connection.exec_driver_sql(
                    f"EXPLAIN QUERY PLAN {compiled}", params
                )
            ).all()
        ]

    assert (
        "SEARCH documents USING COVERING INDEX ix_documents_parser_created "
        "(parser=? AND (created_at,id)<(?,?))"
    ) in plan
    assert (
        "SEARCH document_fields USING COVERING INDEX "
        "ix_document_fields_parser_created "
        "(parser=? AND (document_created_at,document_id)<(?,?))"
    ) in plan
    assert not [step for step in plan if step.startswith("SCAN documents")]
    assert plan.count("USE TEMP B-TREE FOR ORDER BY") == 1


async def test_migration_0010_gives_each_run_its_documents_date(
    database_url: str,
) -> None:
    """Runs stored before the upgrade are listed and exported in date order."""
    engine = create_engine(database_url)
    try:
        await upgrade(engine, "0009")
        store = JobStore(engine)
        ids = [await insert_old_document(engine, f"{n:064x}") for n in range(3)]
        async with write_transaction(engine) as connection:
            for document_id in reversed(ids):
                await connection.execute(
                    text(
                        "INSERT INTO document_fields (document_id, parser, "
                        "parser_version, fields, errors, matches, created_at) "
                        "SELECT id, 'p', 1, '{}', '{}', NULL, created_at "
                        "FROM documents WHERE id = :id"
                    ),
                    {"id": document_id},
                )
        await upgrade(engine)
        async with engine.connect() as connection:
            unmatched = (
                await connection.execute(
                    text(
                        "SELECT count(*) FROM document_fields JOIN documents "
                        "ON documents.id = document_fields.document_id "
                        "WHERE document_fields.document_created_at "
                        "IS NOT documents.created_at"
                        if engine.dialect.name == "sqlite"
                        else "SELECT count(*) FROM document_fields JOIN documents "
                        "ON documents.id = document_fields.document_id "
                        "WHERE document_fields.document_created_at "
                        "IS DISTINCT FROM documents.created_at"
                    )
                )
            ).scalar_one()
        listed = [row.id for row in await store.list(parser="p")]
        exported = [row.id async for row in ParserStore(engine).export("p", batch=2)]
        await downgrade(engine, "0009")
        await upgrade(engine)
        await store.close()
    finally:
        await engine.dispose()

    assert unmatched == 0
    assert listed == ids[::-1]
    assert exported == ids


async def test_migration_0010_drops_runs_whose_document_is_gone(
    database_url: str,
) -> None:
    """
    A run left behind by a document deleted with SQLite's foreign keys off
    (the sqlite3 shell's default) has no date to copy: it is dropped, as
    nothing could list or export it, instead of failing the upgrade.
    """
    if not database_url.startswith("sqlite"):
        pytest.skip("PostgreSQL always enforces the foreign key")
    engine = create_engine(database_url)
    try:
        await upgrade(engine, "0009")
        store = JobStore(engine)
        ids = [await insert_old_document(engine, f"{n:064x}") for n in range(2)]
        async with engine.connect() as connection:
            await connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
            await connection.execute(
                text(
                    "INSERT INTO document_fields (document_id, parser, "
                    "parser_version, fields, errors, matches, created_at) "
                    "SELECT id, 'p', 1, '{}', '{}', NULL, created_at FROM documents"
                )
            )
            await connection.execute(
                text("DELETE FROM documents WHERE id = :id"), {"id": ids[0]}
            )
            await connection.commit()
        await upgrade(engine)
        listed = [row.id for row in await store.list(parser="p")]
        async with engine.connect() as connection:
            runs = (
                (
                    await connection.execute(
                        text("SELECT document_id FROM document_fields")
                    )
                )
                .scalars()
                .all()
            )
        await store.close()
    finally:
        await engine.dispose()

    assert listed == [ids[1]]
    assert runs == [ids[1]]
