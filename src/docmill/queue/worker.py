"""
The worker: claim a document, extract it in a child process, record the outcome.

A worker runs ``concurrency`` slots. Each slot owns one extraction child and
loops: take the next claimed document, record its start while the child
reads it, then complete or fail it in one fenced transaction. While the
child reads one document, the slot queues the next two in it (sent, not
started: the child reads requests in order), and records the start of each
when the child answers the one before. A claimer task keeps documents held for the slots
(still pending, no attempt counted), claiming several per transaction, so a
slot starts its next document without waiting on a claim; it sleeps until
this process queues a document or the poll interval passes, and makes a held
claim give way to a more urgent document. One heartbeat task renews the
leases of every document the worker holds and notices those it lost.

A URL submission never reaches a slot as such: the claimer hands it to a
fetch task of its own (at most ``DOCMILL_FETCH_CONCURRENCY`` at once), which
records its start, downloads the original and attaches it; the document
then waits for a slot as a local one, its start already counted. So a slot
only ever reads local bytes, and a slow server holds a fetch, not a slot.

A kill of the child (timeout, crash, lost lease) takes the queued documents
with it unread: they go to a fresh child, in their order, their attempts not
counted twice. A queued document whose claim is lost, or that stopping gives
back, is never read: the child is stopped when it answers the one before.

Shutdown (``stop``) stops claiming at once, gives back the documents claimed
ahead and those being fetched, lets running extractions finish for a grace
period, then kills the rest and releases their documents (queued ones too)
so another worker takes them without waiting for the lease to run out.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import logging
import math
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from sqlalchemy.exc import DBAPIError

from docmill.db.errors import log_failure, unwritable
from docmill.exceptions import (
    ExtractionError,
    FetchError,
    LeaseLost,
    StorageError,
    UnstorableResult,
)
from docmill.extract.base import Source
from docmill.extract.child import ExtractionChild
from docmill.fetch import fetch_to_storage
from docmill.metrics import observe_extraction
from docmill.parsing.service import run_after_completion, run_before_completion
from docmill.queue.ids import default_worker_id
from docmill.queue.outbox import Outbox
from docmill.queue.store import Claim, JobStore, claim_rank, utcnow
from docmill.settings import Settings
from docmill.storage import Storage, check_writable, small_original
from docmill.webhooks import DeliveryLoop

logger = logging.getLogger(__name__)

# Pauses between tries of a result write that met another database error
# (a deadlock, say): a few, then the document is left to its lease.
_STORE_RETRY_DELAYS = (0.1, 0.5, 2.0)
# The first and the longest pause between tries of a result or failure
# that the store refused for a reason of its own (see Worker._until_stored).
_UNSTORED_FIRST_SECONDS = 0.5
_UNSTORED_MOST_SECONDS = 5.0
# Results a slot may have waiting for their write while its child reads on.
_STORING_PER_SLOT = 2
# Documents a slot keeps queued in its child behind the one it reads. With
# one, a child that read a small document (a millisecond or two) before the
# event loop had handled its answer to the one before waited for the next:
# 40-54 waits of 1-19 ms in 300 corpus documents through one slot. Two cut
# them by a fifth; the rest are runs of small documents read faster than
# the loop answers each, which only less loop work per document would
# close (docs/design.md, "Two deep").
_QUEUED_PER_CHILD = 2
# Claimed documents kept waiting for each slot (see Worker._claim_ahead).
_WAITING_PER_SLOT = {"sqlite": 4}
_WAITING_PER_SLOT_ELSEWHERE = 2
# Between tries of a write to the data dir after a local I/O failure.
_LOCAL_RETRY_SECONDS = 5.0


T = TypeVar("T")


class _LocalTrouble(Exception):
    """This worker could not write or read a local file for a document."""


class _GivenBack(Exception):
    """A result that waited for the store was dropped, its document released."""


class _Held:
    """
    A claim this worker holds: waiting for a fetch or a slot, being fetched,
    or being read by a slot.
    """

    def __init__(self, claim: Claim) -> None:
        self.claim = claim
        self.progress: dict[str, Any] = {}
        self.reported: dict[str, Any] = {}
        # The fetch task or slot task working on the document; None while
        # it waits.
        self.task: asyncio.Task[Any] | None = None
        # Whether the start is recorded (the document shows processing).
        self.started = False
        # The document's parser as its start found it.
        self.parser: str | None = None


@dataclasses.dataclass(eq=False)
class _Reading:
    """A document a slot has taken: read by its child, or queued behind."""

    claim: Claim
    entry: _Held
    # The original's local copy, open while the child may read it.
    original: contextlib.AsyncExitStack
    # When the child began it (perf_counter), for the durations logged.
    taken: float
    # What the child reads: a small original's bytes, or a local file.
    source: Source | None = None
    # The start's write, made when the child begins the document.
    start: asyncio.Task[bool] | None = None
    # The event loop's time when the child began it: its deadline runs from here.
    since: float = 0.0
    # Taken to be queued behind another document in the child.
    behind: bool = False
    # Sent to the child and not yet begun.
    queued: bool = False
    # The child process it was sent to (ExtractionChild.generation).
    generation: int = 0

    def in_child(self, child: ExtractionChild) -> bool:
        """Whether ``child`` holds this document, sent and unanswered."""
        return (
            self.queued and self.generation == child.generation and child.unanswered > 0
        )


class Worker:
    """
    Processes queued documents until stopped.

    Args:
        store: the job store to claim from.
        storage: where originals are read.
        settings: leases, timeouts and limits.
        concurrency: number of slots (extraction children).
        worker_id: the name recorded on claims; see ``ids.default_worker_id``.
    """

    def __init__(
        self,
        store: JobStore,
        storage: Storage,
        settings: Settings,
        concurrency: int,
        worker_id: str | None = None,
    ) -> None:
        self.store = store
        self.storage = storage
        self.settings = settings
        self.concurrency = concurrency
        self.worker_id = worker_id or default_worker_id()
        self._stopping = asyncio.Event()
        # Wakes the claimer: new work was queued, or a slot took a claim.
        self._wakeup = asyncio.Event()
        # Slots wait on this for a claim (or for the queue to run dry).
        self._claims_changed = asyncio.Condition()
        self._ready: collections.deque[Claim] = collections.deque()
        # URL claims waiting for a fetch task, most urgent first, and the
        # fetch tasks running (see _fetch_stage).
        self._to_fetch: collections.deque[Claim] = collections.deque()
        self._fetches: dict[asyncio.Task[None], _Held] = {}
        self._held: dict[str, _Held] = {}
        self._dry = False
        self._draining = False
        # Set while the data dir refuses writes: no claims until it takes one.
        self._local_trouble = False
        # Claim tokens of documents whose result or failure the store
        # refused (full, unreachable): no claims while there are any.
        self._unstored: set[str] = set()
        self._swapping = False
        self._slots: list[asyncio.Task[None]] = []
        self._busy = 0
        # Slots waiting for a claim: they go before a queue in a busy child.
        self._idle_slots = 0
        self._lost_tokens: set[str] = set()
        # Whether work may have been queued since the claimer last looked
        # for documents that outrank its waiting claims (see _make_way).
        self._news = True
        self._looked_at = -math.inf
        # Whether the last try to claim work failed (the database could not
        # be had): a drained run that ends on it did not find the queue empty.
        self.claim_failed = False
        store.on_enqueue(self._queued)
        self.deliveries = DeliveryLoop(
            Outbox(
                store.engine,
                settings.webhook_max_attempts,
                settings.webhook_retry_base_seconds,
                # The sync reader is the saving; on PostgreSQL the probe
                # would open RowReader's asyncpg pool at the worker's start,
                # and a worker stopped while it opens leaves its connections.
                reads=store.reads if store.engine.dialect.name == "sqlite" else None,
            ),
            settings,
        )

    def wake(self) -> None:
        self._queued()
        self.deliveries.wakeup.set()

    def _queued(self) -> None:
        """Work was queued (here, or NOTIFY says elsewhere): wake the claimer."""
        self._news = True
        self._wakeup.set()

    async def run(self, *, drain: bool = False) -> None:
        """
        Run the slots until ``stop`` is called (or, with ``drain``, until no
        document is due).
        """
        logger.info(
            "worker %s started with %d slot(s)",
            self.worker_id,
            self.concurrency,
            extra={"action": "worker_started", "worker_id": self.worker_id},
        )
        self._draining = drain
        await self._recover_orphans()
        claimer = asyncio.create_task(self._claim_ahead())
        helpers = [
            asyncio.create_task(self._maintain()),
            asyncio.create_task(self.deliveries.run()),
            asyncio.create_task(self._keep_leases()),
        ]
        if self.store.engine.dialect.name == "postgresql":
            helpers.append(asyncio.create_task(self._listen()))
        self._slots = [
            asyncio.create_task(self._run_slot(index, drain))
            for index in range(self.concurrency)
        ]
        try:
            # Slots that `stop` cancelled after the grace period end cancelled;
            # that is the planned way out, not an error of the worker.
            outcomes = await asyncio.gather(*self._slots, return_exceptions=True)
            for outcome in outcomes:
                if isinstance(outcome, Exception):
                    raise outcome
        finally:
            # The claimer finishes a claim it has begun, and gives back what
            # it took, rather than be cancelled between commit and bookkeeping.
            self._stopping.set()
            self._wakeup.set()
            await asyncio.gather(claimer, return_exceptions=True)
            # Before the waiting claims go back: a fetch that ends now puts
            # its document among them.
            await asyncio.shield(self._stop_fetches())
            for task in helpers:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await asyncio.shield(self._release_waiting())
            logger.info(
                "worker %s stopped",
                self.worker_id,
                extra={"action": "worker_stopped", "worker_id": self.worker_id},
            )

    async def stop(self, grace_seconds: float | None = None) -> None:
        """Stop claiming; give running extractions ``grace_seconds`` to finish."""
        grace = (
            self.settings.shutdown_grace_seconds
            if grace_seconds is None
            else grace_seconds
        )
        self._stopping.set()
        self._wakeup.set()
        await self._notify_slots()
        slots = [slot for slot in self._slots if not slot.done()]
        logger.info(
            "worker %s stopping: no new claims; %d running document(s) get %gs "
            "to finish; %d fetch(es) given back",
            self.worker_id,
            self._busy,
            grace,
            len(self._fetches),
            extra={"action": "worker_stopping", "worker_id": self.worker_id},
        )
        # No grace for a fetch: no slot would take its document now, and
        # another worker fetches it again from the start at no charge.
        await self._stop_fetches()
        if not slots:
            return
        _done, pending = await asyncio.wait(slots, timeout=grace)
        for slot in pending:
            slot.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    async def _recover_orphans(self) -> None:
        try:
            await self.store.reclaim_from_dead_workers(socket.gethostname())
        except Exception as exc:
            log_failure(logger, "could not recover documents of dead workers", exc)

    async def _listen(self) -> None:
        """
        Wake the claimer on PostgreSQL's NOTIFY, so new work starts at once.

        Polling stays as the fallback: a notification lost while this
        connection is being re-established costs at most one poll interval.
        """
        from docmill.queue.store import NOTIFY_CHANNEL

        def on_notify(*_args: object) -> None:
            self._queued()

        # Said once per outage, not at every try: a database down for a
        # minute wrote a hundred of the same warning per process.
        lost = False
        while True:
            try:
                async with self.store.engine.connect() as connection:
                    raw = await connection.get_raw_connection()
                    driver: Any = raw.driver_connection
                    await driver.add_listener(NOTIFY_CHANNEL, on_notify)
                    if lost:
                        lost = False
                        logger.info(
                            "LISTEN connection is back",
                            extra={"action": "listen_restored"},
                        )
                    try:
                        while not driver.is_closed():
                            await asyncio.sleep(1.0)
                    finally:
                        if not driver.is_closed():
                            await driver.remove_listener(NOTIFY_CHANNEL, on_notify)
            except asyncio.CancelledError:
                raise
            except Exception:
                if not lost:
                    lost = True
                    logger.warning(
                        "LISTEN connection lost; polling until it is back",
                        extra={"action": "listen_lost"},
                    )
            await asyncio.sleep(self.settings.poll_seconds)

    async def _maintain(self) -> None:
        interval = min(self.settings.lease_seconds / 2, 5.0)
        while True:
            await asyncio.sleep(interval)
            if self._unstored:
                # A lease of its own may have run out in an outage of the
                # database; the store back, this worker renews it and stores
                # the result rather than take it from itself and count the
                # attempt. Other workers' recovery still can (design.md).
                continue
            try:
                await self.store.reclaim_expired()
            except Exception as exc:
                log_failure(logger, "could not reclaim expired leases", exc)

    # -- claiming ahead ------------------------------------------------------

    async def _claim_ahead(self) -> None:
        """
        Keep documents ready for the slots, claimed in batches.

        A slot that finishes a document takes the next one at once instead
        of opening a write transaction for it, and one transaction claims
        for several slots. A slot also queues two in its child behind the
        document it reads, so the child never waits for the event loop
        between documents; for that, a waiting document must be there
        whenever a slot hands its child one, and a claim on SQLite waits
        for a group commit and its fsync (10-25 ms on a busy machine, in
        which two slots read several documents). So up to four per slot
        are kept there, refilled when fewer than two per slot wait; on
        PostgreSQL, where a claim needs no fsync of the one writer and
        several workers share the queue, two, refilled below one. The cost:
        a worker holds up to six documents per slot that it has not started
        (waiting here, or queued in a child), which an idle worker elsewhere
        could have taken. Their leases are renewed like the running ones.
        """
        per_slot = _WAITING_PER_SLOT.get(
            self.store.engine.dialect.name, _WAITING_PER_SLOT_ELSEWHERE
        )
        low = per_slot // 2 * self.concurrency
        while not self._stopping.is_set():
            if self._local_trouble:
                await self._until_writable()
                continue
            if self._unstored:
                # What it claimed now would wait for the store as well.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        self._stopping.wait(), self.settings.poll_seconds
                    )
                continue
            self._wakeup.clear()
            # URL claims waiting for a fetch task count as waiting claims,
            # so a queue of URLs does not have this worker hold them all;
            # those being fetched do not, or slots would wait on them.
            # Known gap: a local document behind more URLs than the fetch tasks
            # and these places take still waits for fetches to end, since
            # a claim takes documents in queue order whatever they are; a
            # claim of URLs apart, up to the free fetch tasks, would not.
            waiting = len(self._ready) + len(self._to_fetch)
            want = per_slot * self.concurrency - waiting
            if waiting >= low:
                if self._news or self._looked_at + self.settings.poll_seconds <= (
                    time.monotonic()
                ):
                    await self._make_way()
                await self._wakeup.wait()
                continue
            try:
                claims = await self.store.claim_batch(self.worker_id, want)
            except Exception as exc:
                # A database that is down or restarting: keep trying after a
                # pause instead of spinning or dying.
                log_failure(logger, "could not claim work; retrying", exc)
                claims = []
                self.claim_failed = True
            else:
                self.claim_failed = False
            if self._stopping.is_set():
                # Claimed while `stop` began: give them straight back.
                for claim in claims:
                    await self._release(claim)
                return
            self._hold(claims)
            self._dry = len(claims) < want
            await self._notify_slots()
            if self._dry:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        self._wakeup.wait(), self.settings.poll_seconds
                    )

    async def _until_writable(self) -> None:
        """Wait (or stop) until a write to the data dir succeeds again."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), _LOCAL_RETRY_SECONDS)
        if self._stopping.is_set():
            return
        try:
            await asyncio.to_thread(check_writable, self.settings.data_dir)
        except OSError:
            return
        self._local_trouble = False
        logger.info(
            "worker %s: its data dir takes writes again; claiming resumes",
            self.worker_id,
            extra={"action": "local_io_recovered", "worker_id": self.worker_id},
        )

    def _hold(self, claims: Sequence[Claim]) -> None:
        local: list[Claim] = []
        urls: list[Claim] = []
        for claim in claims:
            self._held.setdefault(claim.token, _Held(claim))
            (urls if claim.source_url else local).append(claim)
        # Slots take the most urgent first, as the queue would hand them out,
        # but a fetched document first of all (see the end of _fetch_stage).
        fetched, waiting = self._fetched_and_waiting()
        self._ready = collections.deque(
            [*fetched, *sorted([*waiting, *local], key=claim_rank)]
        )
        if urls:
            self._to_fetch = collections.deque(
                sorted([*self._to_fetch, *urls], key=claim_rank)
            )
            self._start_fetches()

    def _started(self, claim: Claim) -> bool:
        entry = self._held.get(claim.token)
        return entry is not None and entry.started

    def _fetched_and_waiting(self) -> tuple[list[Claim], list[Claim]]:
        """
        The claims waiting for a slot, in their order: those the fetch stage
        started, which stay first, and the others, which are still holds.
        """
        fetched: list[Claim] = []
        waiting: list[Claim] = []
        for claim in self._ready:
            (fetched if self._started(claim) else waiting).append(claim)
        return fetched, waiting

    async def _make_way(self) -> None:
        """
        Swap waiting claims for due documents of a higher priority.

        A document held for a slot is not started yet, so a more urgent one
        that arrived since should go first. One cheap read per wake-up says
        whether there is such a document; only then does a transaction take
        it and give back the least urgent waiting claim.
        """
        # Woken by a slot taking a claim (twice a document under load), it
        # looked each time, and that was about 3% of a busy event loop; but
        # taking a claim makes no document outrank the rest. A look now
        # follows work queued in this process (or announced by NOTIFY), or
        # else waits a poll interval: documents that other processes queue,
        # or retries that come due, are seen within one, as a claim is.
        self._news = False
        self._looked_at = time.monotonic()
        # A fetched document has started: it is not a hold to give back.
        _fetched, waiting = self._fetched_and_waiting()
        if not waiting:
            return
        try:
            due = await self.store.outranking_due_at(
                min(claim.priority for claim in waiting)
            )
        except Exception as exc:
            log_failure(logger, "could not look for more urgent documents", exc)
            return
        if due is None or due > utcnow():
            return
        # Out of the slots' reach meanwhile: a slot must not start a claim
        # that the swap gives back (nor, draining, think the queue empty).
        fetched, _waiting = self._fetched_and_waiting()
        self._ready = collections.deque(fetched)
        self._swapping = True
        try:
            taken, given_back = await self.store.claim_ahead_of(self.worker_id, waiting)
        except Exception as exc:
            log_failure(logger, "could not take more urgent documents", exc)
            taken, given_back = [], []
        finally:
            self._swapping = False
        for claim in given_back:
            self._held.pop(claim.token, None)
        kept = [claim for claim in waiting if claim.token in self._held]
        self._hold([*kept, *taken])
        await self._notify_slots()

    async def _notify_slots(self) -> None:
        async with self._claims_changed:
            self._claims_changed.notify_all()

    async def _next_claim(self, drain: bool) -> Claim | None:
        """The next claimed document; None when stopping, or drained."""

        def settled() -> bool:
            return (
                bool(self._ready)
                or self._stopping.is_set()
                or (
                    drain
                    and self._dry
                    and self._busy == 0
                    and not self._swapping
                    and not self._fetches
                    and not self._to_fetch
                )
            )

        self._idle_slots += 1
        try:
            async with self._claims_changed:
                await self._claims_changed.wait_for(settled)
        finally:
            self._idle_slots -= 1
        if self._stopping.is_set() or not self._ready:
            return None
        claim = self._ready.popleft()
        self._wakeup.set()
        return claim

    async def _release_waiting(self) -> None:
        """
        Give back the documents claimed ahead that no slot took: fetched
        ones too, their attempt uncounted and their original kept.
        """
        for waiting in (self._ready, self._to_fetch):
            while waiting:
                claim = waiting.popleft()
                self._held.pop(claim.token, None)
                await self._release(claim)

    # -- leases --------------------------------------------------------------

    async def _keep_leases(self) -> None:
        """
        Renew the leases of every held document, and notice lost ones.

        One statement a tick covers all of them. Between renewals, a read by
        primary key notices at once that a document was cancelled or
        deleted, so its extraction stops within a second, not a third of a
        lease.
        """
        interval = self.settings.lease_seconds / 3
        tick = min(interval, 1.0)
        renewed = time.monotonic()
        while True:
            await asyncio.sleep(tick)
            held = list(self._held.values())
            if not held:
                continue
            lost: set[str] = set()
            try:
                for entry in held:
                    if entry.started and entry.progress != entry.reported:
                        snapshot = dict(entry.progress)
                        try:
                            await self.store.renew_lease(entry.claim, snapshot)
                        except LeaseLost:
                            lost.add(entry.claim.token)
                        else:
                            entry.reported = snapshot
                claims = [entry.claim for entry in held]
                if time.monotonic() - renewed >= interval:
                    lost |= await self.store.renew_leases(claims)
                    renewed = time.monotonic()
                else:
                    lost |= await self.store.lost_claims(claims)
            except Exception as exc:
                log_failure(logger, "could not renew leases", exc)
            for token in lost:
                self._drop(token)

    def _drop(self, token: str) -> None:
        """Stop holding a lost claim: cancel its slot, or forget it unstarted."""
        entry = self._held.pop(token, None)
        if entry is None:
            return  # finished meanwhile
        if entry.task is not None:
            self._lost_tokens.add(token)
            entry.task.cancel()
            return
        for waiting in (self._ready, self._to_fetch):
            with contextlib.suppress(ValueError):
                waiting.remove(entry.claim)
        self._wakeup.set()  # the claimer may refill its place
        logger.warning(
            "document %s dropped %s: cancelled, deleted or taken over",
            entry.claim.document_id,
            "while it waited for a slot" if entry.started else "before it started",
            extra=_fields("lease_lost", entry.claim),
        )

    # -- processing ----------------------------------------------------------

    async def _run_slot(self, index: int, drain: bool) -> None:
        child = ExtractionChild(
            self.settings.extraction_limits(),
            self.settings.job_memory_mb,
            self.settings.extractor_plugins,
        )
        # Results of the slot's previous documents, still being stored while
        # the child already reads the next one. A bounded few, so results
        # never pile up in memory when the database is slow; with only one,
        # the slot waited on the writer's commit (and its fsync) before each
        # next document, and its child sat idle meanwhile.
        storing: collections.deque[asyncio.Task[None]] = collections.deque()
        # The documents taken for the child behind the one it reads, in the
        # order it reads them: the first may have begun (see _begin_next).
        queued: collections.deque[_Reading] = collections.deque()
        try:
            while True:
                if queued and queued[0].start is None and self._stopping.is_set():
                    # Not begun (a kill took it along): stopping gives it
                    # back unread, as it does the claims waiting for a slot.
                    break
                if queued:
                    reading = queued.popleft()
                else:
                    claim = await self._next_claim(drain)
                    if claim is None:
                        break
                    reading = self._take(claim)
                task = None
                try:
                    task = await self._read(reading, child, queued)
                except Exception:
                    # One document's trouble must not end the slot, and with
                    # it the worker: its lease expires and it is claimed again.
                    # What the child holds is unknown now: a fresh one reads
                    # the documents queued behind (one already begun is sent
                    # again, see _send_again).
                    child.kill()
                    self._held.pop(reading.claim.token, None)
                    logger.exception(
                        "document %s: unexpected error; left to its lease",
                        reading.claim.document_id,
                    )
                finally:
                    if task is None:
                        await self._done_with_one(drain)
                if task is not None:
                    storing.append(task)
                    while len(storing) > _STORING_PER_SLOT or (
                        storing and storing[0].done()
                    ):
                        await self._settle(storing.popleft())
        finally:
            child.close()
            await asyncio.shield(self._give_back_all(queued))
            while storing:
                # Stopping: a result the child has produced is still worth
                # its short write.
                await self._settle(storing.popleft())

    async def _settle(self, storing: asyncio.Task[None]) -> None:
        """Wait for a result write; its failure is logged, not raised."""
        try:
            await asyncio.shield(storing)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("a result could not be stored; left to its lease")

    async def _done_with_one(self, drain: bool) -> None:
        self._busy -= 1
        if drain:
            await self._notify_slots()

    def _take(self, claim: Claim) -> _Reading:
        self._busy += 1
        entry = self._held.get(claim.token) or _Held(claim)
        return _Reading(claim, entry, contextlib.AsyncExitStack(), time.perf_counter())

    def _take_ahead(self, depth: int) -> _Reading | None:
        """
        A claimed document to queue in the child behind the ``depth`` it
        holds already, unless an idle slot needs it.

        A second one is taken only while each other slot could still find
        one waiting: at the end of a burst, a document queued deep in one
        child would wait there while another child sat idle.

        Only looked for as the child begins a document: one claimed later
        waits for the next answer, which is why the claimer keeps several
        per slot.
        """
        spare = len(self._ready) - self._idle_slots
        if depth:
            spare -= self.concurrency - 1
        if spare <= 0 or self._stopping.is_set():
            return None
        claim = self._ready.popleft()
        self._wakeup.set()
        reading = self._take(claim)
        reading.behind = True
        return reading

    async def _read(
        self,
        reading: _Reading,
        child: ExtractionChild,
        queued: collections.deque[_Reading],
    ) -> asyncio.Task[None] | None:
        """
        Have the child read ``reading``, with up to ``_QUEUED_PER_CHILD``
        documents of the slot's ``queued`` behind it; the task that stores
        the result, or None when the document ended here (failed, or lost).
        On return the first of ``queued`` has begun if the child holds it.
        """
        if reading.behind and reading.claim.token not in self._held:
            # Lost since it began: the child must not go on reading it (and
            # takes any queued behind with it; they go to a fresh one).
            if reading.start is not None:
                child.kill()
                await asyncio.shield(_settled(reading.start))
            await reading.original.aclose()
            return None
        reading.entry.task = asyncio.current_task()
        try:
            if reading.start is None:
                await self._hand_over(reading, child)
            elif not reading.in_child(child):
                await self._send_again(reading, child)
            await self._fill_child(child, queued)
            # The claim's token goes with each request and comes back with
            # its answer: should the slot ever lose track of what its child
            # holds, no other document's text is stored as this one's.
            payload = await child.receive(
                self.settings.job_timeout_seconds,
                reading.since,
                on_progress=reading.entry.progress.update,
                tag=reading.claim.token,
            )
        except _LocalTrouble as exc:
            await self._put_back(reading, exc)
            return None
        except (ExtractionError, StorageError) as exc:
            # No longer held: a lost lease now must not cancel this slot.
            self._held.pop(reading.claim.token, None)
            await self._begin_next(queued, child)
            await reading.original.aclose()
            await self._fail(reading, exc)
            return None
        except asyncio.CancelledError:
            child.kill()
            claim = reading.claim
            await asyncio.shield(reading.original.aclose())
            self._held.pop(claim.token, None)
            if reading.start is not None:
                # Whichever the start got to, the release undoes it.
                await asyncio.shield(_settled(reading.start))
            if not self._lost(claim):
                await asyncio.shield(self._release(claim))
                await asyncio.shield(self._give_back_all(queued))
                raise
            # The documents queued behind were not begun: a fresh child
            # gets them.
            return None
        except BaseException:
            child.kill()
            await asyncio.shield(reading.original.aclose())
            if reading.start is not None:
                await asyncio.shield(_settled(reading.start))
            await asyncio.shield(self._give_back_all(queued, "after an error"))
            raise
        # From here on a lost lease cancels the storing task, not this slot,
        # which moves on to its next document. The start's commit is awaited
        # by the storing task, not here: the slot goes on at once instead of
        # waiting on the writer (a group commit and its fsync).
        assert reading.start is not None and reading.source is not None
        task = asyncio.create_task(
            self._store_result(
                reading.claim,
                reading.entry,
                reading.start,
                payload,
                reading.original,
                reading.source,
                reading.taken,
            )
        )
        reading.entry.task = task
        await self._begin_next(queued, child)
        return task

    async def _hand_over(self, reading: _Reading, child: ExtractionChild) -> None:
        """Start ``reading`` and send it to the (idle) child."""
        claim = reading.claim
        assert claim.source_url is None, "a URL goes to the fetch stage"
        if not reading.entry.started:
            _log_processing(claim, self.worker_id)
        # The start is written while the child already reads: nothing this
        # process does with the document (result, failure) happens before
        # it has committed, so a crash of this process before then cannot
        # have been the document's doing.
        reading.taken = time.perf_counter()
        reading.start = asyncio.create_task(self._start(reading.entry))
        try:
            if reading.source is None:
                reading.source = await self._original(reading)
        except OSError as exc:
            raise _LocalTrouble(str(exc)) from exc
        reading.since = asyncio.get_running_loop().time()
        await child.send(
            reading.source,
            reading.claim.filename,
            tag=reading.claim.token,
            charset=reading.claim.charset,
        )

    async def _send_again(self, reading: _Reading, child: ExtractionChild) -> None:
        """
        Send a begun document to a fresh child: the one it began in was
        killed since, after an unexpected error with the document before.
        Its start stands (the attempt is counted once), and the fresh child
        must read it first, or its next answer would be taken for this one.
        """
        assert reading.source is not None
        reading.since = asyncio.get_running_loop().time()
        await child.send(
            reading.source,
            reading.claim.filename,
            tag=reading.claim.token,
            charset=reading.claim.charset,
        )
        reading.generation = child.generation

    async def _fill_child(
        self, child: ExtractionChild, queued: collections.deque[_Reading]
    ) -> None:
        """
        Queue documents in the child behind the one it reads: first, in
        their order, those a killed child took with it unread, then more
        claims, up to ``_QUEUED_PER_CHILD``. The child answers in the order
        it was sent, and the slot reads answers in the order of ``queued``,
        so nothing is sent behind a document that could not be. Stopping,
        nothing more is sent: what is queued goes back unread.
        """
        if self._stopping.is_set():
            return
        for ahead in queued:
            if not ahead.in_child(child) and not await self._queue_behind(ahead, child):
                return
        while len(queued) < _QUEUED_PER_CHILD:
            taken = self._take_ahead(len(queued))
            if taken is None:
                return
            queued.append(taken)
            if not await self._queue_behind(taken, child):
                return

    async def _queue_behind(self, ahead: _Reading, child: ExtractionChild) -> bool:
        """
        Send ``ahead`` to the child behind the documents it holds; False if
        it was not sent. An original that cannot be had now (missing, or its
        read refused by the database) is left for the hand-over, which
        records the failure or meets the trouble as its own: it is not the
        running document's, whose reading went on.
        """
        if ahead.source is None:
            try:
                ahead.source = await self._original(ahead)
            except (StorageError, OSError):
                return False
            except Exception as exc:
                log_failure(
                    logger,
                    f"could not read the original of document "
                    f"{ahead.claim.document_id} to queue it",
                    exc,
                )
                return False
        await child.send(
            ahead.source,
            ahead.claim.filename,
            tag=ahead.claim.token,
            charset=ahead.claim.charset,
        )
        ahead.queued = True
        ahead.generation = child.generation
        logger.debug(
            "document %s queued in the child behind another",
            ahead.claim.document_id,
            extra=_fields("document_queued", ahead.claim),
        )
        return True

    async def _original(self, reading: _Reading) -> Source:
        """
        The original for the child: a small one's bytes from its row (no
        scratch file to write, and none for the child to open), anything
        else a local copy, kept until the result is stored.
        """
        claim = reading.claim
        data = await small_original(self.storage, claim.storage_key, claim.size_bytes)
        if data is not None:
            return data
        return await reading.original.enter_async_context(
            self.storage.local_copy(claim.storage_key)
        )

    async def _begin_next(
        self, queued: collections.deque[_Reading], child: ExtractionChild
    ) -> None:
        """
        The child has answered: the first document queued behind began
        then, so its start is written and its deadline runs from here. A
        queued document whose claim was lost, or that stopping gives back,
        must not be read: the child is stopped before it gets far. One the
        child does not hold (a kill took it along, or it was never sent) is
        left to a hand-over to a fresh child.
        """
        if not queued:
            return
        ahead = queued[0]
        if self._stopping.is_set():
            if ahead.in_child(child):
                child.kill()
            await self._give_back_all(queued)
            return
        if ahead.claim.token not in self._held:
            if ahead.in_child(child):
                child.kill()
            queued.popleft()
            await self._give_back(ahead)
            return
        if not ahead.in_child(child):
            return
        if not ahead.entry.started:
            _log_processing(ahead.claim, self.worker_id)
        ahead.start = asyncio.create_task(self._start(ahead.entry))
        ahead.since = asyncio.get_running_loop().time()
        ahead.taken = time.perf_counter()

    async def _put_back(self, reading: _Reading, exc: _LocalTrouble) -> None:
        """Give back a document whose original could not be had here."""
        self._held.pop(reading.claim.token, None)
        await asyncio.shield(reading.original.aclose())
        if reading.start is not None:
            await asyncio.shield(_settled(reading.start))
        await self._give_back_local(reading.claim, exc)

    async def _give_back_local(self, claim: Claim, exc: Exception) -> None:
        """
        Release a document this worker could not handle for a local reason
        (a full or failing data disk): it is not the document's fault, so
        its attempt is not counted, and claiming pauses until the data dir
        takes a write (see ``_claim_ahead``).
        """
        self._held.pop(claim.token, None)
        if not self._local_trouble:
            self._local_trouble = True
            # Most often a full or failing data disk; an OSError of the
            # database driver or a download lands here too, and then the
            # write check passes at the first try.
            logger.error(
                "worker %s could not get document %s ready here (%s): it gives "
                "documents back uncounted and claims none until a write to "
                "its data dir succeeds",
                self.worker_id,
                claim.document_id,
                exc,
                extra=_fields("local_io_failed", claim),
            )
        await asyncio.shield(self._release(claim, "after a local I/O failure"))
        if self._draining:
            # `--once` ends rather than wait for the disk.
            self._dry = True
            await self._notify_slots()

    async def _give_back_all(
        self, queued: collections.deque[_Reading], why: str = "at shutdown"
    ) -> None:
        """Give back every document queued for a slot, emptying ``queued``."""
        while queued:
            await self._give_back(queued.popleft(), why)

    async def _give_back(self, ahead: _Reading, why: str = "at shutdown") -> None:
        """
        Release a document taken to be queued in the child (unless lost
        meanwhile).
        """
        if ahead.start is not None:
            # Begun, then a stop: whichever the start got to, the release
            # undoes it.
            await _settled(ahead.start)
        try:
            await ahead.original.aclose()
        except OSError as exc:
            # Its release must not depend on it: left held, its lease would
            # be renewed for as long as the worker runs.
            logger.warning(
                "document %s: its local copy could not be closed (%s)",
                ahead.claim.document_id,
                exc,
                extra=_fields("local_copy_left", ahead.claim),
            )
        if self._held.pop(ahead.claim.token, None) is not None:
            await self._release(ahead.claim, why)
        await self._done_with_one(self._draining)

    async def _fail(
        self, reading: _Reading, exc: ExtractionError | StorageError
    ) -> None:
        """Record a failure once the start has committed; never raises."""
        claim = reading.claim
        self._held.pop(claim.token, None)
        assert reading.start is not None
        try:
            if await reading.start:
                code, message, retryable = _failure(exc)
                await self._record_failure(
                    claim, reading.entry, code, message, retryable, reading.taken
                )
        except Exception:
            # One document's trouble (a database error while its failure
            # was recorded, say) must not end the slot, and with it the
            # worker: its lease expires and it is claimed again.
            logger.exception(
                "document %s: unexpected error; left to its lease",
                claim.document_id,
            )

    async def _start(self, entry: _Held) -> bool:
        """
        Record the start; False if the claim was lost before it (the
        heartbeat then stops the slot's work, or the slot sees False first).
        """
        if entry.started:
            return True  # by the fetch stage
        try:
            entry.parser = await self.store.start(entry.claim)
        except LeaseLost:
            logger.warning(
                "document %s dropped before it started: cancelled, deleted or "
                "taken over",
                entry.claim.document_id,
                extra=_fields("lease_lost", entry.claim),
            )
            return False
        entry.started = True
        return True

    async def _store_result(
        self,
        claim: Claim,
        entry: _Held,
        start: asyncio.Task[bool],
        payload: dict[str, Any],
        original: contextlib.AsyncExitStack,
        source: Source,
        started: float,
    ) -> None:
        try:
            try:
                async with original:
                    # Nothing of the document is used before its start has
                    # committed (see _hand_over).
                    if not await start:
                        self._held.pop(claim.token, None)
                        return
                    # A parser attached since the start is returned by the
                    # completion and run after it.
                    parsed = entry.parser is not None
                    if parsed:
                        await run_before_completion(
                            self.store.engine, claim.document_id, payload, source
                        )
            except asyncio.CancelledError:
                self._held.pop(claim.token, None)
                if not self._lost(claim):
                    # Whichever the start got to, the release undoes it.
                    await asyncio.shield(_settled(start))
                    await asyncio.shield(self._release(claim))
                    raise
                return
            except Exception:
                # A start that met a database error: the document is left to
                # its lease, which must then stop being renewed.
                self._held.pop(claim.token, None)
                raise
            # The result is written in one short transaction: its lease needs
            # no more renewal, and a lost one shows as LeaseLost.
            self._held.pop(claim.token, None)
            observe_extraction(payload["mime_type"], time.perf_counter() - started)
            try:
                parser = await self._complete(claim, entry, payload)
            except LeaseLost:
                logger.warning(
                    "document %s result discarded: lease lost before it was stored",
                    claim.document_id,
                    extra=_fields("lease_lost", claim),
                )
                return
            except _GivenBack:
                return
            except UnstorableResult as exc:
                await self._record_failure(
                    claim, entry, exc.code, exc.message, False, started
                )
                return
            except Exception:
                logger.exception(
                    "document %s: its result could not be stored; left to its lease",
                    claim.document_id,
                    extra=_fields("result_not_stored", claim),
                )
                return
            logger.info(
                "document %s completed on %s in %.0f ms",
                claim.document_id,
                self.worker_id,
                (time.perf_counter() - started) * 1000,
                extra=_fields("document_completed", claim),
            )
            if parser is not None and not parsed:
                # A parser attached after the first look (see parsing.service).
                await run_after_completion(
                    self.store.engine,
                    self.storage,
                    claim.document_id,
                    claim.storage_key,
                    payload,
                )
        finally:
            await self._done_with_one(self._draining)

    async def _complete(
        self, claim: Claim, entry: _Held, payload: dict[str, Any]
    ) -> Any:
        """Store the result (see ``_until_stored``)."""
        field = _unencodable_field(payload)
        if field is not None:
            # Either database refuses it (SQLite's JSON columns took it
            # escaped, and every read of it then failed): no retry, and no
            # lease expiry, can store it.
            raise UnstorableResult(claim.document_id, field)
        return await self._until_stored(
            claim, entry, lambda: self.store.complete(claim, payload), "result"
        )

    async def _until_stored(
        self,
        claim: Claim,
        entry: _Held,
        write: Callable[[], Awaitable[T]],
        what: str,
    ) -> T:
        """
        Run ``write``, a document's result or failure, until it commits.

        The store refusing it for a reason of its own (a full disk, a
        database that cannot be reached) is not the document's doing: the
        document is held again, so the heartbeat renews its lease, and the
        write is tried again with backoff for as long as the claim is ours,
        claiming paused meanwhile. A stop gives it back uncounted
        (``_GivenBack``); a lost claim raises LeaseLost, nothing written.

        Another database error is tried again a few times: PostgreSQL can
        end the transaction as a deadlock victim (a cancel or a lease
        reclaim locks ``attempts`` before ``documents``, a completion the
        other way round). Each write is fenced by the claim token, so
        repeating it is safe: if a try did commit, the next finds no claim
        and says LeaseLost.
        """
        retried = 0
        pause = _UNSTORED_FIRST_SECONDS
        while True:
            try:
                outcome = await write()
            except (LeaseLost, asyncio.CancelledError):
                # Lost, or cancelled by a stop past its grace: either way no
                # longer this worker's to wait for (nor to pause claims).
                self._unstored.discard(claim.token)
                raise
            except Exception as exc:
                if unwritable(exc):
                    await self._wait_for_store(claim, entry, exc, what, pause)
                    pause = min(pause * 2, _UNSTORED_MOST_SECONDS)
                    continue
                if not isinstance(exc, DBAPIError) or retried == len(
                    _STORE_RETRY_DELAYS
                ):
                    self._unstored.discard(claim.token)
                    raise
                delay = _STORE_RETRY_DELAYS[retried]
                retried += 1
                logger.warning(
                    "document %s %s not stored (%s); trying again in %.1f s",
                    claim.document_id,
                    what,
                    type(exc.orig or exc).__name__,
                    delay,
                    extra=_fields("store_retry", claim),
                )
                await asyncio.sleep(delay)
                continue
            self._stored(claim)
            return outcome

    async def _wait_for_store(
        self, claim: Claim, entry: _Held, exc: Exception, what: str, pause: float
    ) -> None:
        """
        Hold a document whose ``what`` the store refused for ``pause``
        seconds, its lease renewed; give it back if the worker stops.
        """
        if claim.token not in self._unstored:
            self._unstored.add(claim.token)
            logger.error(
                "document %s: its %s could not be stored (%s: %s); it is kept, "
                "its lease renewed, and tried again until the store takes it; "
                "worker %s claims nothing meanwhile",
                claim.document_id,
                what,
                type(exc).__name__,
                str(exc).splitlines()[0][:200] if str(exc) else "",
                self.worker_id,
                extra=_fields("result_unstored", claim),
            )
        self._held[claim.token] = entry
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), pause)
        except asyncio.CancelledError:
            self._held.pop(claim.token, None)
            self._unstored.discard(claim.token)
            if self._lost(claim):
                raise LeaseLost(claim.document_id) from None
            await asyncio.shield(self._release(claim, f"its {what} not stored"))
            raise
        if self._held.pop(claim.token, None) is None or not self._stopping.is_set():
            return
        # Stopping: the result would be lost with the process anyway; given
        # back, the document is read again elsewhere, its attempt uncounted.
        self._unstored.discard(claim.token)
        await self._release(claim, f"at shutdown, its {what} not stored")
        raise _GivenBack(claim.document_id)

    def _stored(self, claim: Claim) -> None:
        """A write for ``claim`` committed: claiming resumes if it waited."""
        if claim.token not in self._unstored:
            return
        self._unstored.discard(claim.token)
        if not self._unstored:
            logger.info(
                "worker %s: the store takes writes again; claiming resumes",
                self.worker_id,
                extra={"action": "store_recovered", "worker_id": self.worker_id},
            )

    def _lost(self, claim: Claim) -> bool:
        """Whether the heartbeat cancelled this claim's work for a lost lease."""
        if claim.token not in self._lost_tokens:
            return False
        self._lost_tokens.discard(claim.token)
        task = asyncio.current_task()
        if task is not None:
            task.uncancel()  # that cancellation has been dealt with here
        logger.warning(
            "document %s stopped: cancelled, deleted or taken over",
            claim.document_id,
            extra=_fields("lease_lost", claim),
        )
        return True

    # -- fetching ------------------------------------------------------------

    def _start_fetches(self) -> None:
        """Give URL claims waiting for a fetch task one, within the bound."""
        while (
            self._to_fetch
            and len(self._fetches) < self.settings.fetch_concurrency
            and not self._stopping.is_set()
        ):
            claim = self._to_fetch.popleft()
            entry = self._held.get(claim.token)
            if entry is None:
                continue  # lost while it waited
            task = asyncio.create_task(self._fetch_stage(entry))
            entry.task = task
            self._fetches[task] = entry
            task.add_done_callback(self._fetch_cancelled_early)
            self._wakeup.set()  # its place among the waiting claims is free

    def _fetch_cancelled_early(self, task: asyncio.Task[None]) -> None:
        # A fetch task cancelled before its first step ran none of its own
        # cleanup (a task that ran has left the bound already).
        entry = self._fetches.pop(task, None)
        if entry is None:
            return
        self._lost_tokens.discard(entry.claim.token)
        self._start_fetches()

    async def _stop_fetches(self) -> None:
        """End every fetch; each gives its document back uncounted."""
        fetches = list(self._fetches.items())
        for task, _entry in fetches:
            # Once: a second cancel would cut short the first's give-back
            # (``stop`` and the end of ``run`` both come here).
            if not task.cancelling():
                task.cancel()
        await asyncio.gather(
            *(task for task, _entry in fetches), return_exceptions=True
        )
        for task, entry in fetches:
            # Cancelled before it began, it could not give its claim back.
            if not task.cancelled():
                continue
            if self._held.pop(entry.claim.token, None) is not None:
                await self._release(entry.claim)

    async def _fetch_stage(self, entry: _Held) -> None:
        """
        Start a URL submission, fetch its original and attach it, then have
        it wait for a slot as a local document, its start counted.

        The start commits before the first request, as a slot's does before
        a result: a crash of this process during a fetch then counts
        against the document, as it did when a slot fetched, so a URL that
        crashes its worker every time ends as ``worker_crash``. Failures
        are recorded as a slot records them. A lost claim cancels this task (see
        ``_drop``) and nothing more is written; stopping cancels it too, and
        the document goes back uncounted.
        """
        claim = entry.claim
        taken = time.perf_counter()
        _log_processing(claim, self.worker_id)
        start = asyncio.create_task(self._start(entry))
        try:
            try:
                if not await asyncio.shield(start):
                    self._held.pop(claim.token, None)
                    return
                fetched = await self._fetch(claim)
            except asyncio.CancelledError:
                self._held.pop(claim.token, None)
                if self._lost(claim):
                    await asyncio.shield(_settled(start))
                    return
                await asyncio.shield(self._give_back_fetch(claim, start))
                raise
            except (ExtractionError, StorageError, FetchError) as exc:
                self._held.pop(claim.token, None)
                code, message, retryable = _failure(exc)
                # Stopping must not cut the write short: the document would
                # be left processing, to its lease. Nor may it go on alone:
                # stopping waits for this task, then closes the store, which
                # the write would meet closed, its error read by no one.
                recording = asyncio.create_task(
                    self._record_failure(claim, entry, code, message, retryable, taken)
                )
                try:
                    await asyncio.shield(recording)
                except asyncio.CancelledError:
                    with contextlib.suppress(Exception):
                        await recording
                    raise
                return
            except LeaseLost:
                self._held.pop(claim.token, None)
                logger.warning(
                    "document %s fetched, then dropped: cancelled, deleted or "
                    "taken over",
                    claim.document_id,
                    extra=_fields("lease_lost", claim),
                )
                return
            except OSError as exc:
                await self._give_back_local(claim, exc)
                return
            except Exception:
                # As in a slot: the document is left to its lease, which
                # must then stop being renewed.
                self._held.pop(claim.token, None)
                logger.exception(
                    "document %s: unexpected error; left to its lease",
                    claim.document_id,
                )
                return
            # One step, no await: a lost lease now finds it waiting.
            entry.claim = fetched
            entry.task = None
            # Next for a slot, behind only those fetched before it: its
            # attempt counts from the start written above, so each moment
            # it waits is one in which this worker's death would charge it
            # a crash (reclaim cannot tell it was never read).
            ahead, waiting = self._fetched_and_waiting()
            self._ready = collections.deque([*ahead, fetched, *waiting])
        finally:
            task = asyncio.current_task()
            assert task is not None
            # Out of the bound before the slots look: a draining slot ends
            # when no fetch is left.
            self._fetches.pop(task, None)
            self._start_fetches()
            await self._notify_slots()

    async def _give_back_fetch(self, claim: Claim, start: asyncio.Task[bool]) -> None:
        # Whichever the start got to, the release undoes it.
        await _settled(start)
        await self._release(claim)

    async def _fetch(self, claim: Claim) -> Claim:
        """Download a URL submission's original; the claim, now naming it."""
        assert claim.source_url is not None
        stored, filename = await fetch_to_storage(
            claim.source_url, self.storage, self.settings
        )
        await self.store.attach_original(
            claim, stored.key, stored.sha256, stored.size_bytes, filename
        )
        logger.info(
            "document %s fetched: %d bytes",
            claim.document_id,
            stored.size_bytes,
            extra=_fields("document_fetched", claim),
        )
        return dataclasses.replace(
            claim,
            storage_key=stored.key,
            size_bytes=stored.size_bytes,
            filename=claim.filename or filename,
            source_url=None,
        )

    async def _record_failure(
        self,
        claim: Claim,
        entry: _Held,
        code: str,
        message: str,
        retryable: bool,
        started: float,
    ) -> None:
        elapsed_ms = (time.perf_counter() - started) * 1000
        try:
            outcome = await self._until_stored(
                claim,
                entry,
                lambda: self.store.fail(claim, code, message, retryable),
                "failure",
            )
        except LeaseLost:
            logger.warning(
                "document %s failure discarded: lease lost",
                claim.document_id,
                extra=_fields("lease_lost", claim),
            )
            return
        except _GivenBack:
            return
        if outcome.final:
            # A file that is corrupt, empty, encrypted or too large is the
            # sender's to fix, not the operator's: a warning. A failure that
            # outlasted its retries (timeouts, crashes, fetches) is an error.
            logger.log(
                logging.ERROR if retryable else logging.WARNING,
                "document %s failed on %s in %.0f ms: %s: %s",
                claim.document_id,
                self.worker_id,
                elapsed_ms,
                code,
                message,
                extra=_fields("document_failed", claim) | {"error_code": code},
            )
        else:
            logger.warning(
                "document %s attempt %d failed on %s in %.0f ms: %s; retry at %s",
                claim.document_id,
                claim.attempt,
                self.worker_id,
                elapsed_ms,
                code,
                outcome.retry_at.isoformat() if outcome.retry_at else "?",
                extra=_fields("document_retry_scheduled", claim) | {"error_code": code},
            )

    async def _release(self, claim: Claim, why: str = "at shutdown") -> None:
        try:
            released = await self.store.release(claim)
        except Exception:
            logger.exception("could not release document %s", claim.document_id)
            return
        if released:
            logger.info(
                "document %s released by %s %s",
                claim.document_id,
                self.worker_id,
                why,
                extra=_fields("document_released", claim),
            )


