"""The webhook outbox's poll: an empty outbox is read without taking a write lock."""

from __future__ import annotations

import asyncio
import sqlite3
from typing import Any

import pytest
from sqlalchemy import text

from docmill.queue.outbox import Outbox
from docmill.queue.store import utcnow

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("through", ["engine", "row reader"])
async def test_empty_poll_does_not_wait_for_the_write_lock(
    store: Any, through: str
) -> None:
    # Every process polls every poll_seconds; a poll that queued for the write
    # lock would wait behind (and delay) claims and completions.
    reads = store.reads if through == "row reader" else None
    outbox = Outbox(store.engine, reads=reads)
    if store.engine.dialect.name == "sqlite":
        holder = sqlite3.connect(store.engine.url.database, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            due = await asyncio.wait_for(outbox.claim_due(utcnow()), 20)
        finally:
            holder.execute("ROLLBACK")
            holder.close()
    else:
        # EXCLUSIVE blocks SELECT ... FOR UPDATE but not a plain read.
        async with store.engine.connect() as holder:
            await holder.execute(
                text("LOCK TABLE webhook_deliveries IN EXCLUSIVE MODE")
            )
            due = await asyncio.wait_for(outbox.claim_due(utcnow()), 20)
            await holder.rollback()
    assert due == []
