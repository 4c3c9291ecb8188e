"""
Recovery and cancel against a start that commits while they run.

A start that commits between two statements of a reclaim or a cancel must
not end up with its attempt row left open while the document moves on: that
row then reads as a worker still holding a document another worker has since
taken (the "two workers held one document at once" of the fault test in
tests/acceptance/test_scale_out.py). On PostgreSQL each statement of a READ
COMMITTED transaction sees what committed before it began, so these
interleavings are real there; SQLite's single writer runs them one after the
other, where the same tests check the ordinary outcome.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from docmill.db.models import Attempt, Document
from docmill.exceptions import LeaseLost
from docmill.queue import store as store_module
from docmill.queue.store import JobStore, utcnow
from tests.integration.test_store import (
    _payload,
    queue_document,
    wait_for_a_lock_wait,
)

pytestmark = pytest.mark.anyio


async def dishonest_attempts(store: JobStore) -> list[tuple[Any, ...]]:
    """
    Attempts left open whose document is no longer held by their claim: no
    worker can ever close them, and they overlap whatever attempt follows.
    """
    async with store.engine.connect() as connection:
        rows = await connection.execute(
            select(Attempt.document_id, Attempt.claim_token, Document.status)
            .join(Document, Document.id == Attempt.document_id)
            .where(
                Attempt.finished_at.is_(None),
                (Document.claim_token.is_(None))
                | (Document.claim_token != Attempt.claim_token)
                | (Document.status != "processing"),
            )
        )
        return [tuple(row) for row in rows]


async def expire_lease_of(store: JobStore, document_id: str) -> None:
    async with store.engine.begin() as connection:
        await connection.execute(
            update(Document)
            .where(Document.id == document_id)
            .values(lease_expires_at=utcnow() - timedelta(seconds=1))
        )


async def test_start_committed_during_a_reclaim_keeps_its_attempt_honest(
    store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """
    A slow worker's start commits while a reclaim is under way, with a lease
    that ran out before it committed (its clock read long before: a stalled
    event loop, a commit's fsync under load). The reclaim must either leave
    that document alone or close its attempt; it used to requeue it with its
    attempt open.
    """
    hung = await queue_document(store, name="h")
    document_id = await queue_document(store, name="d")
    hung_claim = await store.claim_next("w:hung")
    assert hung_claim is not None and hung_claim.document_id == hung
    (slow_claim,) = await store.claim_batch("w:slow", 1)
    assert slow_claim.document_id == document_id
    await expire_lease_of(store, hung)
    real_utcnow = store_module.utcnow

    async def start_with_a_stale_clock() -> None:
        with monkeypatch.context() as patch:
            patch.setattr(
                store_module,
                "utcnow",
                lambda: real_utcnow() - 2 * store.lease - timedelta(seconds=1),
            )
            await store.start(slow_claim)

    if store.engine.dialect.name == "postgresql":
        # Hold the hung document's attempt row, so the reclaim stops after
        # its first statement (which locked the started documents it saw),
        # and commit the slow start right then.
        async with store.engine.connect() as blocker:
            transaction = await blocker.begin()
            await blocker.execute(
                update(Attempt)
                .where(Attempt.claim_token == hung_claim.token)
                .values(error_code=None)
            )
            reclaiming = asyncio.create_task(store.reclaim_expired())
            await wait_for_a_lock_wait(store)
            await start_with_a_stale_clock()
            await transaction.commit()
        await asyncio.wait_for(reclaiming, 10)
    else:
        # One writer: the start commits before the reclaim or after it.
        await start_with_a_stale_clock()
        await store.reclaim_expired()

    assert await dishonest_attempts(store) == []
    # Its lease has run out all the same: the next reclaim takes it, and
    # closes the attempt as abandoned; the slow worker's result is fenced.
    await store.reclaim_expired()
    with pytest.raises(LeaseLost):
        await store.complete(slow_claim, _payload("late"))
    assert await dishonest_attempts(store) == []
    attempts = await store.attempts(document_id)
    assert [(a.worker_id, a.outcome) for a in attempts] == [("w:slow", "abandoned")]
    row = await store.get(document_id)
    assert (row.status, row.claim_token) == ("pending", None)


async def test_cancel_during_a_start_closes_the_attempt(store: Any) -> None:
    """
    A cancel that meets a document held for a slot whose start is being
    written: it used to see no running attempt, then cancel the document
    once the start committed, and leave that attempt open.
    """
    document_id = await queue_document(store)
    (claim,) = await store.claim_batch("w:1", 1)

    if store.engine.dialect.name == "postgresql":
        async with store.engine.connect() as worker:
            transaction = await worker.begin()
            await store._start_many(worker, [claim])
            cancelling = asyncio.create_task(store.cancel(document_id))
            await wait_for_a_lock_wait(store)
            await transaction.commit()
        status = await asyncio.wait_for(cancelling, 10)
    else:
        await store.start(claim)
        status = await store.cancel(document_id)

    assert status == "cancelled"
    assert await dishonest_attempts(store) == []
    attempts = await store.attempts(document_id)
    assert [a.outcome for a in attempts] == ["cancelled"]
