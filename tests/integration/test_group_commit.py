"""Plain submissions share transactions, and each answer follows its commit."""

from __future__ import annotations

import asyncio
import contextlib
import os
from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy import func, select, text

from docmill.db.models import Document
from docmill.exceptions import OriginalMissing
from docmill.queue import store as store_module
from docmill.queue.store import JobStore, NewDocument
from docmill.storage import (
    DatabaseStorage,
    LocalStorage,
    describe_small,
    small_in_database,
)

pytestmark = pytest.mark.anyio


def plain(n: int) -> NewDocument:
    return NewDocument(
        source="text",
        sha256=f"{n:064x}",
        size_bytes=n,
        storage_key=f"{n:064x}",
        title=f"doc {n}",
        user_metadata={"n": n},
    )


def replace_sql(statement: Any, sql: str) -> Any:
    copy = object.__new__(type(statement))
    copy.__dict__.update(statement.__dict__, sql=sql)
    return copy


async def count_documents(store: JobStore) -> int:
    async with store.engine.connect() as connection:
        return int(
            (await connection.execute(select(func.count(Document.id)))).scalar_one()
        )


async def test_concurrent_submissions_are_all_stored_as_answered(store: Any) -> None:
    submitted = await asyncio.gather(*(store.submit(plain(n)) for n in range(25)))

    assert await count_documents(store) == 25
    for n, answer in enumerate(submitted):
        row, _ = await store.get_summary(answer.document_id)
        assert (answer.row.title, answer.row.status) == (f"doc {n}", "pending")
        assert answer.row.created_at == row.created_at
        assert answer.row.user_metadata == row.user_metadata == {"n": n}
        assert answer.row.started_at is None


