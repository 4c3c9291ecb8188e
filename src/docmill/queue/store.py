"""
The job store: every statement docmill sends to its database.

The queue is the ``documents`` table. A worker claims the best pending rows
(``FOR UPDATE SKIP LOCKED`` on PostgreSQL; SQLite serialises writers with
``BEGIN IMMEDIATE``), which hands each a fresh claim token and a lease; the
document stays pending until a slot starts it, which counts the attempt.
Every later write for that claim (start, lease renewal, progress, result,
failure) names the token in its ``WHERE`` clause, so a worker whose lease ran
out and whose document was taken over can no longer change it: its write
matches no row and it learns it has lost the lease.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import itertools
import logging
import sqlite3
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, TypeVar, cast

from sqlalchemy import (
    ARRAY,
    Column,
    Integer,
    MetaData,
    Select,
    String,
    Table,
    bindparam,
    delete,
    func,
    insert,
    literal,
    literal_column,
    or_,
    select,
    text,
    tuple_,
    union,
    update,
)
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from docmill.db.engine import (
    RowReader,
    SqliteTransaction,
    SqliteWriter,
    write_transaction,
)
from docmill.db.models import (
    Attempt,
    Blob,
    BlobChunk,
    Document,
    DocumentContent,
    DocumentFields,
    IdempotencyKey,
    JobStatus,
)
from docmill.exceptions import (
    DocumentNotFound,
    IdempotencyConflict,
    LeaseLost,
    QueueFull,
    RetryOverLimit,
)
from docmill.queue import outbox, results, search
from docmill.queue.ids import holder_dead, new_claim_token, new_document_id
from docmill.queue.retry import RetryPolicy
from docmill.storage import insert_small_blobs

logger = logging.getLogger(__name__)

PENDING = JobStatus.PENDING.value
PROCESSING = JobStatus.PROCESSING.value
COMPLETED = JobStatus.COMPLETED.value
FAILED = JobStatus.FAILED.value
CANCELLED = JobStatus.CANCELLED.value

# PostgreSQL channel on which new work is announced; idle workers LISTEN.
NOTIFY_CHANNEL = "docmill_jobs"


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Claim:
    """A worker's hold on one attempt at one document."""

    document_id: str
    token: str
    attempt: int
    max_attempts: int
    worker_id: str
    storage_key: str
    filename: str | None
    size_bytes: int
    source_url: str | None = None
    callback_url: str | None = None
    # The charset the upload declared (see ``extract.charsets``).
    charset: str | None = None
    # Whether the document holds an earlier result (it is being reprocessed).
    had_result: bool = False
    # The document's place in the queue, to keep claims waiting for a slot
    # in the order the queue would hand them out.
    priority: int = 0
    due: datetime | None = None


@dataclass(frozen=True)
class NewDocument:
    """
    A submission. A URL submission has no original yet: empty ``sha256`` and
    ``storage_key`` until the worker fetches it.
    """

    source: str
    sha256: str
    size_bytes: int
    storage_key: str
    title: str | None = None
    filename: str | None = None
    user_metadata: dict[str, Any] | None = None
    priority: int = 0
    client_ref: str | None = None
    owner: str | None = None
    source_url: str | None = None
    callback_url: str | None = None
    # The charset the upload's part declared, checked by
    # ``charsets.declared_codec`` first.
    charset: str | None = None
    # Reuse the result of a completed document with the same bytes.
    dedupe: bool = False
    # The caller's Idempotency-Key and a hash of what the request asked for.
    idempotency_key: str | None = None
    fingerprint: str = ""
    # A small original kept in the database (see storage.small_in_database),
    # written under ``storage_key`` in the document's own transaction.
    original_bytes: bytes | None = None


@dataclass(frozen=True)
class Submitted:
    document_id: str
    # True when an Idempotency-Key named a document made earlier.
    replayed: bool = False
    # The completed document whose result a dedupe submission reused.
    duplicate_of: str | None = None
    # The row as this submission wrote it, before any worker could claim it:
    # what the 202 answer describes.
    row: Any = None


@dataclass(frozen=True)
class Purged:
    """What ``JobStore.purge`` deleted."""

    documents: int
    # Storage keys that no remaining document names, for the caller to delete.
    unused_keys: list[str]


@dataclass(frozen=True)
class FailureOutcome:
    final: bool
    retry_at: datetime | None


Item = TypeVar("Item")
Answer = TypeVar("Answer")
# A row or a result waiting for its group's commit, with its caller's future.
_Submission = tuple[tuple[dict[str, Any], NewDocument], asyncio.Future[Any]]
# A payload of None is a start (see CompletionCommit).
_Completion = tuple[tuple[Claim, dict[str, Any] | None], asyncio.Future[str | None]]
# A worker's request to hold up to so many documents (see CompletionCommit).
_Wanted = tuple[tuple[str, int], asyncio.Future[Sequence[Claim]]]


class _Grouped(Generic[Item, Answer]):
    """
    Writes that arrive while a transaction runs go together in the next one.

    The first item starts a commit at once and those that arrive meanwhile
    wait for the next: nobody waits for a batch to fill. Each caller is
    answered only after the transaction holding its item has committed.
    """

    def __init__(self, store: JobStore) -> None:
        self.store = store
        self.waiting: list[tuple[Item, asyncio.Future[Answer]]] = []
        self.committer: asyncio.Task[None] | None = None

    async def _enqueue(self, item: Item) -> Answer:
        future: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self.waiting.append((item, future))
        self._commit_soon(future)
        return await future

    def _commit_soon(self, future: asyncio.Future[Any]) -> None:
        committer = self.committer
        if (
            committer is None
            or committer.done()
            or committer.get_loop() is not future.get_loop()
        ):
            self.committer = asyncio.create_task(self._commit_all())

    async def _commit_all(self) -> None:
        while self.waiting:
            batch, self.waiting = self.waiting, []
            await self._commit_batch(batch)

    async def _commit_batch(
        self, batch: list[tuple[Item, asyncio.Future[Answer]]]
    ) -> None:
        raise NotImplementedError


class GroupCommit(_Grouped[tuple[dict[str, Any], NewDocument], Any]):
    """
    Plain submissions, inserted many to a transaction.

    Each submission used to pay for a whole write transaction (on SQLite the
    write lock, BEGIN IMMEDIATE, the insert, COMMIT, each a hop to
    aiosqlite's thread; on PostgreSQL as many round trips and a NOTIFY) to
    write one small row. Now one executemany and one NOTIFY serve all that
    arrived while the previous commit ran, so a 202 still means the row is
    durable; if the transaction fails, every caller in it gets the error.
    """

    async def add(self, values: dict[str, Any], new: NewDocument) -> Any:
        """Insert ``values`` as a documents row; the row as written."""
        return await self._enqueue((values, new))

    async def _commit_batch(
        self,
        batch: list[tuple[tuple[dict[str, Any], NewDocument], asyncio.Future[Any]]],
    ) -> None:
        # Far from the limit the API's estimate has already admitted these
        # (PendingGauge); counting in the transaction as well cost a walk of
        # the pending index per group, and on PostgreSQL the pooled insert.
        limit = self.store.max_pending if self.store.limit_is_near() else 0
        rows = [values for (values, _), _ in batch]
        writer = self.store._writer
        reads = self.store.reads
        try:
            if writer is not None:
                admitted = await writer.run(
                    functools.partial(
                        _insert_now,
                        rows=rows,
                        originals=_originals(batch, len(rows)),
                        max_pending=limit,
                    )
                )
            else:
                # A limit is counted under a lock before the insert, which
                # the one pooled statement cannot do (its snapshot is taken
                # before any lock it would wait for): near the limit, the
                # group goes through the engine. A transaction on the pool
                # (the lock, the count, then this statement) would keep the
                # pool's saving there too.
                pooled = None if limit else _pooled_insert_for(self.store, rows)
                if pooled is not None and await reads.execute_pooled(
                    pooled.sql,
                    *pooled.arguments(rows, _originals(batch, len(rows)), utcnow()),
                ):
                    admitted = len(rows)
                else:
                    async with write_transaction(self.store.engine) as connection:
                        admitted = len(rows)
                        if limit:
                            admitted = min(admitted, await _room(connection, limit))
                        originals = _originals(batch, admitted)
                        if originals:
                            await insert_small_blobs(connection, originals)
                        if admitted:
                            await connection.execute(insert(Document), rows[:admitted])
                            await self.store._announce(connection)
                    if pooled is not None:
                        # The pool failed where the engine did not.
                        reads.engine_served()
        except BaseException as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        for n, ((values, _), future) in enumerate(batch):
            if future.done():
                continue
            if n < admitted:
                future.set_result(_inserted_row(values))
            else:
                future.set_exception(QueueFull(limit))


def _originals(
    batch: list[tuple[tuple[dict[str, Any], NewDocument], asyncio.Future[Any]]],
    admitted: int,
) -> dict[str, bytes]:
    """The small originals to write with the first ``admitted`` rows."""
    return {
        new.storage_key: new.original_bytes
        for (_, new), _ in batch[:admitted]
        if new.original_bytes is not None
    }


def _always() -> bool:
    return True


async def _room(connection: Any, limit: int) -> int:
    """
    How many more documents the queue takes, counted in the transaction
    that inserts them.

    SQLite's write lock (BEGIN IMMEDIATE) already keeps every other writer,
    in this process or another, out until the commit. PostgreSQL's
    transactions run side by side, so each submitting transaction first
    takes one advisory lock, held to its commit: two API processes cannot
    both count the same last free place.
    """
    if connection.dialect.name == "postgresql":
        await connection.execute(_PENDING_LOCK)
    pending = (
        await connection.execute(_PENDING_COUNT_UP_TO, {"up_to": limit})
    ).scalar_one()
    return max(0, limit - int(pending))


