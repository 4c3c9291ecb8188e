"""The job store's claim, fencing and recovery rules, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text, update

from docmill.db.engine import write_transaction
from docmill.db.models import Attempt, Document
from docmill.exceptions import DocumentNotFound, LeaseLost, RetryOverLimit
from docmill.queue.ids import process_start, this_place
from docmill.queue.store import JobStore, NewDocument, utcnow

pytestmark = pytest.mark.anyio


async def queue_document(store: JobStore, priority: int = 0, name: str = "a") -> str:
    return await store.create(
        NewDocument(
            source="text",
            sha256=name * 64,
            size_bytes=1,
            storage_key=name * 64,
            filename=f"{name}.txt",
            priority=priority,
        )
    )


async def expire_leases(store: JobStore) -> None:
    async with store.engine.begin() as connection:
        await connection.execute(
            update(Document).values(lease_expires_at=utcnow() - timedelta(seconds=1))
        )


async def test_claim_takes_oldest_pending_document(store: Any) -> None:
    first = await queue_document(store)
    await queue_document(store)

    claim = await store.claim_next("w:1")

    assert (claim.document_id, claim.attempt) == (first, 1)


async def test_claim_prefers_higher_priority(store: Any) -> None:
    await queue_document(store)
    urgent = await queue_document(store, priority=5)

    claim = await store.claim_next("w:1")

    assert claim.document_id == urgent


async def test_claim_returns_none_when_queue_is_empty(store: Any) -> None:
    assert await store.claim_next("w:1") is None


async def test_concurrent_claims_never_share_a_document(store: Any) -> None:
    ids = {await queue_document(store, name=str(n % 10)) for n in range(20)}

    async def claim_all(worker: str) -> list[str]:
        taken = []
        while (claim := await store.claim_next(worker)) is not None:
            taken.append(claim.document_id)
        return taken

    results = await asyncio.gather(*(claim_all(f"w:{n}") for n in range(4)))
    claimed = [doc for taken in results for doc in taken]

    assert sorted(claimed) == sorted(ids)


async def test_complete_stores_result_and_status(store: Any) -> None:
    document_id = await queue_document(store)
    claim = await store.claim_next("w:1")

    await store.complete(claim, _payload("hello"))

    row = await store.get(document_id)
    content = await store.get_content(document_id)
    assert (row.status, row.word_count, content.text) == ("completed", 1, "hello")


async def test_write_after_lease_taken_over_is_fenced_out(store: Any) -> None:
    document_id = await queue_document(store)
    stale = await store.claim_next("w:old")
    await expire_leases(store)
    await store.reclaim_expired()
    fresh = await store.claim_next("w:new")
    await store.complete(fresh, _payload("new result"))

    with pytest.raises(LeaseLost):
        await store.complete(stale, _payload("stale result"))

    content = await store.get_content(document_id)
    assert content.text == "new result"


async def test_renew_lease_fails_once_lease_is_lost(store: Any) -> None:
    await queue_document(store)
    claim = await store.claim_next("w:1")
    await expire_leases(store)
    await store.reclaim_expired()

    with pytest.raises(LeaseLost):
        await store.renew_lease(claim)


async def test_retryable_failure_is_scheduled_again(store: Any) -> None:
    document_id = await queue_document(store)
    claim = await store.claim_next("w:1")

    outcome = await store.fail(claim, "timeout", "too slow", retryable=True)

    row = await store.get(document_id)
    assert (outcome.final, row.status, row.error_code) == (False, "pending", "timeout")


async def test_deterministic_failure_is_final(store: Any) -> None:
    document_id = await queue_document(store)
    claim = await store.claim_next("w:1")

    outcome = await store.fail(claim, "corrupt", "broken", retryable=False)

    row = await store.get(document_id)
    assert (outcome.final, row.status, row.attempts) == (True, "failed", 1)


async def test_retryable_failure_is_final_after_max_attempts(store: Any) -> None:
    document_id = await queue_document(store)
    for _ in range(store.retry.max_attempts):
        await _make_due(store)
        claim = await store.claim_next("w:1")
        await store.fail(claim, "timeout", "too slow", retryable=True)

    row = await store.get(document_id)
    assert (row.status, row.attempts) == ("failed", store.retry.max_attempts)


async def test_release_returns_document_without_counting_attempt(store: Any) -> None:
    document_id = await queue_document(store)
    claim = await store.claim_next("w:1")

    assert await store.release(claim)

    row = await store.get(document_id)
    assert (row.status, row.attempts, row.worker_id) == ("pending", 0, None)


async def test_released_document_keeps_its_place_in_the_queue(store: Any) -> None:
    first = await queue_document(store)
    await queue_document(store)  # due before the release, queued after `first`
    claim = await store.claim_next("w:1")

    assert await store.release(claim)
    released = await store.get(first)
    again = await store.claim_next("w:2")

    assert (claim.document_id, released.started_at, again.document_id) == (
        first,
        None,
        first,
    )


async def test_expired_lease_is_reclaimed_for_another_worker(store: Any) -> None:
    document_id = await queue_document(store)
    await store.claim_next("w:dead")
    await expire_leases(store)

    assert await store.reclaim_expired() == 1
    claim = await store.claim_next("w:alive")

    assert (claim.document_id, claim.attempt) == (document_id, 2)


async def test_document_that_keeps_killing_workers_is_quarantined(store: Any) -> None:
    document_id = await queue_document(store)
    for _ in range(store.retry.max_attempts):
        await store.claim_next("w:dead")
        await expire_leases(store)
        await store.reclaim_expired()

    row = await store.get(document_id)
    assert (row.status, row.error_code) == ("failed", "worker_crash")


def _local_id(pid: int, start: int | None = None, place: str | None = None) -> str:
    """A worker id as a process ``pid`` of this boot and namespace writes it."""
    if start is None:
        start = process_start(Path("/proc"), pid) or 1
    return f"testhost:{pid}:{place or this_place()}.{start}"


async def test_dead_local_process_documents_are_recovered_at_once(store: Any) -> None:
    document_id = await queue_document(store)
    await store.claim_next(_local_id(999999999))

    recovered = await store.reclaim_from_dead_workers("testhost")

    row = await store.get(document_id)
    assert (recovered, row.status) == (1, "pending")


@pytest.mark.parametrize(
    "worker_id",
    [
        pytest.param(f"testhost:999999999:{'0' * 12}.1", id="other-namespace"),
        pytest.param("testhost:999999999", id="no-place"),
        pytest.param(_local_id(os.getppid()), id="alive"),
        pytest.param(
            _local_id(999999999).replace("testhost", "other"), id="other-host"
        ),
    ],
)
async def test_holder_not_provably_dead_keeps_its_documents(
    store: Any, worker_id: str
) -> None:
    """A pid counted in another namespace says nothing about this one's."""
    document_id = await queue_document(store)
    await store.claim_next(worker_id)

    recovered = await store.reclaim_from_dead_workers("testhost")

    row = await store.get(document_id)
    assert (recovered, row.status, row.worker_id) == (0, "processing", worker_id)