async def test_failed_commit_fails_every_submission_in_it(
    store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(connection: Any) -> None:
        raise RuntimeError("commit refused")

    def insert_then_fail(transaction: Any, **kwargs: Any) -> None:
        inserted(transaction, **kwargs)
        raise RuntimeError("commit refused")

    def pooled_then_fail(dialect: Any, columns: tuple[str, ...]) -> Any:
        statement = pooled(dialect, columns)
        return replace_sql(statement, statement.sql + ", 1 / 0")

    # The last step of the transaction fails, on whichever path writes it
    # (PostgreSQL's one statement on the pool fails, then the engine's).
    inserted = store_module._insert_now
    pooled = store_module._pooled_insert
    monkeypatch.setattr(store_module, "_insert_now", insert_then_fail)
    monkeypatch.setattr(store_module, "_pooled_insert", pooled_then_fail)
    monkeypatch.setattr(store, "_announce", broken)

    outcomes = await asyncio.gather(
        *(store.submit(plain(n)) for n in range(5)), return_exceptions=True
    )

    assert all(isinstance(outcome, RuntimeError) for outcome in outcomes)
    assert await count_documents(store) == 0


@pytest.mark.parametrize("kind", ["database", "local"])
@pytest.mark.parametrize("idempotency_key", [None, "k-1"])
async def test_small_original_is_written_with_its_document(
    store: Any, tmp_path: Any, idempotency_key: str | None, kind: str
) -> None:
    storage: Any = (
        DatabaseStorage(store.engine, tmp_path / "scratch")
        if kind == "database"
        else LocalStorage(tmp_path / "originals", store.engine)
    )
    assert small_in_database(storage, 100)
    data = "Grüße aus dem Lager".encode()
    stored = describe_small(data, max_bytes=1000)
    news = [
        replace(
            plain(n),
            storage_key=stored.key,
            original_bytes=data,
            idempotency_key=idempotency_key and f"{idempotency_key}-{n}",
        )
        for n in range(3)
    ]

    await asyncio.gather(*(store.submit(new) for new in news))

    async with storage.local_copy(stored.key) as path:
        assert path.read_bytes() == data
    assert await store.storage_key_used(stored.key)
    await storage.delete(stored.key)
    with pytest.raises(OriginalMissing):
        async with storage.local_copy(stored.key):
            pass


async def test_a_large_group_is_stored_whole_and_numbered_in_order(
    store: Any,
) -> None:
    # More rows than one multi-row INSERT holds (SQLite): several statements.
    first = await store.submit(plain(1000))
    submitted = await asyncio.gather(*(store.submit(plain(n)) for n in range(120)))
    # Through the engine (an Idempotency-Key), numbered by the trigger on SQLite.
    last = await store.submit(replace(plain(2000), idempotency_key="k"))

    assert await count_documents(store) == 122
    for n, answer in enumerate(submitted):
        row, _ = await store.get_summary(answer.document_id)
        assert (row.title, row.user_metadata) == (f"doc {n}", {"n": n})
    if store.engine.dialect.name == "sqlite":
        async with store.engine.connect() as connection:
            numbers = dict(
                (await connection.execute(text("SELECT id, seq FROM documents"))).all()
            )
        ids = [first.document_id, *(a.document_id for a in submitted)]
        assert [numbers[i] for i in [*ids, last.document_id]] == list(range(1, 123))


def with_original(n: int, **changes: Any) -> NewDocument:
    data = f"text {n}".encode()
    stored = describe_small(data, 1 << 20)
    return replace(
        plain(n),
        sha256=stored.sha256,
        size_bytes=stored.size_bytes,
        storage_key=stored.key,
        original_bytes=data,
        **changes,
    )


# Every column of a new row and of its original, as PostgreSQL stores them.
STORED = text(
    "SELECT d.title, d.filename, d.source, d.user_metadata::text AS metadata, "
    "d.sha256, d.size_bytes, d.storage_key, d.status, d.priority, d.attempts, "
    "d.max_attempts, d.next_attempt_at = d.created_at AS due_at_once, "
    "d.updated_at = d.created_at AS untouched, d.lease_expires_at, d.worker_id, "
    "d.claim_token, d.progress::text AS progress, d.client_ref, d.owner, "
    "d.source_url, d.callback_url, d.duplicate_of, d.charset, "
    "b.size_bytes AS blob_size, "
    "b.chunk_count, c.seq, c.data "
    "FROM documents d LEFT JOIN blobs b ON b.key = d.storage_key "
    "LEFT JOIN blob_chunks c ON c.key = d.storage_key "
    "WHERE d.id = :id"
)


async def stored_rows(store: JobStore, ids: list[str]) -> list[Any]:
    async with store.engine.connect() as connection:
        return [tuple((await connection.execute(STORED, {"id": i})).one()) for i in ids]


def postgres_only(store: JobStore) -> None:
    if store.engine.dialect.name != "postgresql":
        pytest.skip("the one-statement group insert is PostgreSQL's")


def submissions(first: int) -> list[NewDocument]:
    return [
        with_original(first),
        with_original(first + 1, user_metadata=None, title=None, priority=3),
        replace(
            plain(first + 2),
            owner="k1",
            client_ref="ref",
            user_metadata={},
            charset="koi8-r",
        ),
        # Same bytes as the first: its original is stored once.
        replace(with_original(first), title="again"),
    ]


async def test_pooled_group_stores_what_the_engine_stores(
    store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    postgres_only(store)
    store.max_pending = 0  # the pooled statement serves no queue limit
    pooled = await asyncio.gather(*(store.submit(new) for new in submissions(0)))
    monkeypatch.setattr(type(store.reads), "pooled", property(lambda self: False))
    engine = await asyncio.gather(*(store.submit(new) for new in submissions(0)))

    assert await stored_rows(store, [s.document_id for s in pooled]) == (
        await stored_rows(store, [s.document_id for s in engine])
    )


async def test_group_goes_to_postgres_as_one_statement(
    store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    postgres_only(store)
    store.max_pending = 0  # the pooled statement serves no queue limit
    import asyncpg

    await store.get_summary(await store.create(plain(99)))  # the pool is open
    sent: list[str] = []
    execute = asyncpg.Pool.execute

    async def recording(self: Any, query: str, *args: Any, **kwargs: Any) -> Any:
        sent.append(query)
        return await execute(self, query, *args, **kwargs)

    monkeypatch.setattr(asyncpg.Pool, "execute", recording)
    await asyncio.gather(*(store.submit(new) for new in submissions(0)))

    assert 1 <= len(sent) <= 2  # the first submission alone, then the rest
    assert await count_documents(store) == 5


async def test_failed_pool_leaves_the_group_to_the_engine(
    store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    postgres_only(store)
    store.max_pending = 0  # the pooled statement serves no queue limit
    import asyncpg

    async def refused(self: Any, query: str, *args: Any, **kwargs: Any) -> Any:
        raise asyncpg.InterfaceError("pool closed")

    monkeypatch.setattr(asyncpg.Pool, "execute", refused)
    for n in range(3):
        await store.submit(with_original(n))

    assert (await count_documents(store), store.reads.pooled) == (3, False)


async def outcomes_of(store: JobStore, news: list[NewDocument]) -> list[str]:
    answers = await asyncio.gather(
        *(store.submit(new) for new in news), return_exceptions=True
    )
    return sorted(type(answer).__name__ for answer in answers)


async def test_max_pending_holds_for_concurrent_submissions(store: Any) -> None:
    store.max_pending = 5

    outcomes = await outcomes_of(store, [plain(n) for n in range(40)])

    assert outcomes == ["QueueFull"] * 35 + ["Submitted"] * 5
    assert await count_documents(store) == 5


async def test_max_pending_holds_across_processes(settings: Any, store: Any) -> None:
    """Two API processes' stores (engines of their own) share one limit."""
    from docmill.api.app import build_services

    other = build_services(settings).store
    store.max_pending = other.max_pending = 6
    try:
        answers = await asyncio.gather(
            outcomes_of(store, [plain(n) for n in range(20)]),
            outcomes_of(other, [plain(n) for n in range(20, 40)]),
        )
    finally:
        await other.engine.dispose()
        await other.reads.close()

    assert sum(outcome.count("Submitted") for outcome in answers) == 6
    assert await count_documents(store) == 6


async def test_max_pending_sends_a_postgres_group_through_the_engine(
    store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pooled statement counts in a snapshot taken before any lock."""
    postgres_only(store)
    import asyncpg

    async def refused(self: Any, query: str, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a limited group went to the pool")

    monkeypatch.setattr(asyncpg.Pool, "execute", refused)
    store.max_pending = 3

    outcomes = await outcomes_of(store, [plain(n) for n in range(5)])

    assert (outcomes, store.reads.pooled) == (
        ["QueueFull"] * 2 + ["Submitted"] * 3,
        True,
    )


async def test_a_limit_out_of_reach_keeps_the_postgres_pool(
    store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Far from the limit (the API's estimate says so) nothing is counted."""
    postgres_only(store)
    import asyncpg

    statements: list[str] = []
    execute = asyncpg.Pool.execute

    async def recording(self: Any, query: str, *args: Any, **kwargs: Any) -> Any:
        statements.append(query)
        return await execute(self, query, *args, **kwargs)

    monkeypatch.setattr(asyncpg.Pool, "execute", recording)
    store.max_pending = 100_000
    store.limit_is_near = lambda: False

    outcomes = await outcomes_of(store, [plain(n) for n in range(5)])

    assert outcomes == ["Submitted"] * 5
    assert statements and await count_documents(store) == 5


async def test_max_pending_refuses_a_keyed_submission(store: Any) -> None:
    store.max_pending = 1
    await store.submit(plain(1))

    with pytest.raises(store_module.QueueFull):
        await store.submit(replace(plain(2), idempotency_key="k", fingerprint="f"))

    assert await count_documents(store) == 1


async def test_a_closed_store_holds_no_database_file_open(store: Any) -> None:
    await asyncio.gather(*(store.submit(plain(n)) for n in range(5)))
    await store.get_summary((await store.submit(plain(99))).document_id)

    await store.engine.dispose()
    await store.close()

    # The SQLite writer's connection was left to the garbage collector and
    # stayed open while anything held the store (a test run reached 1,754
    # descriptors, and select() in later tests refused them).
    database = store.engine.url.database
    held = []
    if database:
        for fd in os.listdir("/proc/self/fd"):
            with contextlib.suppress(OSError):
                if os.readlink(f"/proc/self/fd/{fd}").startswith(database):
                    held.append(fd)
    assert held == []