class CompletionCommit(_Grouped[tuple[Claim, dict[str, Any] | None], str | None]):
    """
    Results of several slots, and on SQLite their starts, in one transaction.

    Each result used to take a write transaction of its own: on SQLite the
    in-process write lock (queued behind uploads), BEGIN IMMEDIATE and
    COMMIT, each a hop to aiosqlite's thread. Each result is fenced by its
    own claim token: a lost one is left out and its caller gets LeaseLost,
    the others are written. Should a transaction of several fail, each
    result is tried again alone, so one bad result does not take the others
    with it.

    On SQLite the common result (no earlier result to replace, no webhook
    to queue) is written by ``SqliteWriter`` in one hop to its thread, and
    the starts of documents (an item without a payload) join the same
    transaction: a slot that finishes one document starts its next at once,
    so the previous result and the next start were two transactions a
    document, one after the other on the one writer. Each start is fenced
    by its own token as before; a lost one is left out and its caller gets
    LeaseLost.

    Claims (holding the next documents for a worker's slots) join the group
    too on SQLite: with every commit an fsync, a claim of its own queued on
    the one writer behind the results, and a slot could find no document
    waiting when its child finished one.
    """

    def __init__(self, store: JobStore) -> None:
        super().__init__(store)
        self.wanted: list[_Wanted] = []

    async def add(self, claim: Claim, payload: dict[str, Any]) -> str | None:
        return await self._enqueue((claim, payload))

    async def start(self, claim: Claim) -> str | None:
        return await self._enqueue((claim, None))

    async def claim(self, worker_id: str, limit: int) -> Sequence[Claim]:
        """Hold up to ``limit`` due documents, in the next transaction."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Sequence[Claim]] = loop.create_future()
        self.wanted.append(((worker_id, limit), future))
        self._commit_soon(future)
        return await future

    async def _commit_all(self) -> None:
        while self.waiting or self.wanted:
            batch, self.waiting = self.waiting, []
            wanted, self.wanted = self.wanted, []
            await self._commit_group(batch, wanted)

    async def _commit_group(
        self, batch: list[_Completion], wanted: list[_Wanted]
    ) -> None:
        if len(batch) + len(wanted) > 1 and await self._commit(
            batch, wanted, answer_errors=False
        ):
            return
        for one in batch:
            await self._commit([one], [], answer_errors=True)
        for request in wanted:
            await self._commit([], [request], answer_errors=True)

    async def _commit(
        self, batch: list[_Completion], wanted: list[_Wanted], *, answer_errors: bool
    ) -> bool:
        """Write ``batch`` and make ``wanted``'s claims in one transaction."""
        futures: list[asyncio.Future[Any]] = [
            *(future for _, future in batch),
            *(future for _, future in wanted),
        ]
        try:
            outcomes, claimed = await self.store._write_results(
                [item for item, _ in batch], [request for request, _ in wanted]
            )
        except BaseException as exc:
            if answer_errors or not isinstance(exc, Exception):
                for future in futures:
                    if not future.done():
                        future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return False
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            if future.done():
                continue  # its caller stopped waiting
            if isinstance(outcome, LeaseLost):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)
        for (_, claims_future), claims in zip(wanted, claimed, strict=True):
            # A claimer that stopped waiting gets its claims back by their
            # lease: recovery returns an unstarted hold uncounted.
            if not claims_future.done():
                claims_future.set_result(claims)
        return True