async def test_reused_pid_does_not_shield_a_dead_holder(store: Any) -> None:
    document_id = await queue_document(store)
    parent = os.getppid()
    started = process_start(Path("/proc"), parent)
    assert started is not None
    await store.claim_next(_local_id(parent, start=started + 1))

    recovered = await store.reclaim_from_dead_workers("testhost")

    row = await store.get(document_id)
    assert (recovered, row.status) == (1, "pending")


async def test_attempts_record_each_try(store: Any) -> None:
    document_id = await queue_document(store)
    claim = await store.claim_next("w:1")
    await store.fail(claim, "timeout", "slow", retryable=True)
    await _make_due(store)
    claim = await store.claim_next("w:2")
    await store.complete(claim, _payload("ok"))

    attempts = await store.attempts(document_id)

    assert [(a.number, a.worker_id, a.outcome) for a in attempts] == [
        (1, "w:1", "retry"),
        (2, "w:2", "completed"),
    ]


async def test_a_closed_attempt_keeps_how_it_ended(store: Any) -> None:
    """
    Every close runs with the fenced write that moves the document out of
    processing, so none reaches a closed attempt today; one that did (a
    second close for the same claim) overwrote the first close's outcome.
    """
    document_id = await queue_document(store)
    claim = await store.claim_next("w:1")
    await store.complete(claim, _payload("ok"))
    closed = [(a.finished_at, a.outcome) for a in await store.attempts(document_id)]

    async with write_transaction(store.engine) as connection:
        later = utcnow() + timedelta(seconds=5)
        await store._close_attempt(connection, claim, later, "released", None)

    attempts = await store.attempts(document_id)
    assert [(a.finished_at, a.outcome) for a in attempts] == closed


