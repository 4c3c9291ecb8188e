"""Full-text search through the job store, on SQLite and PostgreSQL."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from docmill.api.app import build_services
from docmill.db.engine import create_engine, write_transaction
from docmill.db.migrate import upgrade
from docmill.queue import search
from docmill.queue.store import JobStore, NewDocument
from docmill.settings import Settings
from tests.conftest import reset_postgres
from tests.support import add_later_columns, downgrade, insert_old_document

pytestmark = pytest.mark.anyio


async def indexed(store: JobStore, body: str, owner: str | None = None) -> str:
    """Queue a document and complete it with ``body`` as its text."""
    document_id = await store.create(
        NewDocument(
            source="text",
            sha256=body[:1] * 64,
            size_bytes=len(body),
            storage_key=body[:1] * 64,
            owner=owner,
        )
    )
    claim = await store.claim_next("w:1")
    assert claim is not None and claim.document_id == document_id
    await store.complete(claim, _payload(body))
    return document_id


async def search_pages(
    store: JobStore, q: str, limit: int, owner: str | None = None
) -> list[list[str]]:
    """Every page of a search, following the cursor as the API does."""
    pages: list[list[str]] = []
    before = None
    while True:
        rows = await store.list(q=q, limit=limit, before=before, owner=owner)
        pages.append([row.id for row in rows])
        if len(rows) < limit:
            return pages
        before = (rows[-1].created_at, rows[-1].id)


async def test_search_lists_matches_newest_first(store: Any) -> None:
    ids = [await indexed(store, f"invoice number {n}") for n in range(5)]
    await indexed(store, "a letter")

    found = await store.list(q="invoice")

    assert [row.id for row in found] == ids[::-1]


async def test_search_cursor_walks_every_match_once(store: Any) -> None:
    ids = [await indexed(store, f"invoice {n}") for n in range(7)]
    await indexed(store, "a letter")

    pages = await search_pages(store, "invoice", limit=3)

    assert pages == [ids[6:3:-1], ids[3:0:-1], ids[0:1]]


@pytest.mark.parametrize(
    "few_matches",
    [pytest.param(10, id="from-the-index"), pytest.param(1, id="by-walking")],
)
async def test_search_finds_matches_older_than_the_newest_documents(
    store: Any, monkeypatch: pytest.MonkeyPatch, few_matches: int
) -> None:
    """PostgreSQL's roads past its first window (SQLite has one road)."""
    monkeypatch.setattr(search, "WINDOW_PER_ROW", 1)
    monkeypatch.setattr(search, "FEW_MATCHES", few_matches)
    ids = [await indexed(store, f"invoice {n}") for n in range(3)]
    for n in range(4):
        await indexed(store, f"letter {n}")

    pages = await search_pages(store, "invoice", limit=2)

    assert pages == [ids[2:0:-1], ids[0:1]]


async def test_search_sees_only_the_owners_documents(store: Any) -> None:
    mine = []
    for n in range(5):
        mine.append(await indexed(store, f"invoice {n}", owner="k1"))
        await indexed(store, f"invoice {n}", owner="k2")

    pages = await search_pages(store, "invoice", limit=2, owner="k1")

    assert [d for page in pages for d in page] == mine[::-1]


async def test_search_cursor_survives_deletion_of_its_document(store: Any) -> None:
    ids = [await indexed(store, f"invoice {n}") for n in range(5)]
    first = await store.list(q="invoice", limit=2)
    await store.delete(first[-1].id)

    rest = await store.list(q="invoice", before=(first[-1].created_at, first[-1].id))

    assert [row.id for row in rest] == ids[2::-1]


async def test_search_finds_a_reprocessed_document_by_its_new_text(
    store: Any,
) -> None:
    document_id = await indexed(store, "old words")
    await store.reprocess(document_id)
    claim = await store.claim_next("w:1")
    await store.complete(claim, _payload("new words"))

    old = await store.list(q="old")
    new = await store.list(q="new")

    assert ([row.id for row in old], [row.id for row in new]) == ([], [document_id])