class JobStore:
    """
    Documents and their jobs, in one database.

    Args:
        engine: the async engine (SQLite or PostgreSQL).
        retry: how failed attempts are retried.
        lease_seconds: how long a claim holds without renewal.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        retry: RetryPolicy | None = None,
        lease_seconds: float = 30.0,
        webhook_url: str | None = None,
        max_pending: int = 0,
    ) -> None:
        self.engine = engine
        # Checked inside each inserting transaction while ``limit_is_near``
        # says so (always, unless the API's gauge knows better); 0 is no
        # limit.
        self.max_pending = max_pending
        self.limit_is_near: Callable[[], bool] = _always
        self.retry = retry or RetryPolicy()
        self.lease = timedelta(seconds=lease_seconds)
        self.webhook_url = webhook_url
        self._enqueue_listeners: list[Callable[[], None]] = []
        self.reads = RowReader(engine)
        # The worker's and the submissions' hot writes, one thread hop each.
        self._writer = SqliteWriter(engine) if SqliteWriter.usable(engine) else None
        self._inserts = GroupCommit(self)
        self._completions = CompletionCommit(self)

    async def close(self) -> None:
        """Close the connections this store opened beside the engine's pool."""
        await self.reads.close()
        if self._writer is not None:
            await asyncio.to_thread(self._writer.close)

    def on_enqueue(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` after each document is queued by this process."""
        self._enqueue_listeners.append(listener)

    # -- documents ---------------------------------------------------------

    async def create(self, new: NewDocument) -> str:
        return (await self.submit(new)).document_id

    async def submit(self, new: NewDocument) -> Submitted:
        """
        Queue a document, honouring its idempotency key and dedupe request.

        Raises:
            IdempotencyConflict: the key was used before for another request.
        """
        try:
            submitted = await self._submit_once(new)
        except IntegrityError:
            # Two requests with one new Idempotency-Key raced on PostgreSQL
            # and the other committed first: answer with its document.
            if new.idempotency_key is None:
                raise
            submitted = await self._submit_once(new)
        if not submitted.replayed and submitted.duplicate_of is None:
            logger.info(
                "document %s queued",
                submitted.document_id,
                extra={
                    "action": "document_queued",
                    "document_id": submitted.document_id,
                },
            )
            for listener in self._enqueue_listeners:
                listener()
        return submitted

    async def _submit_once(self, new: NewDocument) -> Submitted:
        document_id = new_document_id()
        now = utcnow()
        values = self._new_row(new, document_id, now)
        if new.idempotency_key is None and not (new.dedupe and new.sha256):
            # Nothing to look up first: the row joins the group commit.
            row = await self._inserts.add(values, new)
            return Submitted(document_id, row=row)
        async with write_transaction(self.engine) as connection:
            if new.original_bytes is not None:
                await insert_small_blobs(
                    connection, {new.storage_key: new.original_bytes}
                )
            if new.idempotency_key is not None:
                earlier = await self._idempotent_document(connection, new)
                if earlier is not None:
                    return Submitted(earlier, replayed=True)
            original = None
            if new.dedupe and new.sha256:
                original = await self._completed_twin(connection, new)
            # A reused result is final at once: only a pending one counts.
            if (
                original is None
                and self.max_pending
                and not await _room(connection, self.max_pending)
            ):
                raise QueueFull(self.max_pending)
            if original is not None:
                values |= _result_copy(original, now)
            row = (
                await connection.execute(
                    insert(Document).values(**values).returning(Document.__table__)
                )
            ).one()
            if original is not None:
                await self._copy_content(connection, original.id, document_id)
                await outbox.enqueue_events(
                    connection, [document_id], now, self.webhook_url
                )
            if new.idempotency_key is not None:
                await connection.execute(
                    insert(IdempotencyKey).values(
                        owner=new.owner or "",
                        key=new.idempotency_key,
                        document_id=document_id,
                        fingerprint=new.fingerprint,
                        created_at=now,
                    )
                )
            if original is None:
                await self._announce(connection)
        return Submitted(
            document_id,
            duplicate_of=original.id if original is not None else None,
            row=row,
        )

    def _new_row(
        self, new: NewDocument, document_id: str, now: datetime
    ) -> dict[str, Any]:
        return {
            "id": document_id,
            "title": new.title,
            "filename": new.filename,
            "source": new.source,
            "user_metadata": new.user_metadata,
            "sha256": new.sha256,
            "size_bytes": new.size_bytes,
            "storage_key": new.storage_key,
            "status": PENDING,
            "priority": new.priority,
            "attempts": 0,
            "max_attempts": self.retry.max_attempts,
            "next_attempt_at": now,
            "created_at": now,
            "updated_at": now,
            "client_ref": new.client_ref,
            "owner": new.owner,
            "source_url": new.source_url,
            "callback_url": new.callback_url,
            "charset": new.charset,
        }

    async def would_queue(self, new: NewDocument) -> bool:
        """
        Whether submitting ``new`` now would queue a document: not when its
        Idempotency-Key was used before (a replay, or a conflict answered
        409), nor when ``dedupe`` finds a completed document with its bytes.

        A read outside the submitting transaction, for a caller deciding
        whether a place is needed; ``submit`` decides again as it writes.
        """
        async with self.engine.connect() as connection:
            if new.idempotency_key is not None:
                try:
                    if await self._idempotent_document(connection, new):
                        return False
                except IdempotencyConflict:
                    return False
            if new.dedupe and new.sha256:
                return await self._completed_twin(connection, new) is None
        return True

    async def _idempotent_document(
        self, connection: Any, new: NewDocument
    ) -> str | None:
        assert new.idempotency_key is not None
        row = (
            await connection.execute(
                select(IdempotencyKey.document_id, IdempotencyKey.fingerprint).where(
                    IdempotencyKey.owner == (new.owner or ""),
                    IdempotencyKey.key == new.idempotency_key,
                )
            )
        ).first()
        if row is None:
            return None
        if row.fingerprint != new.fingerprint:
            raise IdempotencyConflict(new.idempotency_key, row.document_id)
        return str(row.document_id)

    async def _completed_twin(
        self, connection: Any, new: NewDocument
    ) -> Row[Any] | None:
        query = (
            select(Document.__table__)
            .where(
                Document.sha256 == new.sha256,
                Document.status == COMPLETED,
                # The same bytes read in another charset are another text.
                Document.charset.is_not_distinct_from(new.charset),
            )
            .order_by(Document.finished_at.desc())
            .limit(1)
        )
        if new.owner is not None:
            query = query.where(Document.owner == new.owner)
        row: Row[Any] | None = (await connection.execute(query)).first()
        return row

    async def _copy_content(self, connection: Any, source: str, target: str) -> None:
        columns = [
            DocumentContent.text,
            DocumentContent.markdown,
            DocumentContent.pages,
            DocumentContent.children,
            DocumentContent.warnings,
        ]
        await connection.execute(
            insert(DocumentContent).from_select(
                ["document_id", *(c.key for c in columns)],
                select(literal(target), *columns).where(
                    DocumentContent.document_id == source
                ),
            )
        )
        await search.copy_index(connection, source, target)

    async def storage_key_used(self, key: str) -> bool:
        async with self.engine.connect() as connection:
            used = (await connection.execute(_documents_using(key))).scalar_one()
        return bool(used)

    async def count_pending(self, up_to: int | None = None) -> int:
        """
        Documents waiting, counted up to ``up_to`` at most.

        The bound keeps back-pressure checks cheap on every submission: the
        count stops at the limit instead of walking a million pending rows.
        """
        statement, params = (
            (_PENDING_COUNT, {})
            if up_to is None
            else (_PENDING_COUNT_UP_TO, {"up_to": up_to})
        )
        async with self.engine.connect() as connection:
            count = (await connection.execute(statement, params)).scalar_one()
        return int(count)

    async def reprocess(self, document_id: str) -> str | None:
        """
        Queue a final document again with a fresh set of attempts.

        Returns None when it was queued, or else the unchanged status of a
        document that is still pending or processing.

        Raises:
            QueueFull: the document is final, but ``max_pending`` documents
                are waiting: it is new work like a submission, and waits
                like one.
        """
        now = utcnow()
        async with write_transaction(self.engine) as connection:
            if (
                self.max_pending
                and self.limit_is_near()
                and not await _room(connection, self.max_pending)
            ):
                status = (
                    await connection.execute(
                        select(Document.status).where(Document.id == document_id)
                    )
                ).scalar_one_or_none()
                if status in (COMPLETED, FAILED, CANCELLED):
                    raise QueueFull(self.max_pending)
            result = await connection.execute(
                update(Document)
                .where(
                    Document.id == document_id,
                    Document.status.in_([COMPLETED, FAILED, CANCELLED]),
                )
                .values(**_fresh_start(now))
            )
            if result.rowcount:
                await self._announce(connection)
        if not result.rowcount:
            return str((await self.get(document_id)).status)
        logger.info(
            "document %s queued for reprocessing",
            document_id,
            extra={"action": "document_requeued", "document_id": document_id},
        )
        for listener in self._enqueue_listeners:
            listener()
        return None

    async def attach_original(
        self,
        claim: Claim,
        storage_key: str,
        sha256: str,
        size_bytes: int,
        filename: str | None,
    ) -> None:
        """
        Record the original a worker fetched for a URL submission.

        Raises:
            LeaseLost: the claim is no longer the document's; nothing was written.
        """
        values: dict[str, Any] = {
            "storage_key": storage_key,
            "sha256": sha256,
            "size_bytes": size_bytes,
            "updated_at": utcnow(),
        }
        if filename:
            values["filename"] = func.coalesce(Document.filename, filename)
        async with write_transaction(self.engine) as connection:
            result = await connection.execute(self._fenced(claim).values(**values))
            if result.rowcount != 1:
                raise LeaseLost(claim.document_id)

    async def get(self, document_id: str) -> Row[Any]:
        async with self.engine.connect() as connection:
            row = (
                await connection.execute(
                    select(Document.__table__).where(Document.id == document_id)
                )
            ).first()
        if row is None:
            raise DocumentNotFound(document_id)
        return row

    async def get_summary(self, document_id: str) -> tuple[Any, Any | None]:
        """
        The document and the small parts of its content, in one query.

        Status reads need pages, children and warnings, never the full text
        or Markdown, which can be megabytes; those stay on disk.
        """
        row = await self.reads.first_by_key(
            _SUMMARY, _SUMMARIES, "id", document_id=document_id
        )
        if row is None:
            raise DocumentNotFound(document_id)
        return row, (row if row.has_content else None)

    async def get_statuses(self, document_ids: Sequence[str]) -> dict[str, Any]:
        """
        The status columns of each document found (those an event shows).

        Read together: on PostgreSQL they go as one query (see
        ``RowReader.first_by_key``); on SQLite each is a primary-key read
        in the event loop's thread.
        """
        rows = await asyncio.gather(
            *(
                self.reads.first_by_key(
                    _STATUS, _STATUSES, "id", document_id=document_id
                )
                for document_id in document_ids
            )
        )
        return {row.id: row for row in rows if row is not None}

    async def open_result(
        self, document_id: str, *, markdown: bool = False
    ) -> results.ResultBody | None:
        """
        The UTF-8 body of the document's text (or of its Markdown, its text
        where it has none), read a slice at a time; None without a result.
        """
        return await results.open_result(self.reads, document_id, markdown)

    async def get_content(self, document_id: str) -> Row[Any] | None:
        async with self.engine.connect() as connection:
            return (
                await connection.execute(
                    select(DocumentContent.__table__).where(
                        DocumentContent.document_id == document_id
                    )
                )
            ).first()

    async def list(
        self,
        *,
        status: str | None = None,
        limit: int = 50,
        before: tuple[datetime, str] | None = None,
        mime_type: str | None = None,
        created_after: datetime | None = None,
        client_ref: str | None = None,
        q: str | None = None,
        owner: str | None = None,
        parser: str | None = None,
    ) -> Sequence[Row[Any]]:
        """
        Newest first; ``before`` is the (created_at, id) of the last row seen.

        Args:
            parser: only documents submitted with this parser or parsed by
                it since.
            q: words that must all occur in the extracted text. On SQLite the
                matches come in the order documents were queued, which can
                differ from created_at by the milliseconds two processes'
                submissions raced for the write lock.
            owner: only this API key's documents (None: everyone's).
        """
        query = select(Document.__table__)
        if status is not None:
            query = query.where(Document.status == status)
        if mime_type is not None:
            query = query.where(Document.mime_type == mime_type)
        if created_after is not None:
            query = query.where(Document.created_at > created_after)
        if client_ref is not None:
            query = query.where(Document.client_ref == client_ref)
        if owner is not None:
            query = query.where(Document.owner == owner)
        if parser is not None and q is None:
            page = _by_parser(query, parser, before, limit)
            async with self.engine.connect() as connection:
                rows: Sequence[Row[Any]] = (await connection.execute(page)).all()
            return rows
        if parser is not None:
            # A search drives its own walk (in its index's order), testing
            # each match; the parser is one more test.
            parsed = select(DocumentFields.document_id).where(
                DocumentFields.parser == parser
            )
            query = query.where(or_(Document.parser == parser, Document.id.in_(parsed)))
        async with self.engine.connect() as connection:
            if q is not None:
                return await search.newest_matches(connection, query, q, before, limit)
            if before is not None:
                query = query.where(search.older_than(before))
            query = query.order_by(Document.created_at.desc(), Document.id.desc())
            return (await connection.execute(query.limit(limit))).all()

    async def delete(self, document_id: str) -> str:
        """Delete the document; return its storage key if nothing else uses it."""
        async with write_transaction(self.engine) as connection:
            key = (
                await connection.execute(
                    delete(Document)
                    .where(Document.id == document_id)
                    .returning(Document.storage_key)
                )
            ).scalar()
            if key is None:
                raise DocumentNotFound(document_id)
            await search.unindex(connection, [document_id])
            if not key:
                return ""  # a URL submission whose original was never fetched
            still_used = (await connection.execute(_documents_using(key))).scalar_one()
        return "" if still_used else key

    async def attempts(self, document_id: str) -> Sequence[Row[Any]]:
        async with self.engine.connect() as connection:
            return (
                await connection.execute(
                    select(Attempt.__table__)
                    .where(Attempt.document_id == document_id)
                    .order_by(Attempt.id)
                )
            ).all()

    async def count_by_status(self) -> dict[str, int]:
        async with self.engine.connect() as connection:
            rows = await connection.execute(
                select(Document.status, func.count()).group_by(Document.status)
            )
            counts = {status.value: 0 for status in JobStatus}
            counts.update({status: count for status, count in rows})
        return counts

    # -- claiming ----------------------------------------------------------

    async def claim_next(self, worker_id: str) -> Claim | None:
        """
        Take the most urgent due document and start it, in one transaction;
        None if there is none.
        """
        if self._writer is not None:
            claims = await self._writer.run(
                functools.partial(self._claim_now, worker_id=worker_id, start=True)
            )
            return claims[0] if claims else None
        async with write_transaction(self.engine) as connection:
            claims = await self._claim(connection, worker_id, 1)
            if not claims:
                return None
            await self._start_many(connection, claims)
        return claims[0]

    async def claim_batch(self, worker_id: str, limit: int) -> Sequence[Claim]:
        """
        Hold up to ``limit`` due documents for this worker's slots, most
        urgent first, in one transaction; each gets its own claim token and
        lease, but none is started (see ``start``).

        A held document stays ``pending`` to everyone else: no attempt is
        counted and none recorded until a slot starts reading it, so a
        worker that dies while it waits for a slot is not blamed for it, and
        recovery gives it back as it was. The rows are read and then updated
        under the same lock (SQLite's write lock; PostgreSQL's row locks,
        skipping rows another worker holds), so none can change in between.
        """
        if self._writer is not None:
            return await self._completions.claim(worker_id, limit)
        async with write_transaction(self.engine) as connection:
            return await self._claim(connection, worker_id, limit)

    def _claim_now(
        self,
        transaction: SqliteTransaction,
        *,
        worker_id: str,
        limit: int = 1,
        start: bool = False,
    ) -> Sequence[Claim]:
        """``_claim`` (and ``_start_many``) on the SQLite writer's thread."""
        rows = transaction.rows(_DUE, {"now": utcnow(), "limit": limit})
        if not rows:
            return []
        claims = _claims_from(rows, worker_id)
        transaction.executemany(_HOLD, self._hold_parameters(claims))
        if start:
            self._start_now(transaction, claims)
        return claims

    def _hold_parameters(self, claims: Sequence[Claim]) -> Sequence[dict[str, Any]]:
        lease_expires_at = utcnow() + self.lease
        return [
            {
                "document_id": claim.document_id,
                "worker_id": claim.worker_id,
                "token": claim.token,
                "lease_expires_at": lease_expires_at,
            }
            for claim in claims
        ]

    async def _claim(
        self, connection: Any, worker_id: str, limit: int, priority: int | None = None
    ) -> Sequence[Claim]:
        due: dict[str, Any] = {"now": utcnow(), "limit": limit}
        if priority is None:
            rows = (await connection.execute(_DUE, due)).all()
        else:
            due["priority"] = priority
            rows = (await connection.execute(_DUE_ABOVE, due)).all()
        if not rows:
            return []
        claims = _claims_from(rows, worker_id)
        await connection.execute(_HOLD, self._hold_parameters(claims))
        return claims

    async def start(self, claim: Claim) -> str | None:
        """
        Record that a slot starts reading the held document: it shows
        ``processing``, its attempt is counted and an attempt row opened.
        Returns the document's parser as it stands then.

        Raises:
            LeaseLost: the claim is no longer the document's (cancelled,
                deleted, or given back by recovery); nothing was written.
        """
        if self._writer is not None:
            return await self._completions.start(claim)
        async with write_transaction(self.engine) as connection:
            (parser,) = await self._start_many(connection, [claim])
        return parser

    async def _start_many(
        self, connection: Any, claims: Sequence[Claim]
    ) -> Sequence[str | None]:
        """Start ``claims``; their parsers. Raises LeaseLost for a lost one."""
        # Read the clock only now, after the hold this start follows: a
        # document that another worker released (or a recovery requeued)
        # had committed that by then, so this attempt starts after the one
        # it follows ended. On PostgreSQL the row is locked only by the
        # statement below: a start held up longer than a lease after this
        # read (a stalled event loop, a slow commit) commits a lease that
        # has already run out, and recovery may take the document at once.
        # Safe, as the worker's later writes are fenced, but wasted work.
        now = utcnow()
        parsers: list[str | None] = []
        for claim in claims:
            started = (
                await connection.execute(_START, self._start_parameters(claim, now))
            ).first()
            if started is None:
                raise LeaseLost(claim.document_id)
            parsers.append(started.parser)
        await connection.execute(_OPEN_ATTEMPT, _attempt_parameters(claims, now))
        return parsers

    def _start_now(
        self, transaction: SqliteTransaction, claims: Sequence[Claim]
    ) -> None:
        """``_start_many`` on the SQLite writer's thread."""
        now = utcnow()
        for claim in claims:
            if not transaction.rows(_START, self._start_parameters(claim, now)):
                raise LeaseLost(claim.document_id)
        transaction.executemany(_OPEN_ATTEMPT, _attempt_parameters(claims, now))

    def _start_parameters(self, claim: Claim, now: datetime) -> dict[str, Any]:
        return {
            "document_id": claim.document_id,
            "token": claim.token,
            "attempt": claim.attempt,
            "lease_expires_at": now + self.lease,
            "now": now,
        }

    async def outranking_due_at(self, priority: int) -> datetime | None:
        """
        When the next document above ``priority`` that no worker holds, in
        queue order, is (or was) due; None if there is none.

        A cheap read (off the pool) that tells a worker whether the claims
        waiting for its slots should make way (``claim_ahead_of``). Only due
        documents count, so one waiting for a retry does not hide a due
        document of a lower, still outranking priority. It walks the claim
        index in queue order, so it reads past only the documents of higher
        priorities that wait for a retry (few) before the first due one.
        """
        row = await self.reads.first(
            _OUTRANKING, priority=priority, now=utcnow(), one=1, zero=0
        )
        return None if row is None else row.due

    async def claim_ahead_of(
        self, worker_id: str, waiting: Sequence[Claim]
    ) -> tuple[Sequence[Claim], Sequence[Claim]]:
        """
        Swap claims waiting for a slot for due documents that outrank them.

        In one transaction: holds up to ``len(waiting)`` due documents of a
        higher priority than the lowest waiting claim, and gives back as
        many of the lowest-ranked waiting claims (uncharged, as they were).
        Returns (taken, given back); a waiting claim lost meanwhile is
        simply not given back.
        """
        if not waiting:
            return [], []
        lowest = min(claim.priority for claim in waiting)
        async with write_transaction(self.engine) as connection:
            taken = await self._claim(
                connection, worker_id, len(waiting), priority=lowest
            )
            if not taken:
                return [], []
            ranked = sorted([*waiting, *taken], key=claim_rank)
            given_back = [c for c in ranked[len(waiting) :] if c not in taken]
            kept = [c for c in taken if c in ranked[: len(waiting)]]
            dropped = [c for c in taken if c not in kept]
            await self._unhold(connection, [*given_back, *dropped])
        return kept, given_back

    async def _unhold(self, connection: Any, claims: Sequence[Claim]) -> int:
        """Give back held, unstarted claims as they were; how many were held."""
        if not claims:
            return 0
        result = await connection.execute(
            _UNHOLD,
            [
                {"document_id": claim.document_id, "token": claim.token}
                for claim in claims
            ],
        )
        if result.rowcount:
            await self._announce(connection)
        return int(result.rowcount)

    def _fenced(self, claim: Claim) -> Any:
        return update(Document).where(
            Document.id == claim.document_id,
            Document.claim_token == claim.token,
            Document.status == PROCESSING,
        )

    async def holds(self, claim: Claim) -> bool:
        """Whether ``claim`` is still the document's current claim."""
        return not await self.lost_claims([claim])

    async def lost_claims(self, claims: Sequence[Claim]) -> set[str]:
        """The tokens of ``claims`` that are no longer their document's claim."""
        if not claims:
            return set()
        async with self.engine.connect() as connection:
            held = (await connection.execute(_HELD, _held_parameters(claims))).scalars()
            return {claim.token for claim in claims} - set(held)

    async def renew_lease(
        self, claim: Claim, progress: dict[str, Any] | None = None
    ) -> None:
        """Extend the lease (and record progress); raise LeaseLost if taken over."""
        now = utcnow()
        values: dict[str, Any] = {"lease_expires_at": now + self.lease}
        if progress is not None:
            values["progress"] = progress
        async with write_transaction(self.engine) as connection:
            result = await connection.execute(self._fenced(claim).values(**values))
            if result.rowcount != 1:
                raise LeaseLost(claim.document_id)

    async def renew_leases(self, claims: Sequence[Claim]) -> set[str]:
        """
        Extend the leases of ``claims`` in one statement; return the tokens
        of those that were lost (and so not renewed).
        """
        if not claims:
            return set()
        parameters = _held_parameters(claims)
        parameters["lease_expires_at"] = utcnow() + self.lease
        async with write_transaction(self.engine) as connection:
            renewed = (await connection.execute(_RENEW, parameters)).scalars()
            return {claim.token for claim in claims} - set(renewed)

    async def complete(self, claim: Claim, payload: dict[str, Any]) -> str | None:
        """
        Store the result and mark the document completed, in one transaction.

        Results that arrive while another is being written are written
        together in the next transaction (see ``CompletionCommit``); each is
        still fenced by its own claim token.

        Returns the document's parser as it stands at completion, so a
        worker that looked for one before and found none learns that one
        was attached meanwhile and still has to run.

        Raises:
            LeaseLost: the claim is no longer the document's; nothing was written.
        """
        return await self._completions.add(claim, payload)

    async def _write_results(
        self,
        items: Sequence[tuple[Claim, dict[str, Any] | None]],
        wanted: Sequence[tuple[str, int]] = (),
    ) -> tuple[Sequence[str | LeaseLost | None], Sequence[Sequence[Claim]]]:
        """
        Write ``items`` in one transaction: results, and starts (no payload);
        for each, in order, the parser at its completion or start, or
        LeaseLost when its claim was no longer held and nothing of it was
        written. The same transaction then holds documents for each
        ``(worker_id, limit)`` in ``wanted``, and gives back those claims.
        """
        starts = [claim for claim, payload in items if payload is None]
        results = [(claim, payload) for claim, payload in items if payload is not None]
        started: Sequence[str | LeaseLost | None]
        completed: Sequence[str | LeaseLost | None]
        claimed: Sequence[Sequence[Claim]]
        if self._writer is not None and not any(
            claim.had_result or claim.callback_url or self.webhook_url
            for claim, _ in results
        ):
            started, completed, claimed = await self._writer.run(
                functools.partial(
                    self._write_now, starts=starts, results=results, wanted=wanted
                )
            )
        else:
            async with write_transaction(self.engine) as connection:
                started = await self._start_each(connection, starts)
                completed = await self._complete_many(connection, results)
                claimed = [
                    await self._claim(connection, worker_id, limit)
                    for worker_id, limit in wanted
                ]
        start_outcomes, result_outcomes = iter(started), iter(completed)
        outcomes = [
            next(start_outcomes) if payload is None else next(result_outcomes)
            for _, payload in items
        ]
        return outcomes, claimed

    def _write_now(
        self,
        transaction: SqliteTransaction,
        starts: Sequence[Claim],
        results: Sequence[tuple[Claim, dict[str, Any]]],
        wanted: Sequence[tuple[str, int]],
    ) -> tuple[
        Sequence[str | LeaseLost | None],
        Sequence[str | LeaseLost | None],
        Sequence[Sequence[Claim]],
    ]:
        """
        Starts, results and claims in one transaction on the SQLite
        writer's thread.
        """
        now = utcnow()
        started = [
            _parser_or_lost(
                transaction.rows(_START, self._start_parameters(claim, now)), claim
            )
            for claim in starts
        ]
        transaction.executemany(
            _OPEN_ATTEMPT, _attempt_parameters(_opened(starts, started), now)
        )
        completed = self._complete_now(transaction, results) if results else []
        claimed = [
            self._claim_now(transaction, worker_id=worker_id, limit=limit)
            for worker_id, limit in wanted
        ]
        return started, completed, claimed

    async def _start_each(
        self, connection: Any, claims: Sequence[Claim]
    ) -> Sequence[str | LeaseLost | None]:
        """``_start_many``, with a lost claim left out rather than raised."""
        if not claims:
            return []
        now = utcnow()
        started = [
            _parser_or_lost(
                (
                    await connection.execute(_START, self._start_parameters(claim, now))
                ).all(),
                claim,
            )
            for claim in claims
        ]
        opened = _opened(claims, started)
        if opened:
            await connection.execute(_OPEN_ATTEMPT, _attempt_parameters(opened, now))
        return started

    def _complete_now(
        self,
        transaction: SqliteTransaction,
        results: Sequence[tuple[Claim, dict[str, Any]]],
    ) -> Sequence[str | LeaseLost | None]:
        """
        ``_complete_many`` on the SQLite writer's thread, for first results
        with no webhook to queue: the result, its search entry and the
        closing of its attempt, each fenced by the claim's token.
        """
        now = utcnow()
        outcomes: list[str | LeaseLost | None] = []
        stored: list[tuple[Claim, dict[str, Any]]] = []
        for claim, payload in results:
            completed = transaction.rows(
                _COMPLETE, _completion_parameters(claim, payload, now)
            )
            if not completed:
                outcomes.append(LeaseLost(claim.document_id))
                continue
            outcomes.append(completed[0].parser)
            stored.append((claim, payload))
        if stored:
            transaction.executemany(_STORE_CONTENT, _content_parameters(stored))
            transaction.executemany(
                search.SQLITE_INDEX,
                search.sqlite_index_parameters(
                    [(claim.document_id, payload["text"]) for claim, payload in stored]
                ),
            )
            transaction.executemany(
                _CLOSE_ATTEMPT, _closing_parameters(stored, now, COMPLETED)
            )
        return outcomes

    async def _complete_many(
        self, connection: Any, results: Sequence[tuple[Claim, dict[str, Any]]]
    ) -> Sequence[str | LeaseLost | None]:
        """
        Write ``results`` in the caller's transaction; for each, the parser
        at completion or LeaseLost when its claim was no longer held (and
        nothing of it was written).
        """
        now = utcnow()
        outcomes: list[str | LeaseLost | None] = []
        stored: list[tuple[Claim, dict[str, Any]]] = []
        for claim, payload in results:
            completed = (
                await connection.execute(
                    _COMPLETE, _completion_parameters(claim, payload, now)
                )
            ).first()
            if completed is None:
                outcomes.append(LeaseLost(claim.document_id))
                continue
            outcomes.append(completed.parser)
            stored.append((claim, payload))
        if not stored:
            return outcomes
        reprocessed = [claim.document_id for claim, _ in stored if claim.had_result]
        if reprocessed:
            # Reprocessing: the earlier result and its index entry go. A
            # first result has none, and looking for an index entry on
            # SQLite scans the whole FTS table (its document_id column is
            # not indexed).
            await connection.execute(
                delete(DocumentContent).where(
                    DocumentContent.document_id.in_(reprocessed)
                )
            )
            await search.unindex(connection, reprocessed)
        await connection.execute(_STORE_CONTENT, _content_parameters(stored))
        await search.index_texts(
            connection,
            [(claim.document_id, payload["text"]) for claim, payload in stored],
        )
        announced = [
            claim.document_id
            for claim, _ in stored
            if claim.callback_url or self.webhook_url
        ]
        if announced:
            # The outbox reads the whole row to build the event; with no URL
            # to send it to, neither the claim's nor the global one, skip it.
            await outbox.enqueue_events(connection, announced, now, self.webhook_url)
        await connection.execute(
            _CLOSE_ATTEMPT, _closing_parameters(stored, now, COMPLETED)
        )
        return outcomes

    async def fail(
        self, claim: Claim, code: str, message: str, retryable: bool
    ) -> FailureOutcome:
        """
        Record a failed attempt: schedule a retry or fail the document for good.

        Raises:
            LeaseLost: the claim is no longer the document's; nothing was written.
        """
        now = utcnow()
        retry = retryable and claim.attempt < claim.max_attempts
        retry_at = None
        parameters: dict[str, Any] = {
            "document_id": claim.document_id,
            "token": claim.token,
            "now": now,
            "code": code,
            "message": message,
        }
        if retry:
            retry_at = now + timedelta(seconds=self.retry.delay_seconds(claim.attempt))
            parameters["retry_at"] = retry_at
        statement = _FAIL_TO_RETRY if retry else _FAIL_FOR_GOOD
        outcome = "retry" if retry else FAILED
        if self._writer is not None and not (claim.callback_url or self.webhook_url):
            # As a result is: one hop to the writer's thread, where the
            # engine took a dozen through aiosqlite; a failure cost the
            # event loop three to four times what a result did.
            failed = await self._writer.run(
                functools.partial(
                    _fail_now,
                    statement=statement,
                    parameters=parameters,
                    closing=_closing(claim, now, outcome, code),
                )
            )
            if not failed:
                raise LeaseLost(claim.document_id)
            return FailureOutcome(final=not retry, retry_at=retry_at)
        async with write_transaction(self.engine) as connection:
            result = await connection.execute(statement, parameters)
            if result.rowcount != 1:
                raise LeaseLost(claim.document_id)
            await self._close_attempt(connection, claim, now, outcome, code)
            if not retry:
                await self._announce_final(connection, claim, now)
        return FailureOutcome(final=not retry, retry_at=retry_at)

    async def release(self, claim: Claim) -> bool:
        """
        Give the document back unprocessed (shutdown); the attempt is not counted.

        Works whether or not a slot had started it. Returns False when the
        claim had already been lost.
        """
        now = utcnow()
        async with write_transaction(self.engine) as connection:
            result = await connection.execute(
                self._fenced(claim).values(
                    status=PENDING,
                    attempts=Document.attempts - 1,
                    worker_id=None,
                    claim_token=None,
                    lease_expires_at=None,
                    # Back to its place in the queue, not behind every
                    # document that arrived while it was held.
                    next_attempt_at=Document.created_at,
                    started_at=None,
                    updated_at=now,
                    progress=None,
                )
            )
            if result.rowcount == 1:
                await self._close_attempt(connection, claim, now, "released", None)
                await self._announce(connection)
            elif not await self._unhold(connection, [claim]):
                return False
        for listener in self._enqueue_listeners:
            listener()
        return True

    async def _announce(self, connection: Any) -> None:
        # Delivered when the transaction commits, so a woken worker always
        # finds the row; SQLite workers in this process use the listeners.
        if connection.dialect.name == "postgresql":
            await connection.execute(
                text("SELECT pg_notify(:channel, '')"), {"channel": NOTIFY_CHANNEL}
            )

    async def _close_attempt(
        self,
        connection: Any,
        claim: Claim,
        now: datetime,
        outcome: str,
        error_code: str | None,
    ) -> None:
        await connection.execute(
            _CLOSE_ATTEMPT, _closing(claim, now, outcome, error_code)
        )

    async def _announce_final(
        self, connection: Any, claim: Claim, now: datetime
    ) -> None:
        # The outbox reads the whole row to build the event; with no URL to
        # send it to, neither the claim's nor the global one, skip that read.
        if claim.callback_url or self.webhook_url:
            await outbox.enqueue_events(
                connection, [claim.document_id], now, self.webhook_url
            )

    async def cancel(self, document_id: str) -> str:
        """
        Stop a document: pending ones never start, running ones are abandoned.

        The running worker learns at its next lease renewal, when its fenced
        write matches no row, and kills the extraction. Returns the status the
        document has afterwards; a final document is left as it is.
        """
        now = utcnow()
        async with write_transaction(self.engine) as connection:
            # The document row first, then its attempt: the order in which a
            # completing worker locks them. The other order deadlocked on
            # PostgreSQL with a worker storing its result. Locked whatever
            # its status, so the update below finds it as read here: a start
            # that commits in between (the update would wait for it, then
            # cancel it) must not leave its attempt open.
            row = (
                await connection.execute(
                    select(Document.status, Document.claim_token)
                    .where(Document.id == document_id)
                    .with_for_update()
                )
            ).first()
            token = (
                row.claim_token
                if row is not None and row.status == PROCESSING
                else None
            )
            result = await connection.execute(
                update(Document)
                .where(
                    Document.id == document_id,
                    Document.status.in_([PENDING, PROCESSING]),
                )
                .values(
                    status=CANCELLED,
                    finished_at=now,
                    updated_at=now,
                    **_UNHELD,
                    error_code="cancelled",
                    error_message="cancelled on request",
                )
            )
            if token is not None:
                await connection.execute(
                    update(Attempt)
                    .where(Attempt.claim_token == token, Attempt.finished_at.is_(None))
                    .values(finished_at=now, outcome=CANCELLED)
                )
        if result.rowcount:
            logger.info(
                "document %s cancelled",
                document_id,
                extra={"action": "document_cancelled", "document_id": document_id},
            )
            return CANCELLED
        return str((await self.get(document_id)).status)

    async def queue_stats(self) -> dict[str, Any]:
        """Counts per status, the oldest due document's age, last minute's output."""
        now = utcnow()
        # One read of one row, through RowReader: /metrics answers this at
        # each scrape (a benchmark's client polls it twice a second), and
        # its three reads through the engine cost the event loop about 3 ms.
        row = await self.reads.first(
            _QUEUE_STATS,
            since=now - timedelta(minutes=1),
            now=now,
            **{f"is_{status.value}": status.value for status in JobStatus},
        )
        assert row is not None
        oldest = row.oldest
        return {
            "counts": {
                status.value: getattr(row, status.value) for status in JobStatus
            },
            "oldest_pending_seconds": (
                (now - oldest).total_seconds() if oldest is not None else None
            ),
            "finished_last_minute": row.finished,
        }

    async def count_failed_by_code(self) -> dict[str, int]:
        """Failed documents per error code."""
        async with self.engine.connect() as connection:
            rows = await connection.execute(
                select(Document.error_code, func.count())
                .where(Document.status == FAILED)
                .group_by(Document.error_code)
            )
            return {str(code): int(count) for code, count in rows}

    async def retry_failed(
        self,
        document_ids: Sequence[str] | None = None,
        error_codes: Collection[str] | None = None,
        *,
        force: bool = False,
    ) -> int:
        """
        Queue failed documents again with a fresh set of attempts.

        Args:
            document_ids: only these (default: every failed document).
            error_codes: only those that failed with one of these codes.
            force: queue them even past ``max_pending`` (an operator's
                deliberate choice; submissions then get 429 until the queue
                is below the limit again).

        Raises:
            RetryOverLimit: without ``force``, they would leave more than
                ``max_pending`` waiting; none was queued.
        """
        now = utcnow()
        condition = Document.status == FAILED
        if document_ids:
            condition &= Document.id.in_(document_ids)
        if error_codes is not None:
            condition &= Document.error_code.in_(error_codes)
        async with write_transaction(self.engine) as connection:
            if self.max_pending and not force:
                await self._check_room_to_retry(connection, condition)
            result = await connection.execute(
                update(Document).where(condition).values(**_fresh_start(now))
            )
            if result.rowcount:
                await self._announce(connection)
        for listener in self._enqueue_listeners:
            listener()
        return int(result.rowcount)

    async def _check_room_to_retry(self, connection: Any, condition: Any) -> None:
        room = await _room(connection, self.max_pending)
        retrying = (
            await connection.execute(
                select(func.count()).select_from(Document).where(condition)
            )
        ).scalar_one()
        if retrying > room:
            pending = (await connection.execute(_PENDING_COUNT)).scalar_one()
            raise RetryOverLimit(self.max_pending, int(pending), int(retrying))

    async def purge(self, older_than: timedelta) -> Purged:
        """Delete completed and cancelled documents finished before ``older_than``."""
        cutoff = utcnow() - older_than
        condition = Document.status.in_([COMPLETED, CANCELLED]) & (
            Document.finished_at < cutoff
        )
        async with write_transaction(self.engine) as connection:
            deleted = (
                await connection.execute(
                    delete(Document)
                    .where(condition)
                    .returning(Document.id, Document.storage_key)
                )
            ).all()
            await search.unindex(connection, [row.id for row in deleted])
            keys = {row.storage_key for row in deleted if row.storage_key}
            if not keys:
                return Purged(len(deleted), [])
            used = set(
                (
                    await connection.execute(
                        select(Document.storage_key)
                        .where(Document.storage_key.in_(keys))
                        .distinct()
                    )
                ).scalars()
            )
        return Purged(len(deleted), sorted(keys - used))

    # -- recovery ----------------------------------------------------------

    async def reclaim_expired(self) -> int:
        """
        Return documents whose lease ran out to the queue, or fail them.

        A lease runs out when its worker died or hung. For a document a slot
        had started, the attempt counts: a document that kills its worker
        every time ends ``failed`` with ``worker_crash`` after
        ``max_attempts`` instead of crashing workers forever. A document
        only held for a slot was never read, so it goes back as it was.
        """
        now = utcnow()
        # A held row without a lease is one that a version before claims
        # waited as pending requeued with its old token: free it too.
        expired = (Document.lease_expires_at < now) | Document.lease_expires_at.is_(
            None
        )
        why = "its worker stopped renewing its lease"
        return await self._recover(expired, now, why, why)

    async def reclaim_from_dead_workers(self, host: str) -> int:
        """
        Recover documents held by processes on ``host`` that no longer exist.

        After a crash and restart on the same machine this frees the dead
        process's documents at once instead of after the lease runs out.
        Only a holder provably gone is recovered (see ``ids.holder_dead``):
        one in another PID namespace or boot, or whose id does not say, is
        left to lease expiry, which is always safe.
        """
        async with self.engine.connect() as connection:
            holders = (
                await connection.execute(
                    select(Document.worker_id)
                    .where(
                        Document.status.in_([PENDING, PROCESSING]),
                        Document.claim_token.is_not(None),
                        Document.worker_id.like(f"{host}:%"),
                    )
                    .distinct()
                )
            ).scalars()
            dead = [w for w in holders if w is not None and holder_dead(w, host)]
        if not dead:
            return 0
        return await self._recover(
            Document.worker_id.in_(dead),
            utcnow(),
            "its worker process exited while reading it",
            "its worker process exited",
        )

    async def _recover(
        self, held: Any, now: datetime, why: str, why_unstarted: str
    ) -> int:
        """
        Requeue or quarantine the started documents ``held`` selects, and
        give back those only held for a slot; ``why`` says why for the
        first, ``why_unstarted`` for the others, which nobody read.
        """
        unstarted = (
            (Document.status == PENDING) & Document.claim_token.is_not(None) & held
        )
        async with write_transaction(self.engine) as connection:
            # Lock the documents before their attempts, as completions do
            # (see ``cancel``).
            tokens = list(
                (
                    await connection.execute(
                        select(Document.claim_token)
                        .where(Document.status == PROCESSING, held)
                        .with_for_update()
                    )
                ).scalars()
            )
            # Only the documents locked above, whose attempts are closed
            # here. On PostgreSQL each statement sees what committed before
            # it began: asking ``held`` again would also take a document
            # whose start committed since (with a lease that ran out before
            # that commit did), and requeue it with its attempt left open.
            quarantined, retried = (
                await self._abandon(connection, tokens, now, why) if tokens else ([], 0)
            )
            # Held for a slot but never started: nothing was read, so
            # nothing is counted or blamed. One statement, which re-checks
            # a row that a start changes meanwhile, so it never frees a
            # started document.
            unheld = await connection.execute(
                update(Document)
                .where(unstarted)
                .values(worker_id=None, claim_token=None, lease_expires_at=None)
            )
            if retried or unheld.rowcount:
                await self._announce(connection)
        count = len(quarantined) + retried
        if count:
            logger.warning(
                "recovered %d document(s): %s",
                count,
                why,
                extra={"action": "documents_recovered", "count": count},
            )
        if unheld.rowcount:
            logger.info(
                "gave back %d document(s) held for a slot but never started: %s",
                unheld.rowcount,
                why_unstarted,
                extra={"action": "claims_released", "count": unheld.rowcount},
            )
        if count or unheld.rowcount:
            for listener in self._enqueue_listeners:
                listener()
        return count + unheld.rowcount

    async def _abandon(
        self, connection: Any, tokens: Sequence[str | None], now: datetime, why: str
    ) -> tuple[Sequence[str], int]:
        """
        End the started attempts of ``tokens`` (their documents locked by
        the caller) as abandoned: quarantine the documents that used up
        their attempts, requeue the rest; (quarantined ids, requeued count).
        """
        await connection.execute(
            update(Attempt)
            .where(Attempt.claim_token.in_(tokens), Attempt.finished_at.is_(None))
            .values(finished_at=now, outcome="abandoned", error_code="worker_crash")
        )
        started = (Document.status == PROCESSING) & Document.claim_token.in_(tokens)
        exhausted = await connection.execute(
            update(Document)
            .where(started, Document.attempts >= Document.max_attempts)
            .returning(Document.id)
            .values(
                status=FAILED,
                finished_at=now,
                updated_at=now,
                **_UNHELD,
                error_code="worker_crash",
                error_message=(
                    f"every attempt ended because {why}; the document is "
                    "quarantined and will not be retried automatically"
                ),
            )
        )
        quarantined = list(exhausted.scalars())
        await outbox.enqueue_events(connection, quarantined, now, self.webhook_url)
        retried = await connection.execute(
            update(Document)
            .where(started)
            .values(
                status=PENDING,
                updated_at=now,
                **_UNHELD,
                next_attempt_at=now,
                error_code="worker_crash",
                error_message=f"attempt abandoned: {why}",
            )
        )
        return quarantined, int(retried.rowcount)


# What a document that ends its hold (cancelled, quarantined, requeued by
# recovery) no longer has: no lease, holder, claim or progress.
_UNHELD: dict[str, Any] = {
    "lease_expires_at": None,
    "worker_id": None,
    "claim_token": None,
    "progress": None,
}


# The worker's statements, built once: each document costs a claim, maybe a
# lease renewal and a completion, and building (and cache-keying) a fresh
# SQLAlchemy statement for each of those cost more than running it.
_documents = cast(Table, Document.__table__)
_attempts = cast(Table, Attempt.__table__)

# The claim index holds pending documents only (migration 0009). Statements
# that should walk it name the status as a literal: PostgreSQL's generic plan
# of a prepared ``status = $1`` cannot prove it pending and would not use it.
_IS_PENDING = _documents.c.status == literal_column(f"'{PENDING}'")

_DUE_COLUMNS = (
    _documents.c.id,
    _documents.c.attempts,
    _documents.c.max_attempts,
    _documents.c.storage_key,
    _documents.c.filename,
    _documents.c.size_bytes,
    _documents.c.source_url,
    _documents.c.callback_url,
    _documents.c.charset,
    _documents.c.mime_type,
    _documents.c.priority,
    _documents.c.next_attempt_at,
)
# Documents per status (each counted on the status index), the oldest due
# pending one, and those finished since ``since``: one row, one snapshot.
# Parameters by name only, as RowReader passes no others.
_QUEUE_STATS = select(
    *(
        select(func.count())
        .select_from(_documents)
        .where(_documents.c.status == bindparam(f"is_{status.value}"))
        .scalar_subquery()
        .label(status.value)
        for status in JobStatus
    ),
    select(func.min(_documents.c.next_attempt_at))
    .where(
        # The literal, not a parameter: the claim index holds only pending
        # documents, and a planner matches its condition only so.
        _IS_PENDING,
        _documents.c.next_attempt_at <= bindparam("now"),
    )
    .scalar_subquery()
    .label("oldest"),
    select(func.count())
    .select_from(_documents)
    .where(
        _documents.c.status.in_([bindparam("is_completed"), bindparam("is_failed")]),
        _documents.c.finished_at >= bindparam("since"),
    )
    .scalar_subquery()
    .label("finished"),
)
# Pending and held by no worker: a claim waiting for a slot keeps its
# document pending (see ``JobStore.claim_batch``).
_FREE = (
    _IS_PENDING,
    _documents.c.claim_token.is_(None),
)
_QUEUE_ORDER = (
    _documents.c.priority.desc(),
    _documents.c.next_attempt_at,
    _documents.c.id,
)

_DUE = (
    select(*_DUE_COLUMNS)
    .where(*_FREE, _documents.c.next_attempt_at <= bindparam("now"))
    .order_by(*_QUEUE_ORDER)
    .limit(bindparam("limit"))
    .with_for_update(skip_locked=True)
)

_DUE_ABOVE = (
    select(*_DUE_COLUMNS)
    .where(
        *_FREE,
        _documents.c.next_attempt_at <= bindparam("now"),
        _documents.c.priority > bindparam("priority"),
    )
    .order_by(*_QUEUE_ORDER)
    .limit(bindparam("limit"))
    .with_for_update(skip_locked=True)
)

# The first free, due document above a priority, in queue order.
# Parameters by name only: RowReader passes no others.
_OUTRANKING = (
    select(_documents.c.next_attempt_at.label("due"))
    .where(
        _IS_PENDING,
        _documents.c.claim_token.is_(None),
        _documents.c.priority > bindparam("priority"),
        _documents.c.next_attempt_at <= bindparam("now"),
    )
    .order_by(*_QUEUE_ORDER)
    # SQLite's LIMIT comes with an OFFSET: both named, or it gets its own.
    .limit(bindparam("one"))
    .offset(bindparam("zero"))
)

_HOLD = (
    update(_documents)
    .where(
        _documents.c.id == bindparam("document_id"),
        *_FREE,
    )
    .values(
        worker_id=bindparam("worker_id"),
        claim_token=bindparam("token"),
        lease_expires_at=bindparam("lease_expires_at"),
    )
)

_HELD_UNSTARTED = (
    _documents.c.id == bindparam("document_id"),
    _documents.c.claim_token == bindparam("token"),
    _documents.c.status == PENDING,
)
# A started document still this claim's: what a result or a failure is
# fenced by.
_HELD_STARTED = (
    _documents.c.id == bindparam("document_id"),
    _documents.c.claim_token == bindparam("token"),
    _documents.c.status == PROCESSING,
)

_START = (
    update(_documents)
    .where(*_HELD_UNSTARTED)
    .values(
        status=PROCESSING,
        lease_expires_at=bindparam("lease_expires_at"),
        attempts=bindparam("attempt"),
        started_at=bindparam("now"),
        updated_at=bindparam("now"),
        progress=None,
    )
    # The parser as it stands at the start: the worker's one look for one
    # (a parser attached later is returned by the completion).
    .returning(_documents.c.parser)
)

_UNHOLD = (
    update(_documents)
    .where(*_HELD_UNSTARTED)
    .values(worker_id=None, claim_token=None, lease_expires_at=None)
)

_OPEN_ATTEMPT = insert(_attempts).values(
    document_id=bindparam("document_id"),
    number=bindparam("number"),
    worker_id=bindparam("worker_id"),
    claim_token=bindparam("claim_token"),
    started_at=bindparam("started_at"),
)

# Held, started or not.
_HOLDING = (
    _documents.c.id.in_(bindparam("ids", expanding=True)),
    _documents.c.claim_token.in_(bindparam("tokens", expanding=True)),
    _documents.c.status.in_([PENDING, PROCESSING]),
)

_HELD = select(_documents.c.claim_token).where(*_HOLDING)

_RENEW = (
    update(_documents)
    .where(*_HOLDING)
    .values(lease_expires_at=bindparam("lease_expires_at"))
    .returning(_documents.c.claim_token)
)

_COMPLETE = (
    update(_documents)
    .where(*_HELD_STARTED)
    .values(
        status=COMPLETED,
        finished_at=bindparam("now"),
        updated_at=bindparam("now"),
        lease_expires_at=None,
        progress=None,
        error_code=None,
        error_message=None,
        mime_type=bindparam("mime_type"),
        word_count=bindparam("word_count"),
        char_count=bindparam("char_count"),
        page_count=bindparam("page_count"),
        doc_metadata=bindparam("metadata"),
        processing_ms=bindparam("processing_ms"),
    )
    .returning(_documents.c.parser)
)

# A failed attempt: fenced as a completion is, the claim let go.
_FAILED_ATTEMPT = (
    update(_documents)
    .where(*_HELD_STARTED)
    .values(
        updated_at=bindparam("now"),
        lease_expires_at=None,
        worker_id=None,
        claim_token=None,
        error_code=bindparam("code"),
        error_message=bindparam("message"),
    )
)
_FAIL_FOR_GOOD = _FAILED_ATTEMPT.values(
    status=FAILED, finished_at=bindparam("now"), progress=None
)
_FAIL_TO_RETRY = _FAILED_ATTEMPT.values(
    status=PENDING, next_attempt_at=bindparam("retry_at")
)

_STORE_CONTENT = insert(cast(Table, DocumentContent.__table__))

_CLOSE_ATTEMPT = (
    update(_attempts)
    .where(
        # Not "document_id": that name is the column's own in SET.
        _attempts.c.document_id == bindparam("document"),
        _attempts.c.claim_token == bindparam("token"),
        # An attempt ends once, as cancel and recovery already ensure. Each
        # close runs with the fenced write that takes the document out of
        # processing, so none can meet a closed attempt today; this keeps
        # it so if that changes, at the cost of a filter on a row the
        # document's index has already found.
        _attempts.c.finished_at.is_(None),
    )
    .values(
        finished_at=bindparam("now"),
        outcome=bindparam("outcome"),
        error_code=bindparam("error_code"),
    )
)


def _claims_from(rows: Sequence[Any], worker_id: str) -> list[Claim]:
    return [
        Claim(
            document_id=row.id,
            token=new_claim_token(),
            attempt=row.attempts + 1,
            max_attempts=row.max_attempts,
            worker_id=worker_id,
            storage_key=row.storage_key,
            filename=row.filename,
            size_bytes=row.size_bytes,
            # Fetched already (a retry, or reprocessing): no need to fetch
            # again.
            source_url=row.source_url if not row.storage_key else None,
            callback_url=row.callback_url,
            charset=row.charset,
            # Only ``complete`` (and a dedupe copy) writes a result, and both
            # set mime_type with it.
            had_result=row.mime_type is not None,
            priority=row.priority,
            due=row.next_attempt_at,
        )
        for row in rows
    ]


def _parser_or_lost(started: Sequence[Any], claim: Claim) -> str | LeaseLost | None:
    """A start's outcome from the rows its statement returned."""
    return started[0].parser if started else LeaseLost(claim.document_id)


def _opened(
    claims: Sequence[Claim], outcomes: Sequence[str | LeaseLost | None]
) -> list[Claim]:
    """The claims whose start was written."""
    return [
        claim
        for claim, outcome in zip(claims, outcomes, strict=True)
        if not isinstance(outcome, LeaseLost)
    ]


def _attempt_parameters(claims: Sequence[Claim], now: datetime) -> list[dict[str, Any]]:
    return [
        {
            "document_id": claim.document_id,
            "number": claim.attempt,
            "worker_id": claim.worker_id,
            "claim_token": claim.token,
            "started_at": now,
        }
        for claim in claims
    ]


def _completion_parameters(
    claim: Claim, payload: dict[str, Any], now: datetime
) -> dict[str, Any]:
    return {
        "document_id": claim.document_id,
        "token": claim.token,
        "now": now,
        "mime_type": payload["mime_type"],
        "word_count": payload["word_count"],
        "char_count": payload["char_count"],
        "page_count": payload["page_count"],
        "metadata": payload["metadata"],
        "processing_ms": payload["processing_ms"],
    }


def _content_parameters(
    stored: Sequence[tuple[Claim, dict[str, Any]]],
) -> list[dict[str, Any]]:
    return [
        {
            "document_id": claim.document_id,
            "text": payload["text"],
            "markdown": payload["markdown"],
            "pages": payload["pages"],
            "children": payload["children"],
            "warnings": payload["warnings"],
        }
        for claim, payload in stored
    ]


def _closing_parameters(
    stored: Sequence[tuple[Claim, Any]], now: datetime, outcome: str
) -> list[dict[str, Any]]:
    return [_closing(claim, now, outcome, None) for claim, _ in stored]


def _closing(
    claim: Claim, now: datetime, outcome: str, error_code: str | None
) -> dict[str, Any]:
    """The parameters of ``_CLOSE_ATTEMPT`` for ``claim``'s attempt."""
    return {
        "document": claim.document_id,
        "token": claim.token,
        "now": now,
        "outcome": outcome,
        "error_code": error_code,
    }


def _fail_now(
    transaction: SqliteTransaction,
    statement: Any,
    parameters: dict[str, Any],
    closing: dict[str, Any],
) -> bool:
    """``JobStore.fail`` on the SQLite writer's thread; False if the claim was lost."""
    if transaction.execute(statement, parameters) != 1:
        return False
    transaction.execute(_CLOSE_ATTEMPT, closing)
    return True


def _insert_now(
    transaction: SqliteTransaction,
    rows: list[dict[str, Any]],
    originals: dict[str, bytes],
    max_pending: int = 0,
) -> int:
    """
    A group of submissions on the SQLite writer's thread: their small
    originals (as ``storage.insert_small_blobs`` writes them) and rows.

    Returns how many of ``rows``, from the first, were inserted: under
    ``max_pending`` (0: no limit) those past the queue's room are not.
    """
    if max_pending:
        counted = transaction.rows(_PENDING_COUNT_UP_TO, {"up_to": max_pending})
        rows = rows[: max(0, max_pending - int(counted[0].pending))]
        keys = {row["storage_key"] for row in rows}
        originals = {k: d for k, d in originals.items() if k in keys}
        if not rows:
            return 0
    if originals:
        now = utcnow()
        transaction.insert_all(
            _NEW_CHUNK,
            [{"key": k, "seq": 0, "data": d} for k, d in originals.items() if d],
        )
        transaction.insert_all(
            _NEW_BLOB,
            [
                {
                    "key": key,
                    "size_bytes": len(data),
                    "chunk_count": 1 if data else 0,
                    "created_at": now,
                }
                for key, data in originals.items()
            ],
        )
    # Numbered here as the trigger of migration 0006 would number them (the
    # write lock is held, so the top cannot move): the trigger rewrote each
    # new row and its index entry a second time.
    try:
        top = transaction.rows(_TOP_SEQ)[0].top
    except sqlite3.OperationalError as exc:
        if "no such column" not in str(exc):
            raise
        numbered = rows  # a schema before 0006: nothing to number
    else:
        numbered = [row | {"seq": top + n} for n, row in enumerate(rows, 1)]
    for columns, same in itertools.groupby(numbered, key=_columns):
        transaction.insert_all(_new_document(columns), list(same))
    return len(rows)


def _columns(row: dict[str, Any]) -> tuple[str, ...]:
    return tuple(row)


class _Unnested:
    """
    A multi-row ``INSERT`` of ``columns`` into ``table`` whose rows come
    from one array parameter per column (``unnest``), so one prepared
    statement takes a group of any size. Values are converted by the
    dialect's own bind processors, as the engine would send them; JSON goes
    as text and is cast, since the pool's JSON codec would encode it again.
    """

    def __init__(
        self, table: Table, columns: tuple[str, ...], dialect: Any, first: int
    ) -> None:
        self.columns = columns
        types = [table.c[name].type for name in columns]
        self.processors = [
            t.dialect_impl(dialect).bind_processor(dialect) for t in types
        ]
        sql_types = [t.compile(dialect=dialect) for t in types]
        arrays = ", ".join(
            f"${first + n}::{'TEXT' if kind == 'JSON' else kind}[]"
            for n, kind in enumerate(sql_types)
        )
        picked = ", ".join(
            f'u."{name}"::JSON' if kind == "JSON" else f'u."{name}"'
            for name, kind in zip(columns, sql_types, strict=True)
        )
        names = ", ".join(f'"{name}"' for name in columns)
        self.sql = (
            f"INSERT INTO {table.name} ({names}) SELECT {picked} "
            f"FROM unnest({arrays}) AS u({names})"
        )

    def arrays(self, rows: Sequence[dict[str, Any]]) -> list[list[Any]]:
        arrays = []
        for name, process in zip(self.columns, self.processors, strict=True):
            values = [row[name] for row in rows]
            arrays.append(values if process is None else [process(v) for v in values])
        return arrays


class _PooledInsert:
    """
    A group of submissions in one statement: the small originals' chunks
    and blobs (a key already stored is left alone, as ``insert_small_blobs``
    does), the documents rows, and the NOTIFY that wakes the workers, which
    PostgreSQL delivers at the statement's commit.
    """

    def __init__(self, dialect: Any, columns: tuple[str, ...]) -> None:
        self.columns = columns
        self.chunks = _Unnested(_chunks, ("key", "seq", "data"), dialect, 1)
        self.blobs = _Unnested(
            _blobs, ("key", "size_bytes", "chunk_count", "created_at"), dialect, 4
        )
        self.documents = _Unnested(_documents, columns, dialect, 8)
        channel = 8 + len(columns)
        self.sql = (
            f"WITH new_chunks AS ({self.chunks.sql} ON CONFLICT DO NOTHING), "
            f"new_blobs AS ({self.blobs.sql} ON CONFLICT DO NOTHING), "
            f"new_documents AS ({self.documents.sql}) "
            f"SELECT pg_notify(${channel}, '')"
        )

    def arguments(
        self,
        rows: Sequence[dict[str, Any]],
        originals: dict[str, bytes],
        now: datetime,
    ) -> list[Any]:
        chunks = [
            {"key": key, "seq": 0, "data": data}
            for key, data in originals.items()
            if data
        ]
        blobs = [
            {
                "key": key,
                "size_bytes": len(data),
                "chunk_count": 1 if data else 0,
                "created_at": now,
            }
            for key, data in originals.items()
        ]
        return [
            *self.chunks.arrays(chunks),
            *self.blobs.arrays(blobs),
            *self.documents.arrays(rows),
            NOTIFY_CHANNEL,
        ]


@functools.cache
def _pooled_insert(dialect: Any, columns: tuple[str, ...]) -> _PooledInsert:
    return _PooledInsert(dialect, columns)


def _pooled_insert_for(
    store: JobStore, rows: list[dict[str, Any]]
) -> _PooledInsert | None:
    """
    The one statement for a group of submissions on the asyncpg pool
    (PostgreSQL), or None when the group goes through the engine.

    Through the engine a group cost a ping, BEGIN, the blobs, the rows, the
    NOTIFY and COMMIT: six round trips, each with SQLAlchemy's and
    PostgreSQL's own work per statement, on the cores the API shares with
    PostgreSQL.
    """
    if not store.reads.pooled:
        return None
    statement = _pooled_insert(store.engine.dialect, _columns(rows[0]))
    if any(_columns(row) != statement.columns for row in rows):
        return None  # rows of other shapes: the engine takes them
    return statement


@functools.cache
def _new_document(columns: tuple[str, ...]) -> Any:
    # Exactly the columns given: the values _new_row sets and the number.
    return insert(_NUMBERED).values({name: bindparam(name) for name in columns})


def _numbered_documents() -> Table:
    """``documents`` as SQLite has it: with ``seq``, which the ORM leaves out."""
    table = _documents.to_metadata(MetaData())
    table.append_column(Column("seq", Integer))
    return table


_NUMBERED = _numbered_documents()
_TOP_SEQ = select(func.coalesce(func.max(_NUMBERED.c.seq), 0).label("top"))


_chunks = cast(Table, BlobChunk.__table__)
_blobs = cast(Table, Blob.__table__)
_NEW_CHUNK = sqlite.insert(cast(Table, BlobChunk.__table__)).on_conflict_do_nothing()
_NEW_BLOB = sqlite.insert(cast(Table, Blob.__table__)).on_conflict_do_nothing()


def claim_rank(claim: Claim) -> tuple[int, datetime, str]:
    """Where the claim's document stands in the queue; lower is sooner."""
    return (-claim.priority, claim.due or _LONG_AGO, claim.document_id)


_LONG_AGO = datetime(1970, 1, 1, tzinfo=UTC)


def _held_parameters(claims: Sequence[Claim]) -> dict[str, Any]:
    # Both lists, not (id, token) pairs: the primary key finds the rows and
    # a token, random and never reused, can only match its own document.
    return {
        "ids": [claim.document_id for claim in claims],
        "tokens": [claim.token for claim in claims],
    }


_DocumentRow = collections.namedtuple(  # type: ignore[misc]
    "_DocumentRow", [str(column.key) for column in Document.__table__.columns]
)


def _inserted_row(values: dict[str, Any]) -> Any:
    """A new documents row as RETURNING would read it: unset columns are NULL."""
    return _DocumentRow._make(map(values.get, _DocumentRow._fields))


# Built once: a status read then skips building the statement and, on SQLite,
# compiling it.
_SUMMARY_OF = select(
    Document.__table__,
    DocumentContent.pages,
    DocumentContent.children,
    DocumentContent.warnings,
    (DocumentContent.document_id.is_not(None)).label("has_content"),
).outerjoin(DocumentContent, DocumentContent.document_id == Document.id)
_SUMMARY = _SUMMARY_OF.where(Document.id == bindparam("document_id"))
# The same read for several documents at once (see RowReader.first_by_key).
_SUMMARIES = _SUMMARY_OF.where(
    Document.id == func.any(bindparam("document_ids", type_=ARRAY(String)))
)


# What a status event shows (api.events), for one document and for several.
_STATUS_OF = select(
    Document.id,
    Document.status,
    Document.attempts,
    Document.progress,
    Document.error_code,
    Document.error_message,
    Document.client_ref,
)
_STATUS = _STATUS_OF.where(Document.id == bindparam("document_id"))
_STATUSES = _STATUS_OF.where(
    Document.id == func.any(bindparam("document_ids", type_=ARRAY(String)))
)


# Built once: the API counts on submissions (see api.submit.PendingGauge),
# and building the statement cost more than the count.
_PENDING_COUNT = select(func.count()).where(_IS_PENDING)
# One arbitrary 64-bit key: the lock that PostgreSQL submissions count under.
_PENDING_LOCK = text("SELECT pg_advisory_xact_lock(7306292710405662032)")
_PENDING_COUNT_UP_TO = select(func.count().label("pending")).select_from(
    select(_documents.c.id).where(_IS_PENDING).limit(bindparam("up_to")).subquery()
)


def _by_parser(
    query: Select[Any],
    parser: str,
    before: tuple[datetime, str] | None,
    limit: int,
) -> Select[Any]:
    """
    A page of ``query``'s documents submitted with ``parser`` or parsed by it
    since, newest first, after the cursor ``before``.

    Each half is read newest first from its own index, up to a page, with
    ``query``'s other conditions tested on the way (migration 0010); the
    page is the newest of the two halves together. One condition with OR
    over both halves could use neither index: it walked every document.
    """
    newest = (Document.created_at.desc(), Document.id.desc())
    submitted = query.where(Document.parser == parser)
    parsed = query.join(
        DocumentFields, DocumentFields.document_id == Document.id
    ).where(DocumentFields.parser == parser)
    if before is not None:
        submitted = submitted.where(search.older_than(before))
        parsed = parsed.where(
            tuple_(DocumentFields.document_created_at, DocumentFields.document_id)
            < tuple_(
                literal(before[0], DocumentFields.document_created_at.type),
                literal(before[1], DocumentFields.document_id.type),
            )
        )
    submitted_ids = (
        submitted.with_only_columns(Document.id).order_by(*newest).limit(limit)
    )
    parsed_ids = (
        parsed.with_only_columns(Document.id)
        .order_by(
            DocumentFields.document_created_at.desc(),
            DocumentFields.document_id.desc(),
        )
        .limit(limit)
    )
    either = union(
        select(submitted_ids.subquery().c.id), select(parsed_ids.subquery().c.id)
    )
    return (
        select(Document.__table__)
        .where(Document.id.in_(either))
        .order_by(*newest)
        .limit(limit)
    )


def _documents_using(key: str) -> Any:
    """How many documents name the stored original ``key``."""
    return select(func.count()).select_from(Document).where(Document.storage_key == key)


def _fresh_start(now: datetime) -> dict[str, Any]:
    """The values that queue a document again as if it were new."""
    return {
        "status": PENDING,
        "attempts": 0,
        "next_attempt_at": now,
        "updated_at": now,
        "started_at": None,
        "finished_at": None,
        "error_code": None,
        "error_message": None,
        "progress": None,
        "duplicate_of": None,
        # A completed document keeps its last claim token; a pending one
        # with a token is held by a worker.
        "claim_token": None,
        "lease_expires_at": None,
    }


def _result_copy(original: Row[Any], now: datetime) -> dict[str, Any]:
    """The columns a dedupe submission takes from the completed document."""
    return {
        "status": COMPLETED,
        "duplicate_of": original.id,
        "started_at": now,
        "finished_at": now,
        "mime_type": original.mime_type,
        "word_count": original.word_count,
        "char_count": original.char_count,
        "page_count": original.page_count,
        "doc_metadata": original.doc_metadata,
        "processing_ms": 0.0,
    }
