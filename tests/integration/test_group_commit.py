"""Plain submissions share transactions, and each answer follows its commit."""

from __future__ import annotations

import asyncio
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

    # The last step of the transaction fails, on whichever path writes it.
    inserted = store_module._insert_now
    monkeypatch.setattr(store_module, "_insert_now", insert_then_fail)
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