async def test_deleted_document_leaves_the_search(store: Any) -> None:
    gone = await indexed(store, "invoice one")
    kept = await indexed(store, "invoice two")

    await store.delete(gone)

    assert [row.id for row in await store.list(q="invoice")] == [kept]


async def test_duplicate_submission_is_found_under_its_own_id(store: Any) -> None:
    original = await indexed(store, "invoice from acme")
    submitted = await store.submit(
        NewDocument(
            source="text",
            sha256="i" * 64,
            size_bytes=17,
            storage_key="i" * 64,
            dedupe=True,
        )
    )

    found = await store.list(q="acme")

    assert [row.id for row in found] == [submitted.document_id, original]


async def test_sqlite_index_drops_entries_by_the_text_it_indexed(
    store: Any,
) -> None:
    """
    On SQLite the index keeps no copy of the text (migration 0008): an entry
    is removed by tokenizing the stored text again, which must be the very
    text indexed, cut where indexing cut it, or tokens stay behind and
    FTS5's check against the stored texts fails.
    """
    if store.engine.dialect.name != "sqlite":
        pytest.skip("the FTS5 index is SQLite's")
    long = "é" * 10 + " alpha" * (search.INDEXED_CHARS // 6) + " omega beyond"
    kept = await indexed(store, "invoice kept")
    reprocessed, cut, deleted = [
        await indexed(store, body) for body in ("old words", long, "invoice gone")
    ]
    duplicate = await store.submit(
        NewDocument(
            source="text",
            sha256="o" * 64,
            size_bytes=9,
            storage_key="o" * 64,
            dedupe=True,
        )
    )
    await store.reprocess(reprocessed)
    claim = await store.claim_next("w:1")
    await store.complete(claim, _payload("new words"))
    await store.delete(deleted)
    await store.delete(cut)

    async with write_transaction(store.engine) as connection:
        await connection.execute(
            text(
                "INSERT INTO document_search (document_search, rank) "
                "VALUES ('integrity-check', 1)"
            )
        )
    found = [[row.id for row in await store.list(q=q)] for q in ("invoice", "old")]

    assert found == [[kept], [duplicate.document_id]]


async def test_sqlite_index_keeps_no_copy_of_the_text(store: Any) -> None:
    if store.engine.dialect.name != "sqlite":
        pytest.skip("the FTS5 index is SQLite's")
    async with store.engine.connect() as connection:
        tables = (
            await connection.execute(
                text(
                    "SELECT name FROM sqlite_master "
                    "WHERE name LIKE 'document_search_%' ORDER BY name"
                )
            )
        ).scalars()

        assert list(tables) == [
            "document_search_config",
            "document_search_data",
            "document_search_idx",
            "document_search_text",
        ]


async def test_migration_0006_keeps_existing_search_entries(
    database_url: str,
) -> None:
    """A database indexed before 0006 searches the same afterwards, in order."""
    engine = create_engine(database_url)
    try:
        await upgrade(engine, "0005")
        store = JobStore(engine)
        ids = [await indexed_before_0006(store, f"invoice {n}") for n in range(4)]
        await indexed_before_0006(store, "a letter")

        await upgrade(engine)
        later = await indexed(store, "invoice 4")
        pages = await search_pages(store, "invoice", limit=2)
        async with engine.connect() as connection:
            entries = (
                await connection.execute(text("SELECT count(*) FROM document_search"))
            ).scalar_one()
    finally:
        await engine.dispose()

    assert (pages, entries) == ([[later, ids[3]], ids[2:0:-1], ids[0:1]], 6)


async def test_migration_0006_downgrades_with_its_entries(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        await upgrade(engine)
        store = JobStore(engine)
        document_id = await indexed(store, "invoice 1")

        await downgrade(engine, "0005")
        async with engine.connect() as connection:
            entries = (
                await connection.execute(
                    text("SELECT document_id FROM document_search")
                )
            ).all()
    finally:
        await engine.dispose()

    assert [entry.document_id for entry in entries] == [document_id]


async def indexed_before_0006(store: JobStore, body: str) -> str:
    """A document with its text and search entry as the code of 0005 wrote them."""
    document_id = await insert_old_document(store.engine)
    vector = (
        ":body"
        if store.engine.dialect.name == "sqlite"
        else ("to_tsvector('simple', :body)")
    )
    async with store.engine.begin() as connection:
        await connection.execute(
            text(
                "INSERT INTO document_search (document_id, body) "
                f"VALUES (:id, {vector})"
            ),
            {"id": document_id, "body": body},
        )
        await connection.execute(
            text(
                "INSERT INTO document_contents (document_id, text) VALUES (:id, :body)"
            ),
            {"id": document_id, "body": body},
        )
        await connection.execute(
            text("UPDATE documents SET status = 'completed' WHERE id = :id"),
            {"id": document_id},
        )
    return document_id


def _payload(body: str) -> dict[str, Any]:
    return {
        "mime_type": "text/plain",
        "text": body,
        "markdown": None,
        "pages": None,
        "metadata": {},
        "children": [],
        "warnings": [],
        "word_count": len(body.split()),
        "char_count": len(body),
        "page_count": None,
        "processing_ms": 1.0,
    }


async def test_migration_0008_downgrades_to_an_index_with_its_text(
    database_url: str,
) -> None:
    engine = create_engine(database_url)
    try:
        await upgrade(engine)
        store = JobStore(engine)
        ids = [await indexed(store, f"invoice {n}") for n in range(3)]

        await downgrade(engine, "0007")
        await add_later_columns(engine)
        await store.delete(ids[1])
        found = [row.id for row in await store.list(q="invoice")]
    finally:
        await engine.dispose()

    assert found == [ids[2], ids[0]]


# Texts as a user's documents had them, by label, oldest first.
WORDS_AS_WRITTEN = {
    "invoice": "Invoice INV-2024-0042, due in March.",
    "reminder": "Reminder: INV-2024-0042 is unpaid.",
    "next invoice": "Invoice INV-2024-0043.",
    "mail": "Questions to bob@example.com please.",
    "other mail": "Or to bob@example.org.",
    "part": "Part ABC-123 ships today.",
    "cafe": "Le café est fermé.",
    "resume": "Mon résumé, deux pages.",
    "japanese": "東京都の天気。大阪は晴れ。",
    "greek": "Ελληνικά κείμενα",
}


async def test_a_long_text_of_chinese_words_is_stored_and_found(store: Any) -> None:
    """
    Its words came to more than PostgreSQL takes in an entry (1.38 MB), and
    the refused entry failed the whole result.
    """
    chance = random.Random(7)
    runs: list[str] = []
    written = 0
    while written < search.INDEXED_CHARS:
        length = chance.randint(6, 16)
        runs.append("".join(chr(chance.randint(0x4E00, 0x9FFF)) for _ in range(length)))
        written += length + 1
    body = "\uff0c".join(runs)  # a fullwidth comma
    assert len("".join(set(runs)).encode()) > search.POSTGRES_ENTRY_BYTES

    document_id = await indexed(store, body)
    first_in_term_order = min(search.text_words(body))

    assert (await store.get(document_id)).status == "completed"
    assert [row.id for row in await store.list(q=first_in_term_order)] == [document_id]


@pytest.fixture
async def both_stores(
    tmp_path: Path, postgres_url: str
) -> AsyncIterator[dict[str, JobStore]]:
    """A store on SQLite and one on PostgreSQL, each holding WORDS_AS_WRITTEN."""
    await reset_postgres(postgres_url)
    urls = {
        "sqlite": f"sqlite+aiosqlite:///{tmp_path / 'docmill.db'}",
        "postgres": postgres_url,
    }
    services = [
        build_services(Settings(data_dir=tmp_path / name, database_url=url))
        for name, url in urls.items()
    ]
    try:
        for service in services:
            await upgrade(service.engine)
        yield {
            name: service.store for name, service in zip(urls, services, strict=True)
        }
    finally:
        for service in services:
            await service.engine.dispose()
            await service.store.close()


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("q", "expected"),
    [
        pytest.param("INV-2024-0042", ["reminder", "invoice"], id="hyphenated-code"),
        pytest.param("bob@example.com", ["mail"], id="mail-address"),
        pytest.param("ABC 123", ["part"], id="code-in-two-words"),
        pytest.param("cafe", ["cafe"], id="accent-in-text"),
        pytest.param("resume", ["resume"], id="accents-in-text"),
        pytest.param("RÉSUMÉ", ["resume"], id="accents-in-query"),
        pytest.param("re\u0301sume\u0301", ["resume"], id="combining-accents-in-query"),
        pytest.param("大阪は晴れ", ["japanese"], id="japanese-between-stops"),
        pytest.param("東京都の天気 晴れ", [], id="japanese-inside-a-run"),
        pytest.param("ΕΛΛΗΝΙΚΆ", ["greek"], id="greek-capitals"),
    ],
)
async def test_both_databases_find_the_same_documents(
    both_stores: dict[str, JobStore], q: str, expected: list[str]
) -> None:
    """
    A word is a run of letters and digits, case folded, without diacritics,
    on PostgreSQL as on SQLite (whose FTS5 tokenizer sets the rule).
    """
    found = {}
    for name, store in both_stores.items():
        labels = {
            await indexed(store, body): label
            for label, body in WORDS_AS_WRITTEN.items()
        }
        found[name] = [labels[row.id] for row in await store.list(q=q)]

    assert found == {"sqlite": expected, "postgres": expected}


async def test_migration_0012_rebuilds_entries_by_the_shared_rule(
    database_url: str,
) -> None:
    """
    Entries PostgreSQL's parser made (before 0012) hold SQLite's words after
    the upgrade, and the parser's again after the downgrade.
    """
    engine = create_engine(database_url)
    try:
        await upgrade(engine, "0011")
        store = JobStore(engine)
        ids = [await indexed(store, body) for body in WORDS_AS_WRITTEN.values()]
        await make_entries_as_0011_did(engine)
        before = await entries(engine)

        await upgrade(engine)
        found = [[row.id for row in await store.list(q=q)] for q in ("cafe", "bob")]
        upgraded = await entries(engine)
        await downgrade(engine, "0011")
        downgraded = await entries(engine)
    finally:
        await engine.dispose()

    rebuilt = {
        document_id: sorted(search.text_words(body))
        for document_id, body in zip(ids, WORDS_AS_WRITTEN.values(), strict=True)
    }
    if engine.dialect.name == "sqlite":
        rebuilt = before  # SQLite's index keeps its words
    assert (found, upgraded, downgraded) == (
        [[ids[6]], [ids[4], ids[3]]],
        rebuilt,
        before,
    )


async def make_entries_as_0011_did(engine: Any) -> None:
    if engine.dialect.name == "sqlite":
        return  # SQLite's entries were made by the rule 0012 shares
    async with engine.begin() as connection:
        await connection.execute(
            text(
                "UPDATE document_search SET body = strip(to_tsvector('simple', "
                "document_contents.text)) FROM document_contents "
                "WHERE document_contents.document_id = document_search.document_id"
            )
        )


async def entries(engine: Any) -> dict[str, list[str]]:
    """Each PostgreSQL entry's words; on SQLite, the index's words."""
    async with engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            await connection.execute(
                text(
                    "CREATE VIRTUAL TABLE IF NOT EXISTS temp.search_words "
                    "USING fts5vocab(main, document_search, 'row')"
                )
            )
            words = await connection.execute(
                text("SELECT term FROM temp.search_words ORDER BY term")
            )
            return {"": list(words.scalars())}
        rows = await connection.execute(
            text(
                'SELECT document_id, array_agg(word ORDER BY word COLLATE "C") '
                "FROM document_search, unnest(tsvector_to_array(body)) AS word "
                "GROUP BY document_id"
            )
        )
        return {document_id: words for document_id, words in rows.all()}
