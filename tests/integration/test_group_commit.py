"""Plain submissions share transactions, and each answer follows its commit."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import func, select

from docmill.db.models import Document
from docmill.queue.store import JobStore, NewDocument

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

    monkeypatch.setattr(store, "_announce", broken)

    outcomes = await asyncio.gather(
        *(store.submit(plain(n)) for n in range(5)), return_exceptions=True
    )

    assert all(isinstance(outcome, RuntimeError) for outcome in outcomes)
    assert await count_documents(store) == 0