async def test_delete_reports_original_only_when_unshared(store: Any) -> None:
    first = await queue_document(store, name="s")
    second = await queue_document(store, name="s")

    assert await store.delete(first) == ""
    assert await store.delete(second) == "s" * 64


async def _make_due(store: JobStore) -> None:
    async with store.engine.begin() as connection:
        await connection.execute(
            update(Document).values(next_attempt_at=utcnow() - timedelta(seconds=1))
        )


def _payload(text: str) -> dict[str, Any]:
    return {
        "mime_type": "text/plain",
        "text": text,
        "markdown": None,
        "pages": None,
        "metadata": {},
        "children": [],
        "warnings": [],
        "word_count": len(text.split()),
        "char_count": len(text),
        "page_count": None,
        "processing_ms": 1.0,
    }


async def test_cancel_keeps_pending_document_from_starting(store: Any) -> None:
    document_id = await queue_document(store)

    assert await store.cancel(document_id) == "cancelled"
    assert await store.claim_next("w:1") is None


async def test_cancel_fences_out_the_running_worker(store: Any) -> None:
    document_id = await queue_document(store)
    claim = await store.claim_next("w:1")

    await store.cancel(document_id)

    with pytest.raises(LeaseLost):
        await store.renew_lease(claim)


async def test_cancel_leaves_final_document_alone(store: Any) -> None:
    document_id = await queue_document(store)
    claim = await store.claim_next("w:1")
    await store.complete(claim, _payload("done"))

    assert await store.cancel(document_id) == "completed"


async def test_retry_failed_requeues_with_fresh_attempts(store: Any) -> None:
    document_id = await queue_document(store)
    claim = await store.claim_next("w:1")
    await store.fail(claim, "corrupt", "broken", retryable=False)

    assert await store.retry_failed(error_codes=["corrupt"]) == 1

    row = await store.get(document_id)
    assert (row.status, row.attempts, row.error_code) == ("pending", 0, None)


async def test_retry_failed_takes_only_the_codes_given(store: Any) -> None:
    for code in ("timeout", "encrypted"):
        await queue_document(store, name=code)
        claim = await store.claim_next("w:1")
        await store.fail(claim, code, "failed", retryable=False)

    assert await store.retry_failed(error_codes=["timeout", "corrupt"]) == 1
    assert await store.count_failed_by_code() == {"encrypted": 1}


async def failed_documents(store: Any, count: int) -> list[str]:
    ids = [await queue_document(store, name=str(n)) for n in range(count)]
    for _ in ids:
        claim = await store.claim_next("w:1")
        await store.fail(claim, "corrupt", "broken", retryable=False)
    return ids


async def test_retry_past_the_queue_limit_queues_none(store: Any) -> None:
    await failed_documents(store, 2)
    await queue_document(store, name="w")
    store.max_pending = 2

    with pytest.raises(RetryOverLimit) as raised:
        await store.retry_failed()

    assert (raised.value.pending, raised.value.retrying) == (1, 2)
    assert await store.count_pending() == 1