async def _settled(start: asyncio.Task[bool]) -> None:
    """Wait for the start write; its error, if any, is logged, not raised."""
    try:
        await start
    except Exception:
        logger.exception("could not record a document's start")


def _log_processing(claim: Claim, worker_id: str) -> None:
    logger.info(
        "document %s processing on %s (attempt %d)",
        claim.document_id,
        worker_id,
        claim.attempt,
        extra=_fields("document_claimed", claim),
    )


def _failure(
    exc: ExtractionError | StorageError | FetchError,
) -> tuple[str, str, bool]:
    """The error code, message and retryability recorded for ``exc``."""
    if isinstance(exc, StorageError):
        return "original_missing", str(exc), False
    return exc.code, exc.message, exc.retryable


def _unencodable_field(payload: dict[str, Any]) -> str | None:
    """The field of ``payload`` (``text``, ``metadata``...) with no UTF-8 form."""
    for field, value in payload.items():
        if not _encodable(value):
            return str(field)
    return None


def _encodable(value: Any) -> bool:
    if isinstance(value, str):
        # isascii() costs nothing (CPython keeps the answer), so only text
        # with other characters pays for an encoding, a few ms a megabyte.
        if value.isascii():
            return True
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return False
        return True
    if isinstance(value, dict):
        return all(_encodable(key) and _encodable(item) for key, item in value.items())
    if isinstance(value, list):
        return all(_encodable(item) for item in value)
    return True


def _fields(action: str, claim: Claim) -> dict[str, Any]:
    return {
        "action": action,
        "document_id": claim.document_id,
        "worker_id": claim.worker_id,
        "attempt": claim.attempt,
    }
