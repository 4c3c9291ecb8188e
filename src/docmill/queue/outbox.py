"""
The webhook outbox: events written with the status they announce.

When a document reaches a final status, the same transaction adds a row to
``webhook_deliveries`` for its ``callback_url`` and for the global webhook
URL. A restart between the status change and the send therefore never loses
an event; a crash between the send and its bookkeeping sends it again, so
delivery is at least once and receivers should treat the
``Docmill-Delivery`` id as an idempotency key.

The delivery loop claims due rows by pushing their ``next_attempt_at`` one
lease into the future in the claim statement itself, so two workers never
send the same try and a worker that dies mid-send only delays it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncEngine

from docmill.db.engine import RowReader, write_transaction
from docmill.db.models import Document, WebhookDelivery

PENDING = "pending"
DELIVERED = "delivered"
FAILED = "failed"

# How long a claimed delivery is held before another worker may try it.
CLAIM_SECONDS = 60.0

# Whether any delivery is due: what the delivery loop asks at each poll.
# Parameters by name only, as RowReader passes no others.
_ANY_DUE = (
    select(WebhookDelivery.number)
    .where(
        WebhookDelivery.status == bindparam("pending"),
        WebhookDelivery.next_attempt_at <= bindparam("now"),
    )
    # SQLite's LIMIT comes with an OFFSET: both named, or it gets its own.
    .limit(bindparam("one"))
    .offset(bindparam("zero"))
)


@dataclass(frozen=True)
class Delivery:
    document_id: str
    number: int
    event: str
    url: str
    payload: str
    attempts: int


def event_payload(row: Row[Any], event: str) -> dict[str, Any]:
    """The webhook body for a document row: status, reference, result summary."""
    result = None
    if row.status == "completed":
        result = {
            "mime_type": row.mime_type,
            "word_count": row.word_count,
            "char_count": row.char_count,
            "page_count": row.page_count,
            "metadata": row.doc_metadata or {},
        }
    error = None
    if row.error_code and row.status != "completed":
        error = {"code": row.error_code, "message": row.error_message or ""}
    return {
        "event": event,
        "document": {
            "id": row.id,
            "status": row.status,
            "client_ref": row.client_ref,
            "title": row.title,
            "filename": row.filename,
            "source": row.source,
            "sha256": row.sha256,
            "attempts": row.attempts,
            "finished_at": row.finished_at.isoformat() if row.finished_at else None,
            "error": error,
            "result": result,
        },
    }


async def enqueue_events(
    connection: Any,
    document_ids: Sequence[str],
    now: datetime,
    global_url: str | None,
) -> None:
    """
    Add the final-status event of each document to the outbox.

    Runs inside the caller's transaction, right after the status change.
    """
    if not document_ids:
        return
    rows = (
        await connection.execute(
            select(Document.__table__).where(Document.id.in_(list(document_ids)))
        )
    ).all()
    for row in rows:
        urls = [url for url in (row.callback_url, global_url) if url]
        if not urls:
            continue
        event = f"document.{row.status}"
        payload = json.dumps(event_payload(row, event), separators=(",", ":"))
        number = await _next_number(connection, row.id)
        for offset, url in enumerate(dict.fromkeys(urls)):
            await connection.execute(
                insert(WebhookDelivery).values(
                    document_id=row.id,
                    number=number + offset,
                    event=event,
                    url=url,
                    payload=payload,
                    status=PENDING,
                    attempts=0,
                    next_attempt_at=now,
                    created_at=now,
                )
            )


async def _next_number(connection: Any, document_id: str) -> int:
    highest = (
        await connection.execute(
            select(func.max(WebhookDelivery.number)).where(
                WebhookDelivery.document_id == document_id
            )
        )
    ).scalar()
    return int(highest or 0) + 1


class Outbox:
    """
    The delivery side of the outbox.

    Args:
        engine: the database engine.
        max_attempts: tries before a delivery is marked failed.
        retry_base_seconds: first retry delay; doubles with each try.
        reads: the store's reader of single rows, for the poll's probe;
            without it, the probe goes through the engine.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        max_attempts: int = 8,
        retry_base_seconds: float = 5.0,
        reads: RowReader | None = None,
    ) -> None:
        self.engine = engine
        self.reads = reads
        self.max_attempts = max_attempts
        self.retry_base_seconds = retry_base_seconds

    async def claim_due(self, now: datetime, limit: int = 10) -> list[Delivery]:
        """Take up to ``limit`` due deliveries, holding them for a while."""
        is_due = (
            WebhookDelivery.status == PENDING,
            WebhookDelivery.next_attempt_at <= now,
        )
        # The loop polls every poll_seconds in every process, and the outbox is
        # nearly always empty: a plain read (one index entry; on SQLite in WAL
        # it never waits) keeps the empty poll from taking the write lock that
        # claims and completions queue behind. Through the engine, that read
        # cost the event loop about as much as a status read did before
        # RowReader: ~3% of its time in a busy `serve`, twice a second.
        params = {"pending": PENDING, "now": now, "one": 1, "zero": 0}
        if self.reads is not None:
            if await self.reads.first(_ANY_DUE, **params) is None:
                return []
        else:
            async with self.engine.connect() as connection:
                if (await connection.execute(_ANY_DUE, params)).first() is None:
                    return []
        due = (
            select(WebhookDelivery.document_id, WebhookDelivery.number)
            .where(*is_due)
            .order_by(WebhookDelivery.next_attempt_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        claimed: list[Delivery] = []
        async with write_transaction(self.engine) as connection:
            for document_id, number in (await connection.execute(due)).all():
                row = (
                    await connection.execute(
                        update(WebhookDelivery)
                        .where(
                            WebhookDelivery.document_id == document_id,
                            WebhookDelivery.number == number,
                        )
                        .values(
                            attempts=WebhookDelivery.attempts + 1,
                            next_attempt_at=now + timedelta(seconds=CLAIM_SECONDS),
                        )
                        .returning(
                            WebhookDelivery.event,
                            WebhookDelivery.url,
                            WebhookDelivery.payload,
                            WebhookDelivery.attempts,
                        )
                    )
                ).one()
                claimed.append(
                    Delivery(
                        document_id,
                        number,
                        row.event,
                        row.url,
                        row.payload,
                        row.attempts,
                    )
                )
        return claimed

    async def record(
        self,
        delivery: Delivery,
        now: datetime,
        *,
        ok: bool,
        status_code: int | None,
        error: str | None,
        retryable: bool = True,
    ) -> str:
        """Record one try; returns the delivery's status afterwards."""
        values: dict[str, Any] = {
            "last_status_code": status_code,
            "last_error": error,
        }
        if ok:
            values |= {"status": DELIVERED, "delivered_at": now}
        elif retryable and delivery.attempts < self.max_attempts:
            delay = self.retry_base_seconds * 2 ** (delivery.attempts - 1)
            values |= {"next_attempt_at": now + timedelta(seconds=delay)}
        else:
            values |= {"status": FAILED}
        async with write_transaction(self.engine) as connection:
            await connection.execute(
                update(WebhookDelivery)
                .where(
                    WebhookDelivery.document_id == delivery.document_id,
                    WebhookDelivery.number == delivery.number,
                )
                .values(**values)
            )
        return str(values.get("status", PENDING))

    async def list(self, document_id: str) -> Sequence[Row[Any]]:
        async with self.engine.connect() as connection:
            return (
                await connection.execute(
                    select(WebhookDelivery.__table__)
                    .where(WebhookDelivery.document_id == document_id)
                    .order_by(WebhookDelivery.number)
                )
            ).all()

    async def redeliver(self, document_id: str, number: int, now: datetime) -> bool:
        """Queue a delivery again with a fresh set of tries; False if unknown."""
        async with write_transaction(self.engine) as connection:
            result = await connection.execute(
                update(WebhookDelivery)
                .where(
                    WebhookDelivery.document_id == document_id,
                    WebhookDelivery.number == number,
                )
                .values(
                    status=PENDING,
                    attempts=0,
                    next_attempt_at=now,
                    delivered_at=None,
                )
            )
        return bool(result.rowcount)