async def test_forced_retry_goes_past_the_queue_limit(store: Any) -> None:
    await failed_documents(store, 2)
    await queue_document(store, name="w")
    store.max_pending = 2

    assert await store.retry_failed(force=True) == 2
    assert await store.count_pending() == 3


async def test_retry_within_the_queue_limit_needs_no_force(store: Any) -> None:
    await failed_documents(store, 2)
    store.max_pending = 2

    assert await store.retry_failed() == 2


async def test_purge_deletes_old_completed_documents_only(store: Any) -> None:
    done = await queue_document(store, name="d")
    waiting = await queue_document(store, name="w")
    claim = await store.claim_next("w:1")
    await store.complete(claim, _payload("done"))

    purged = await store.purge(timedelta(seconds=-1))

    assert (purged.documents, purged.unused_keys) == (1, ["d" * 64])
    assert (await store.get(waiting)).status == "pending"
    with pytest.raises(DocumentNotFound):
        await store.get(done)


async def test_purge_of_age_zero_deletes_every_completed_and_cancelled(
    store: Any,
) -> None:
    """What the README warns of: 0 days keeps only failed and unfinished work."""
    completed = await queue_document(store, name="c")
    failed = await queue_document(store, name="f")
    cancelled = await queue_document(store, name="x")
    waiting = await queue_document(store, name="w")
    await store.cancel(cancelled)
    await store.complete(await store.claim_next("w:1"), _payload("done"))
    await store.fail(await store.claim_next("w:1"), "corrupt", "broken", False)

    purged = await store.purge(timedelta(days=0))

    assert (purged.documents, purged.unused_keys) == (2, ["c" * 64, "x" * 64])
    assert [(await store.get(d)).status for d in (failed, waiting)] == [
        "failed",
        "pending",
    ]
    for gone in (completed, cancelled):
        with pytest.raises(DocumentNotFound):
            await store.get(gone)


async def test_queue_stats_counts_and_ages(store: Any) -> None:
    await queue_document(store)
    await _make_due(store)

    stats = await store.queue_stats()

    assert stats["counts"]["pending"] == 1
    assert stats["oldest_pending_seconds"] >= 1


async def test_queue_stats_counts_each_status_and_last_minutes_output(
    store: Any,
) -> None:
    for name in ("a", "b", "c"):
        await queue_document(store, name=name)
    claim = await store.claim_next("w:1")
    await store.complete(claim, _payload("done"))
    await store.claim_next("w:1")

    stats = await store.queue_stats()

    assert (stats["counts"], stats["finished_last_minute"]) == (
        {
            "pending": 1,
            "processing": 1,
            "completed": 1,
            "failed": 0,
            "cancelled": 0,
        },
        1,
    )


async def test_claim_batch_gives_each_document_its_own_claim(store: Any) -> None:
    ids = [await queue_document(store, name=str(n)) for n in range(3)]

    claims = await store.claim_batch("w:1", 2)

    assert [claim.document_id for claim in claims] == ids[:2]
    assert len({claim.token for claim in claims}) == 2
    assert [claim.attempt for claim in claims] == [1, 1]


async def test_start_returns_the_parser_attached_by_then(store: Any) -> None:
    """
    The worker's only look for a parser before it stores a result is the
    start's answer: a start, alone or in a group, returns the document's
    parser as it stands then, and None for a document without one.
    """
    with_parser = await queue_document(store, name="p")
    without = await queue_document(store, name="q")
    grouped = await queue_document(store, name="r")
    async with store.engine.begin() as connection:
        await connection.execute(
            update(Document)
            .where(Document.id.in_([with_parser, grouped]))
            .values(parser="invoice")
        )
    claims = {c.document_id: c for c in await store.claim_batch("w:1", 3)}

    alone = [await store.start(claims[with_parser]), await store.start(claims[without])]
    outcomes, _ = await store._write_results([(claims[grouped], None)])

    assert (alone, outcomes) == (["invoice", None], ["invoice"])


async def test_held_document_stays_pending_until_a_slot_starts_it(
    store: Any,
) -> None:
    """A claim waiting for a slot counts no attempt and opens no attempt row."""
    document_id = await queue_document(store)
    (claim,) = await store.claim_batch("w:1", 1)
    held = await store.get(document_id)
    before = [await store.attempts(document_id)]

    await store.start(claim)

    row = await store.get(document_id)
    attempts = await store.attempts(document_id)
    assert (held.status, held.attempts, held.started_at, before) == (
        "pending",
        0,
        None,
        [[]],
    )
    assert (row.status, row.attempts, row.claim_token) == (
        "processing",
        1,
        claim.token,
    )
    assert [(a.number, a.claim_token, a.outcome) for a in attempts] == [
        (1, claim.token, None)
    ]


async def test_held_document_is_not_claimed_twice(store: Any) -> None:
    await queue_document(store)
    await store.claim_batch("w:1", 1)

    assert await store.claim_batch("w:2", 1) == []


async def _one_attempt_allowed(store: JobStore) -> None:
    async with store.engine.begin() as connection:
        await connection.execute(update(Document).values(max_attempts=1))


async def test_held_document_of_a_dead_worker_goes_back_unblamed(
    store: Any,
) -> None:
    """Killed while the document only waited for a slot: nothing is charged."""
    document_id = await queue_document(store)
    await _one_attempt_allowed(store)
    await store.claim_batch(_local_id(999999999), 1)

    recovered = await store.reclaim_from_dead_workers("testhost")

    row = await store.get(document_id)
    assert (recovered, row.status, row.attempts, row.error_code) == (
        1,
        "pending",
        0,
        None,
    )
    assert await store.attempts(document_id) == []
    assert (await store.claim_next("w:2")).attempt == 1


async def test_held_documents_of_a_dead_worker_are_logged_as_never_read(
    store: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """The line once said they were given back unstarted "while reading it"."""
    await queue_document(store)
    await store.claim_batch(_local_id(999999999), 1)
    caplog.set_level("INFO", logger="docmill.queue.store")

    await store.reclaim_from_dead_workers("testhost")

    released = [
        r for r in caplog.records if getattr(r, "action", None) == "claims_released"
    ]
    assert [r.getMessage() for r in released] == [
        "gave back 1 document(s) held for a slot but never started: "
        "its worker process exited"
    ]


async def test_started_document_of_a_dead_worker_is_still_blamed(
    store: Any,
) -> None:
    document_id = await queue_document(store)
    await _one_attempt_allowed(store)
    (claim,) = await store.claim_batch(_local_id(999999999), 1)
    await store.start(claim)

    await store.reclaim_from_dead_workers("testhost")

    row = await store.get(document_id)
    assert (row.status, row.error_code) == ("failed", "worker_crash")


async def test_expired_hold_goes_back_unblamed(store: Any) -> None:
    document_id = await queue_document(store)
    await _one_attempt_allowed(store)
    (stale,) = await store.claim_batch("w:hung", 1)
    await expire_leases(store)

    assert await store.reclaim_expired() == 1
    row = await store.get(document_id)
    assert (row.status, row.attempts, row.error_code, row.claim_token) == (
        "pending",
        0,
        None,
        None,
    )
    with pytest.raises(LeaseLost):
        await store.start(stale)


async def test_start_of_a_cancelled_hold_is_fenced_out(store: Any) -> None:
    document_id = await queue_document(store)
    (claim,) = await store.claim_batch("w:1", 1)
    await store.cancel(document_id)

    with pytest.raises(LeaseLost):
        await store.start(claim)

    assert (await store.get(document_id)).status == "cancelled"
    assert await store.attempts(document_id) == []


async def test_released_hold_goes_back_as_it_was(store: Any) -> None:
    document_id = await queue_document(store)
    (claim,) = await store.claim_batch("w:1", 1)

    assert await store.release(claim)

    row = await store.get(document_id)
    assert (row.status, row.attempts, row.claim_token) == ("pending", 0, None)
    assert (await store.claim_next("w:2")).document_id == document_id


async def test_urgent_document_takes_the_place_of_a_waiting_claim(
    store: Any,
) -> None:
    waiting = await queue_document(store, name="w")
    (claim,) = await store.claim_batch("w:1", 1)
    urgent = await queue_document(store, priority=5, name="u")

    due = await store.outranking_due_at(claim.priority)
    taken, given_back = await store.claim_ahead_of("w:1", [claim])

    assert due is not None and due <= utcnow()
    assert ([c.document_id for c in taken], given_back) == ([urgent], [claim])
    assert (await store.get(waiting)).claim_token is None
    assert (await store.claim_next("w:2")).document_id == waiting


async def test_no_swap_when_nothing_outranks_the_waiting_claims(
    store: Any,
) -> None:
    await queue_document(store, priority=5, name="u")
    (claim,) = await store.claim_batch("w:1", 1)
    await queue_document(store, priority=5, name="l")

    assert await store.outranking_due_at(claim.priority) is None
    assert await store.claim_ahead_of("w:1", [claim]) == ([], [])


async def test_renew_leases_extends_held_claims_and_names_lost_ones(
    store: Any,
) -> None:
    await queue_document(store, name="a")
    await queue_document(store, name="b")
    await queue_document(store, name="c")
    kept, cancelled, waiting = await store.claim_batch("w:1", 3)
    await store.start(kept)
    await store.cancel(cancelled.document_id)
    await expire_leases(store)
    claims = [kept, cancelled, waiting]

    assert await store.lost_claims(claims) == {cancelled.token}
    assert await store.renew_leases(claims) == {cancelled.token}

    assert await store.reclaim_expired() == 0
    rows = [await store.get(claim.document_id) for claim in (kept, waiting)]
    assert [(row.status, row.claim_token) for row in rows] == [
        ("processing", kept.token),
        ("pending", waiting.token),
    ]


async def test_complete_reports_the_parser_attached_meanwhile(
    store: Any,
) -> None:
    document_id = await queue_document(store)
    claim = await store.claim_next("w:1")
    async with store.engine.begin() as connection:
        await connection.execute(
            update(Document).where(Document.id == document_id).values(parser="invoices")
        )

    assert await store.complete(claim, _payload("total 12")) == "invoices"


async def test_reprocessed_result_replaces_text_and_search_entry(store: Any) -> None:
    document_id = await queue_document(store)
    await store.complete(await store.claim_next("w:1"), _payload("first words"))
    await store.reprocess(document_id)

    claim = await store.claim_next("w:1")
    await store.complete(claim, _payload("second words"))

    assert claim.had_result
    assert (await store.get_content(document_id)).text == "second words"
    assert [row.id for row in await store.list(q="second")] == [document_id]
    assert await store.list(q="first") == []


async def test_results_written_together_are_each_fenced(store: Any) -> None:
    # The first result starts a commit at once; the two that arrive meanwhile
    # are written in one transaction, where only the cancelled one is left out.
    ids = [await queue_document(store, name=name) for name in "abc"]
    claims = {claim.document_id: claim for claim in await store.claim_batch("w:1", 3)}
    for claim in claims.values():
        await store.start(claim)
    await store.cancel(ids[1])

    outcomes = await asyncio.gather(
        *(store.complete(claims[i], _payload(f"words {i}")) for i in ids),
        return_exceptions=True,
    )

    assert outcomes[0] is None and outcomes[2] is None
    assert isinstance(outcomes[1], LeaseLost)
    assert [(await store.get(i)).status for i in ids] == [
        "completed",
        "cancelled",
        "completed",
    ]
    assert await store.get_content(ids[1]) is None
    assert {row.id for row in await store.list(q="words")} == {ids[0], ids[2]}
    closed = [attempt.outcome for attempt in await store.attempts(ids[2])]
    assert closed == ["completed"]


async def _lose_by_cancel(store: JobStore, document_id: str) -> None:
    await store.cancel(document_id)


async def _lose_by_lease_expiry(store: JobStore, document_id: str) -> None:
    async with store.engine.begin() as connection:
        await connection.execute(
            update(Document)
            .where(Document.id == document_id)
            .values(lease_expires_at=utcnow() - timedelta(seconds=1))
        )
    assert await store.reclaim_expired() == 1


class _Counted:
    count = 0


def count_writer_transactions(store: Any) -> _Counted:
    """Count the transactions the SQLite writer runs from now on."""
    counted = _Counted()
    if store._writer is not None:
        run = store._writer.run

        async def counting(work: Any) -> Any:
            counted.count += 1
            return await run(work)

        store._writer.run = counting
    return counted


async def test_claim_shares_the_transaction_of_results_in_flight(
    store: Any,
) -> None:
    """
    On SQLite a claim rides in the start/result group instead of taking the
    one writer for a transaction (and an fsync) of its own.
    """
    ids = [await queue_document(store, name=name) for name in "abc"]
    (claim,) = await store.claim_batch("w:1", 1)
    await store.start(claim)
    transactions = count_writer_transactions(store)

    parser, claimed = await asyncio.gather(
        store.complete(claim, _payload("words a")),
        store.claim_batch("w:1", 5),
    )

    # Ids made in the same millisecond do not sort in the order made.
    assert (parser, sorted(c.document_id for c in claimed)) == (None, sorted(ids[1:]))
    assert transactions.count == (1 if store._writer is not None else 0)
    assert [(await store.get(i)).status for i in ids] == [
        "completed",
        "pending",
        "pending",
    ]


async def test_claim_in_a_group_that_fails_is_made_alone(store: Any) -> None:
    ids = [await queue_document(store, name=name) for name in "ab"]
    (claim,) = await store.claim_batch("w:1", 1)
    await store.start(claim)
    unwritable = _payload("bad") | {"metadata": {"not json": object()}}

    failed, claimed = await asyncio.gather(
        store.complete(claim, unwritable),
        store.claim_batch("w:1", 5),
        return_exceptions=True,
    )

    assert isinstance(failed, Exception)
    assert [c.document_id for c in claimed] == ids[1:]
    assert (await store.get(ids[1])).claim_token == claimed[0].token


@pytest.mark.parametrize(
    "lose",
    [
        pytest.param(_lose_by_cancel, id="cancelled"),
        pytest.param(_lose_by_lease_expiry, id="lease-expired"),
    ],
)
async def test_starts_and_results_written_together_are_each_fenced(
    store: Any, lose: Any
) -> None:
    """
    A slot's next start shares the transaction of the results in flight (on
    SQLite); each is still fenced by its own token, so a start or a result
    whose claim was lost writes nothing and only its caller hears LeaseLost.
    """
    ids = [await queue_document(store, name=name) for name in "abcd"]
    claims = {claim.document_id: claim for claim in await store.claim_batch("w:1", 4)}
    for document_id in ids[:2]:
        await store.start(claims[document_id])
    await lose(store, ids[1])  # started: its result must not land
    await lose(store, ids[2])  # held: its start must not land
    transactions = count_writer_transactions(store)

    outcomes = await asyncio.gather(
        store.complete(claims[ids[0]], _payload("words a")),
        store.complete(claims[ids[1]], _payload("words b")),
        store.start(claims[ids[2]]),
        store.start(claims[ids[3]]),
        return_exceptions=True,
    )

    assert [type(outcome).__name__ for outcome in outcomes] == [
        "NoneType",
        "LeaseLost",
        "LeaseLost",
        "NoneType",
    ]
    assert transactions.count == (1 if store._writer is not None else 0)
    rows = [await store.get(document_id) for document_id in ids]
    assert [(row.status, row.attempts) for row in rows] == [
        ("completed", 1),
        (rows[1].status, 1),
        (rows[2].status, 0),
        ("processing", 1),
    ]
    assert rows[1].status in {"cancelled", "pending"}
    assert rows[2].status in {"cancelled", "pending"}
    assert (await store.get_content(ids[1]), await store.attempts(ids[2])) == (
        None,
        [],
    )
    opened = await store.attempts(ids[3])
    assert [(a.number, a.outcome) for a in opened] == [(1, None)]


async def test_a_result_that_cannot_be_written_spares_the_others(store: Any) -> None:
    ids = [await queue_document(store, name=name) for name in "abc"]
    claims = {claim.document_id: claim for claim in await store.claim_batch("w:1", 3)}
    for claim in claims.values():
        await store.start(claim)
    unwritable = _payload("bad") | {"metadata": {"not json": object()}}
    payloads = [_payload("first"), unwritable, _payload("third")]

    outcomes = await asyncio.gather(
        *(store.complete(claims[i], p) for i, p in zip(ids, payloads, strict=True)),
        return_exceptions=True,
    )

    assert outcomes[0] is None and outcomes[2] is None
    assert isinstance(outcomes[1], Exception)
    assert [(await store.get(i)).status for i in ids] == [
        "completed",
        "processing",
        "completed",
    ]
    assert (await store.get_content(ids[2])).text == "third"


async def wait_for_a_lock_wait(store: Any) -> None:
    """Wait until some session of this database waits for a lock."""
    deadline = time.monotonic() + 60
    while True:
        async with store.engine.connect() as connection:
            waiting = await connection.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = "
                    "current_database() AND wait_event_type = 'Lock'"
                )
            )
        if waiting:
            return
        assert time.monotonic() < deadline, "the operation never waited for a lock"
        await asyncio.sleep(0.02)


@pytest.mark.parametrize(
    ("operation", "expected"),
    [
        pytest.param(lambda store, doc: store.cancel(doc), "cancelled", id="cancel"),
        pytest.param(lambda store, doc: store.reclaim_expired(), 1, id="reclaim"),
    ],
)
async def test_operation_waits_behind_a_completing_worker_instead_of_deadlocking(
    store: Any, operation: Any, expected: object
) -> None:
    if store.engine.dialect.name != "postgresql":
        pytest.skip(
            "row locks that can deadlock are PostgreSQL's; SQLite has one writer"
        )
    document_id = await queue_document(store)
    claim = await store.claim_next("w:slow")
    await expire_leases(store)  # so the reclaim has the document to take

    # A worker storing its result: the document row is locked first, then
    # (below) its attempt.
    async with store.engine.connect() as worker:
        transaction = await worker.begin()
        await worker.execute(
            update(Document)
            .where(Document.id == document_id)
            .values(updated_at=utcnow())
        )
        waiting = asyncio.create_task(operation(store, document_id))
        await wait_for_a_lock_wait(store)
        await worker.execute(
            update(Attempt)
            .where(Attempt.claim_token == claim.token)
            .values(finished_at=utcnow())
        )
        await transaction.commit()

    assert await asyncio.wait_for(waiting, 10) == expected


async def test_due_document_between_priorities_is_noticed(store: Any) -> None:
    await queue_document(store, name="w")
    (claim,) = await store.claim_batch("w:1", 1)
    retrying = await queue_document(store, priority=9, name="r")
    await queue_document(store, priority=5, name="d")
    async with store.engine.begin() as connection:
        await connection.execute(
            update(Document)
            .where(Document.id == retrying)
            .values(next_attempt_at=utcnow() + timedelta(hours=1))
        )

    due = await store.outranking_due_at(claim.priority)

    assert due is not None and due <= utcnow()


async def test_document_waiting_for_a_retry_does_not_outrank(store: Any) -> None:
    await queue_document(store, name="w")
    (claim,) = await store.claim_batch("w:1", 1)
    retrying = await queue_document(store, priority=9, name="r")
    async with store.engine.begin() as connection:
        await connection.execute(
            update(Document)
            .where(Document.id == retrying)
            .values(next_attempt_at=utcnow() + timedelta(hours=1))
        )

    assert await store.outranking_due_at(claim.priority) is None
