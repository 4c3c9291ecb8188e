"""Timeouts, flaky crashes, cancellation and wake-ups, through the real worker."""

from __future__ import annotations

import asyncio
import errno
import io
import logging
import random
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from docmill.api.app import create_app
from docmill.queue.store import NewDocument
from docmill.queue.worker import Worker
from docmill.settings import Settings
from tests.support import wait_final, wait_logged

pytestmark = pytest.mark.anyio

ClientFactory = Callable[..., Any]


@pytest.fixture
def client_with(settings: Settings) -> ClientFactory:
    @asynccontextmanager
    async def make(**overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
        app = create_app(settings.model_copy(update=overrides))
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(
                transport=transport, base_url="http://docmill.test"
            ) as client:
                yield client

    return make


async def submit(client: httpx.AsyncClient, data: bytes) -> str:
    response = await client.post("/documents", files={"file": ("f", io.BytesIO(data))})
    return str(response.json()["id"])


async def test_slow_document_times_out_after_every_attempt(
    client_with: ClientFactory,
) -> None:
    async with client_with(job_timeout_seconds=0.3) as client:
        document_id = await submit(client, b"DOCMILL-TEST-SLEEP 30\nnever")

        body = await wait_final(client, document_id)

    assert (body["status"], body["error"]["code"], body["attempts"]) == (
        "failed",
        "timeout",
        3,
    )


async def test_document_that_crashes_once_completes_on_retry(
    client_with: ClientFactory, tmp_path: Path
) -> None:
    marker = tmp_path / "crashed-once"
    async with client_with() as client:
        document_id = await submit(client, f"DOCMILL-TEST-FLAKY {marker}".encode())

        body = await wait_final(client, document_id)

    assert (body["status"], body["attempts"]) == ("completed", 2)


async def test_cancel_stops_a_running_extraction(client_with: ClientFactory) -> None:
    """
    The one slot is free again within seconds, long before the next lease
    renewal (100 s here) would have told the worker.
    """
    async with client_with(
        lease_seconds=300, job_timeout_seconds=600, workers=1
    ) as client:
        document_id = await submit(client, b"DOCMILL-TEST-STALL 300\nnever")
        while (await client.get(f"/documents/{document_id}")).json()[
            "status"
        ] != "processing":
            await asyncio.sleep(0.02)

        cancelled = await client.post(f"/documents/{document_id}/cancel")
        # The slot is free again once the extraction is really stopped.
        follower = await submit(client, b"quick one")
        body = await wait_final(client, follower, timeout=60)

    assert cancelled.json()["status"] == "cancelled"
    assert body["status"] == "completed"


async def test_cancelling_a_final_document_is_a_409(client_with: ClientFactory) -> None:
    async with client_with() as client:
        document_id = await submit(client, b"done soon")
        await wait_final(client, document_id)

        response = await client.post(f"/documents/{document_id}/cancel")

    assert response.json()["type"] == "urn:docmill:problem:already-final"


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_new_work_starts_without_waiting_for_a_poll(
    client_with: ClientFactory, settings: Settings
) -> None:
    """
    On PostgreSQL, NOTIFY wakes workers: a 30 s poll interval is never waited.

    The document is queued through a second store, as another API process
    would, so the only way the worker can hear of it is the notification.
    """
    from docmill.api.app import build_services
    from docmill.storage import put_bytes

    async with client_with(poll_seconds=30, workers=1) as client:
        other_api = build_services(settings)
        await wait_listening(other_api.engine)
        started = time.monotonic()
        stored = await put_bytes(other_api.storage, b"wake up", 100)
        document_id = await other_api.store.create(
            NewDocument(
                source="text",
                sha256=stored.sha256,
                size_bytes=stored.size_bytes,
                storage_key=stored.key,
            )
        )
        await wait_final(client, document_id, timeout=25)
        await other_api.engine.dispose()

    assert time.monotonic() - started < 20


async def wait_listening(engine: Any) -> None:
    """Wait until some session of this database has run its LISTEN."""
    from sqlalchemy import text

    deadline = time.monotonic() + 60
    while True:
        async with engine.connect() as connection:
            listening = await connection.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = "
                    "current_database() AND query LIKE 'LISTEN %'"
                )
            )
        if listening:
            return
        assert time.monotonic() < deadline, "the worker never listened"
        await asyncio.sleep(0.02)


async def test_memory_hog_fails_as_limit_exceeded_without_a_retry(
    client_with: ClientFactory,
) -> None:
    async with client_with(job_memory_mb=400) as client:
        document_id = await submit(client, b"DOCMILL-TEST-HOG")

        body = await wait_final(client, document_id, timeout=60)

    assert (body["status"], body["error"]["code"], body["attempts"]) == (
        "failed",
        "limit_exceeded",
        1,
    )


async def wait_status(client: httpx.AsyncClient, document_id: str, status: str) -> None:
    deadline = time.monotonic() + 60
    while (await client.get(f"/documents/{document_id}")).json()["status"] != status:
        assert time.monotonic() < deadline, f"{document_id} never {status}"
        await asyncio.sleep(0.02)


async def wait_held(settings: Settings, document_id: str) -> None:
    """Wait until a worker holds the document for a slot (claimed ahead)."""
    from docmill.api.app import build_services

    services = build_services(settings)
    try:
        deadline = time.monotonic() + 60
        while (await services.store.get(document_id)).claim_token is None:
            assert time.monotonic() < deadline, f"{document_id} never held"
            await asyncio.sleep(0.02)
    finally:
        await services.engine.dispose()


async def one_running_one_held(
    client: httpx.AsyncClient, settings: Settings, gate: Path
) -> tuple[str, str]:
    """
    With one slot: a document reading until ``gate`` exists, and one claimed
    ahead. The test opens the gate when it has done what must happen while
    the slot is busy.
    """
    running = await submit(client, f"DOCMILL-TEST-WAIT {gate}\nslow".encode())
    await wait_status(client, running, "processing")
    # The one slot is busy, so this one waits, claimed ahead.
    waiting = await submit(client, b"DOCMILL-TEST-SLEEP 0\nwaiting")
    await wait_held(settings, waiting)
    return running, waiting


async def test_document_claimed_ahead_and_cancelled_never_starts(
    client_with: ClientFactory,
    settings: Settings,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
) -> None:
    from docmill.api.app import build_services

    gate = tmp_path / "gate"
    async with client_with(workers=1) as client:
        _, waiting = await one_running_one_held(client, settings, gate)
        shown = (await client.get(f"/documents/{waiting}")).json()

        cancelled = await client.post(f"/documents/{waiting}/cancel")
        await wait_logged(caplog, "lease_lost", waiting)
        gate.touch()
        after = await wait_final(client, await submit(client, b"after"))
        body = (await client.get(f"/documents/{waiting}")).json()
    services = build_services(settings)
    attempts = await services.store.attempts(waiting)
    await services.engine.dispose()

    assert (shown["status"], shown["attempts"]) == ("pending", 0)
    assert cancelled.json()["status"] == "cancelled"
    assert (body["status"], body["result"], after["status"]) == (
        "cancelled",
        None,
        "completed",
    )
    assert attempts == []


async def test_shutdown_gives_back_documents_claimed_ahead(
    client_with: ClientFactory,
    settings: Settings,
    worker_debug: pytest.LogCaptureFixture,
    tmp_path: Path,
) -> None:
    gate = tmp_path / "gate"
    with _gate_opened_on("worker_stopping", gate):
        async with client_with(workers=1, shutdown_grace_seconds=60) as client:
            running, waiting = await one_running_one_held(client, settings, gate)
    async with client_with(workers=0) as client:
        finished = (await client.get(f"/documents/{running}")).json()
        released = (await client.get(f"/documents/{waiting}")).json()

    assert finished["status"] == "completed"
    assert (released["status"], released["attempts"]) == ("pending", 0)


async def test_urgent_document_overtakes_one_claimed_ahead(
    client_with: ClientFactory, settings: Settings, tmp_path: Path
) -> None:
    """A claim waiting for the busy slot makes way for a later, urgent one."""
    gate = tmp_path / "gate"
    async with client_with(workers=1) as client:
        running, waiting = await one_running_one_held(client, settings, gate)
        urgent = (
            await client.post(
                "/documents",
                files={"file": ("u.txt", b"DOCMILL-TEST-SLEEP 0\nurgent")},
                data={"priority": "5"},
            )
        ).json()["id"]
        await wait_held(settings, urgent)
        gate.touch()
        bodies = [await wait_final(client, i) for i in (running, urgent, waiting)]

    started = [body["started_at"] for body in bodies]
    assert [body["status"] for body in bodies] == ["completed"] * 3
    assert started == sorted(started)


def _deadlock() -> Exception:
    # As SQLAlchemy's asyncpg dialect raises PostgreSQL's 40P01: a plain
    # DBAPIError, not the OperationalError of a database out of reach.
    from sqlalchemy.exc import DBAPIError

    return DBAPIError("UPDATE attempts", {}, Exception("deadlock detected"))


async def test_result_write_that_meets_a_deadlock_is_tried_again(
    client_with: ClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    from docmill.queue.store import JobStore

    original = JobStore.complete
    failures: list[str] = []

    async def complete_after_a_deadlock(self: Any, claim: Any, payload: Any) -> Any:
        if not failures:
            failures.append(claim.document_id)
            raise _deadlock()
        return await original(self, claim, payload)

    monkeypatch.setattr(JobStore, "complete", complete_after_a_deadlock)
    async with client_with() as client:
        document_id = await submit(client, b"stored on the second try")

        body = await wait_final(client, document_id)

    assert (failures, body["status"], body["attempts"]) == (
        [document_id],
        "completed",
        1,
    )


async def test_worker_outlives_a_result_it_cannot_store(
    client_with: ClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    from docmill.queue import worker
    from docmill.queue.store import JobStore

    original = JobStore.complete

    async def complete_unless_poisoned(self: Any, claim: Any, payload: Any) -> Any:
        if payload["text"].startswith("never stored"):
            raise _deadlock()
        return await original(self, claim, payload)

    monkeypatch.setattr(JobStore, "complete", complete_unless_poisoned)
    monkeypatch.setattr(worker, "_STORE_RETRY_DELAYS", (0.01, 0.01), raising=False)
    async with client_with(workers=1) as client:
        poisoned = await submit(client, b"never stored")
        later = await submit(client, b"the slot is still alive")

        body = await wait_final(client, later)
        stuck = (await client.get(f"/documents/{poisoned}")).json()

    assert (body["status"], stuck["status"]) == ("completed", "processing")


async def test_result_waits_for_a_slow_start_while_the_slot_moves_on(
    client_with: ClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """
    The slot hands its child the next document without waiting for the
    start's commit, but no result is written before its own start commits.

    The first start is held until another one begins, which only a slot that
    moves on can bring about; the wait is bounded so a slot that waited for
    the commit fails the test rather than hangs it.
    """
    from docmill.queue.store import JobStore

    original_start, original_complete = JobStore.start, JobStore.complete
    committed: set[str] = set()
    early: list[str] = []
    begun: list[str] = []
    another_began = asyncio.Event()
    overlapped: list[bool] = []

    async def slow_first_start(self: Any, claim: Any) -> None:
        begun.append(claim.document_id)
        if len(begun) == 1:
            try:
                await asyncio.wait_for(another_began.wait(), 30)
            except TimeoutError:
                overlapped.append(False)
            else:
                overlapped.append(True)
        else:
            another_began.set()
        await original_start(self, claim)
        committed.add(claim.document_id)

    async def complete(self: Any, claim: Any, payload: Any) -> Any:
        if claim.document_id not in committed:
            early.append(claim.document_id)
        return await original_complete(self, claim, payload)

    monkeypatch.setattr(JobStore, "start", slow_first_start)
    monkeypatch.setattr(JobStore, "complete", complete)
    async with client_with(workers=1) as client:
        ids = [await submit(client, f"document {i}".encode()) for i in range(4)]
        bodies = [await wait_final(client, i, timeout=60) for i in ids]

    assert (early, overlapped) == ([], [True])
    assert [(b["status"], b["attempts"]) for b in bodies] == [("completed", 1)] * 4


async def test_claim_lost_while_its_start_is_pending_is_never_stored(
    client_with: ClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    from docmill.extract.child import ExtractionChild
    from docmill.queue.store import JobStore

    original_start, original_complete = JobStore.start, JobStore.complete
    original_receive = ExtractionChild.receive
    may_start, answered = asyncio.Event(), asyncio.Event()
    completed: list[str] = []

    async def receive(self: Any, *args: Any, **kwargs: Any) -> Any:
        payload = await original_receive(self, *args, **kwargs)
        answered.set()
        return payload

    async def start_after_the_cancel(self: Any, claim: Any) -> None:
        await may_start.wait()
        await original_start(self, claim)

    async def complete(self: Any, claim: Any, payload: Any) -> Any:
        completed.append(claim.document_id)
        return await original_complete(self, claim, payload)

    monkeypatch.setattr(JobStore, "start", start_after_the_cancel)
    monkeypatch.setattr(JobStore, "complete", complete)
    monkeypatch.setattr(ExtractionChild, "receive", receive)
    async with client_with(workers=1) as client:
        lost = await submit(client, b"read, then cancelled before its start")
        # The child reads it while the start waits.
        await asyncio.wait_for(answered.wait(), 60)
        cancelled = await client.post(f"/documents/{lost}/cancel")
        may_start.set()
        after = await wait_final(client, await submit(client, b"after"))
        body = (await client.get(f"/documents/{lost}")).json()

    assert cancelled.json()["status"] == "cancelled"
    assert (body["status"], body["result"], body["attempts"]) == (
        "cancelled",
        None,
        0,
    )
    assert (after["status"], lost in completed) == ("completed", False)


async def test_start_that_meets_a_database_error_leaves_the_document_to_its_lease(
    client_with: ClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The slot carries on; the document is not renewed, so its lease runs out."""
    from docmill.queue.store import JobStore

    original_start = JobStore.start
    failed: list[str] = []

    async def start_fails_once(self: Any, claim: Any) -> None:
        if not failed:
            failed.append(claim.document_id)
            raise _deadlock()
        await original_start(self, claim)

    monkeypatch.setattr(JobStore, "start", start_fails_once)
    async with client_with(workers=1, lease_seconds=1) as client:
        first = await submit(client, b"its start fails")
        later = await submit(client, b"the slot is still alive")
        after = await wait_final(client, later)
        # Reclaimed once its lease ran out, uncharged, then read again.
        body = await wait_final(client, first, timeout=15)

    assert failed == [first]
    assert (after["status"], body["status"], body["attempts"]) == (
        "completed",
        "completed",
        1,
    )


# -- a document queued in the child behind the one it reads -------------------


async def submit_before_the_worker(
    client_with: ClientFactory, *contents: bytes, **overrides: Any
) -> list[str]:
    """
    Documents queued before a one-slot worker starts: its first claim takes
    them all, so the second (and the third) are sent to the child behind the
    first.
    """
    async with client_with(workers=0, **overrides) as client:
        return [await submit(client, content) for content in contents]


def queued_ids(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        record.document_id
        for record in caplog.records
        if getattr(record, "action", None) == "document_queued"
    ]


async def attempt_rows(settings: Settings, document_id: str) -> list[str]:
    from docmill.api.app import build_services

    services = build_services(settings)
    try:
        return [row.outcome for row in await services.store.attempts(document_id)]
    finally:
        await services.engine.dispose()


@pytest.fixture
def worker_debug(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG, logger="docmill.queue.worker")
    return caplog


# Documents whose reading ends with the child killed: what each begins
# with, the code it fails with, and the settings that make it fail.
_KILLING = [
    pytest.param(
        b"DOCMILL-TEST-SLEEP 30\nnever",
        "timeout",
        {"job_timeout_seconds": 1},
        id="timeout",
    ),
    pytest.param(b"DOCMILL-TEST-CRASH", "worker_crash", {}, id="crash"),
]


@pytest.mark.parametrize(
    ("running", "code", "limits"),
    [
        *_KILLING,
        pytest.param(
            b"DOCMILL-TEST-HOG", "limit_exceeded", {"job_memory_mb": 400}, id="memory"
        ),
    ],
)
async def test_document_queued_behind_a_killed_child_goes_to_a_fresh_one(
    client_with: ClientFactory,
    settings: Settings,
    worker_debug: pytest.LogCaptureFixture,
    running: bytes,
    code: str,
    limits: dict[str, Any],
) -> None:
    """
    The kill takes the queued request with it; its attempt is counted once.
    A child that ran out of memory is replaced too (its heap may still hold
    what that document allocated).
    """
    first, queued = await submit_before_the_worker(
        client_with, running, b"queued behind", max_attempts=1
    )
    async with client_with(workers=1, max_attempts=1, **limits) as client:
        failed = await wait_final(client, first, timeout=60)
        body = await wait_final(client, queued, timeout=60)

    assert queued_ids(worker_debug) == [queued]
    assert (failed["status"], failed["error"]["code"]) == ("failed", code)
    assert (body["status"], body["attempts"], body["result"]["word_count"]) == (
        "completed",
        1,
        2,
    )
    assert await attempt_rows(settings, queued) == ["completed"]


async def test_document_queued_behind_a_cancelled_one_goes_to_a_fresh_child(
    client_with: ClientFactory,
    settings: Settings,
    worker_debug: pytest.LogCaptureFixture,
) -> None:
    first, queued = await submit_before_the_worker(
        client_with, b"DOCMILL-TEST-STALL 300\nnever", b"queued behind"
    )
    async with client_with(workers=1, job_timeout_seconds=600) as client:
        await wait_status(client, first, "processing")
        await client.post(f"/documents/{first}/cancel")
        body = await wait_final(client, queued, timeout=60)

    assert queued_ids(worker_debug) == [queued]
    assert (body["status"], body["attempts"]) == ("completed", 1)
    assert await attempt_rows(settings, queued) == ["completed"]


async def test_queued_document_cancelled_is_never_read(
    client_with: ClientFactory,
    settings: Settings,
    worker_debug: pytest.LogCaptureFixture,
    tmp_path: Path,
) -> None:
    """
    The child is stopped before it reads a queued document whose claim was
    lost: a follower completes long before the 300 s that reading it would
    take. The first document is held open until the worker has dropped the
    cancelled claim, so the order does not hang on the machine's speed.
    """
    gate = tmp_path / "gate"
    first, queued = await submit_before_the_worker(
        client_with,
        f"DOCMILL-TEST-WAIT {gate}\nslow".encode(),
        b"DOCMILL-TEST-STALL 300\nnever",
    )
    async with client_with(workers=1, job_timeout_seconds=600) as client:
        await wait_status(client, first, "processing")
        cancelled = await client.post(f"/documents/{queued}/cancel")
        await wait_logged(worker_debug, "lease_lost", queued)
        gate.touch()
        follower = await wait_final(client, await submit(client, b"after"), timeout=60)
        body = (await client.get(f"/documents/{queued}")).json()
        done = (await client.get(f"/documents/{first}")).json()

    assert queued_ids(worker_debug) == [queued]
    assert cancelled.json()["status"] == "cancelled"
    assert (body["status"], body["attempts"]) == ("cancelled", 0)
    assert (done["status"], follower["status"]) == ("completed", "completed")
    assert await attempt_rows(settings, queued) == []


async def test_shutdown_gives_back_a_queued_document_unread(
    client_with: ClientFactory,
    settings: Settings,
    worker_debug: pytest.LogCaptureFixture,
    tmp_path: Path,
) -> None:
    """
    The first document finishes within the grace period, and the one queued
    behind it is not read: the shutdown takes far less than the grace.

    The first is held until the worker logs that it is stopping, so it cannot
    finish (and its child begin the next) before the stop, however slow the
    machine.
    """
    gate = tmp_path / "gate"
    first, queued = await submit_before_the_worker(
        client_with,
        f"DOCMILL-TEST-WAIT {gate}\nslow".encode(),
        b"DOCMILL-TEST-STALL 600\nnever",
    )
    with _gate_opened_on("worker_stopping", gate):
        async with client_with(
            workers=1, shutdown_grace_seconds=120, job_timeout_seconds=900
        ) as client:
            await wait_status(client, first, "processing")
            began = time.monotonic()
        elapsed = time.monotonic() - began
    async with client_with(workers=0) as client:
        finished = (await client.get(f"/documents/{first}")).json()
        released = (await client.get(f"/documents/{queued}")).json()

    assert queued_ids(worker_debug) == [queued]
    assert finished["status"] == "completed"
    assert (released["status"], released["attempts"]) == ("pending", 0)
    assert await attempt_rows(settings, queued) == []
    assert elapsed < 60


class _OpenGateOn(logging.Handler):
    """Creates ``gate`` when the worker logs ``action``."""

    def __init__(self, action: str, gate: Path) -> None:
        super().__init__()
        self.action, self.gate = action, gate

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, "action", None) == self.action:
            self.gate.touch()


@contextmanager
def _gate_opened_on(action: str, gate: Path) -> Iterator[None]:
    """
    Open ``gate`` when the worker logs ``action`` (at INFO or DEBUG: the
    test must let the worker's logger pass those).
    """
    opener = _OpenGateOn(action, gate)
    worker_logger = logging.getLogger("docmill.queue.worker")
    worker_logger.addHandler(opener)
    try:
        yield
    finally:
        worker_logger.removeHandler(opener)


async def test_shutdown_past_its_grace_gives_back_both_documents(
    client_with: ClientFactory,
    settings: Settings,
    worker_debug: pytest.LogCaptureFixture,
) -> None:
    first, queued = await submit_before_the_worker(
        client_with, b"DOCMILL-TEST-STALL 30\nnever", b"queued behind"
    )
    async with client_with(workers=1, shutdown_grace_seconds=0.3) as client:
        await wait_status(client, first, "processing")
    async with client_with(workers=0) as client:
        running = (await client.get(f"/documents/{first}")).json()
        released = (await client.get(f"/documents/{queued}")).json()

    assert queued_ids(worker_debug) == [queued]
    assert (running["status"], released["status"]) == ("pending", "pending")
    assert released["attempts"] == 0
    assert await attempt_rows(settings, queued) == []


@pytest.fixture
def claims_for_three(monkeypatch: pytest.MonkeyPatch) -> None:
    """
    A one-slot worker's first claim takes three documents on PostgreSQL too
    (it keeps two a slot waiting there), so that two are queued behind the
    first before it ends.
    """
    monkeypatch.setattr("docmill.queue.worker._WAITING_PER_SLOT_ELSEWHERE", 4)


@pytest.mark.usefixtures("claims_for_three")
@pytest.mark.parametrize(("running", "code", "limits"), _KILLING)
async def test_two_documents_queued_behind_a_killed_child_keep_their_order(
    client_with: ClientFactory,
    settings: Settings,
    worker_debug: pytest.LogCaptureFixture,
    running: bytes,
    code: str,
    limits: dict[str, Any],
) -> None:
    """
    Both queued requests die with the child. The first goes to a fresh one,
    the second is sent again behind it, and each answer is matched to its
    own document (the word counts tell them apart), each attempt counted once.
    """
    first, second, third = await submit_before_the_worker(
        client_with, running, b"second one", b"the third one", max_attempts=1
    )
    async with client_with(workers=1, max_attempts=1, **limits) as client:
        failed = await wait_final(client, first, timeout=60)
        bodies = [await wait_final(client, d, timeout=60) for d in (second, third)]

    assert queued_ids(worker_debug) == [second, third, third]
    assert (failed["status"], failed["error"]["code"]) == ("failed", code)
    assert [
        (body["status"], body["attempts"], body["result"]["word_count"])
        for body in bodies
    ] == [("completed", 1, 2), ("completed", 1, 3)]
    assert await attempt_rows(settings, second) == ["completed"]
    assert await attempt_rows(settings, third) == ["completed"]


@pytest.mark.usefixtures("claims_for_three")
@pytest.mark.parametrize("cancelled_place", [1, 2], ids=["next", "last"])
async def test_a_cancelled_document_queued_two_deep_is_never_read(
    client_with: ClientFactory,
    settings: Settings,
    worker_debug: pytest.LogCaptureFixture,
    tmp_path: Path,
    cancelled_place: int,
) -> None:
    """
    Whether next in line or behind another, a queued document whose claim
    is lost stops the child as it begins it; a document queued behind it
    goes to a fresh child and completes.
    """
    gate = tmp_path / "gate"
    contents = [f"DOCMILL-TEST-WAIT {gate}\nslow".encode(), b"two words", b"a b c"]
    contents[cancelled_place] = b"DOCMILL-TEST-STALL 300\nnever"
    ids = await submit_before_the_worker(client_with, *contents)
    cancelled_id = ids[cancelled_place]
    async with client_with(workers=1, job_timeout_seconds=600) as client:
        await wait_status(client, ids[0], "processing")
        await wait_logged(worker_debug, "document_queued", ids[2])
        cancelled = await client.post(f"/documents/{cancelled_id}/cancel")
        await wait_logged(worker_debug, "lease_lost", cancelled_id)
        gate.touch()
        others = [
            await wait_final(client, d, timeout=60) for d in ids if d != cancelled_id
        ]
        body = (await client.get(f"/documents/{cancelled_id}")).json()

    assert cancelled.json()["status"] == "cancelled"
    assert (body["status"], body["attempts"]) == ("cancelled", 0)
    assert [(other["status"], other["attempts"]) for other in others] == [
        ("completed", 1),
        ("completed", 1),
    ]
    assert await attempt_rows(settings, cancelled_id) == []


@pytest.mark.usefixtures("claims_for_three")
async def test_shutdown_gives_back_two_queued_documents_unread(
    client_with: ClientFactory,
    settings: Settings,
    worker_debug: pytest.LogCaptureFixture,
    tmp_path: Path,
) -> None:
    gate = tmp_path / "gate"
    first, *queued = await submit_before_the_worker(
        client_with,
        f"DOCMILL-TEST-WAIT {gate}\nslow".encode(),
        b"DOCMILL-TEST-STALL 600\nnever",
        b"DOCMILL-TEST-STALL 600\nnever again",
    )
    with _gate_opened_on("worker_stopping", gate):
        async with client_with(
            workers=1, shutdown_grace_seconds=120, job_timeout_seconds=900
        ) as client:
            await wait_status(client, first, "processing")
            await wait_logged(worker_debug, "document_queued", queued[1])
            began = time.monotonic()
        elapsed = time.monotonic() - began
    async with client_with(workers=0) as client:
        finished = (await client.get(f"/documents/{first}")).json()
        released = [(await client.get(f"/documents/{d}")).json() for d in queued]

    assert queued_ids(worker_debug) == queued
    assert finished["status"] == "completed"
    assert [(body["status"], body["attempts"]) for body in released] == [
        ("pending", 0),
        ("pending", 0),
    ]
    for document_id in queued:
        assert await attempt_rows(settings, document_id) == []
    assert elapsed < 60


async def test_stopping_gives_back_a_document_a_kill_took_along_unread(
    client_with: ClientFactory,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """
    The first document crashes its child, which takes the queued one along;
    the worker stops while the crash is being recorded. The queued one was
    never begun, so it goes back unread, as claims waiting for a slot do;
    before, the slot began it after the stop and read it for the whole grace
    period.
    """
    _first, queued = await submit_before_the_worker(
        client_with, b"DOCMILL-TEST-CRASH", b"DOCMILL-TEST-STALL 600\nnever"
    )
    recording = asyncio.Event()
    record_failure = Worker._record_failure

    async def record_once_stopping(self: Worker, *args: Any) -> None:
        recording.set()
        await self._stopping.wait()
        await record_failure(self, *args)

    monkeypatch.setattr(Worker, "_record_failure", record_once_stopping)
    async with client_with(workers=1, shutdown_grace_seconds=30) as client:
        await recording.wait()
        began = time.monotonic()
    elapsed = time.monotonic() - began
    async with client_with(workers=0) as client:
        released = (await client.get(f"/documents/{queued}")).json()

    assert (released["status"], released["attempts"]) == ("pending", 0)
    assert await attempt_rows(settings, queued) == []
    assert elapsed < 20


def _refuse_removal() -> None:
    raise OSError(errno.EIO, "Input/output error", "original-scratch")


def _copy_cannot_be_removed(
    monkeypatch: pytest.MonkeyPatch,
    document_id: str,
    *,
    first_attempt_only: bool = False,
) -> None:
    """
    The local copy of ``document_id``'s original fails as it is let go (on
    its first attempt only, with ``first_attempt_only``).
    """
    take_original = Worker._original

    async def copy_that_cannot_be_removed(self: Worker, reading: Any) -> Any:
        source = await take_original(self, reading)
        if reading.claim.document_id == document_id and (
            reading.claim.attempt == 1 or not first_attempt_only
        ):
            reading.original.callback(_refuse_removal)
        return source

    monkeypatch.setattr(Worker, "_original", copy_that_cannot_be_removed)


@pytest.mark.usefixtures("claims_for_three")
async def test_document_begun_before_an_unexpected_error_is_read_by_the_fresh_child(
    client_with: ClientFactory,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """
    The first document's failure begins the second in the child; then an
    unexpected error (the first's scratch copy cannot be removed: a failing
    disk) has the slot kill the child. The second, begun and counted, is
    sent again to the fresh child ahead of the third; before, the fresh
    child read only the third, and its answer was stored as the second's.
    """
    first, second, third = await submit_before_the_worker(
        client_with, b"%PDF-1.4 damaged", b"second one", b"the third one"
    )
    _copy_cannot_be_removed(monkeypatch, first)
    async with client_with(workers=1) as client:
        bodies = [await wait_final(client, d, timeout=60) for d in (second, third)]
        texts = [
            (await client.get(f"/documents/{d}/text")).text for d in (second, third)
        ]

    assert texts == ["second one", "the third one"]
    assert [(body["status"], body["attempts"]) for body in bodies] == [
        ("completed", 1),
        ("completed", 1),
    ]
    assert await attempt_rows(settings, second) == ["completed"]


@pytest.mark.usefixtures("claims_for_three")
async def test_an_answer_for_another_document_is_never_stored(
    client_with: ClientFactory,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """
    The slot made to lose track of its child, as the bug above did (the
    begun second document not sent again): the answer that comes is the
    third's, its claim's token says so, and it is not stored as the
    second's. The child is killed and both documents are read again. The
    disk fails on the first attempt only: failing on every one, the first
    document's retries (each left to its lease, so taken again together
    with the second) could spend all of the second's attempts.
    """
    first, second, third = await submit_before_the_worker(
        client_with, b"%PDF-1.4 damaged", b"second one", b"the third one"
    )

    async def not_sent_again(self: Worker, reading: Any, child: Any) -> None:
        return None

    _copy_cannot_be_removed(monkeypatch, first, first_attempt_only=True)
    monkeypatch.setattr(Worker, "_send_again", not_sent_again)
    async with client_with(workers=1) as client:
        bodies = [await wait_final(client, d, timeout=60) for d in (second, third)]
        texts = [
            (await client.get(f"/documents/{d}/text")).text for d in (second, third)
        ]

    assert texts == ["second one", "the third one"]
    assert [body["status"] for body in bodies] == ["completed", "completed"]
    assert any("AnswerMismatch" in (r.exc_text or "") for r in caplog.records)


@pytest.mark.usefixtures("claims_for_three")
async def test_shutdown_gives_back_a_queued_document_whose_copy_stays(
    client_with: ClientFactory,
    settings: Settings,
    worker_debug: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """
    The local copy of a document given back at shutdown cannot be removed:
    it is released all the same, not held (its lease renewed) until the
    worker ends, and the one behind it is given back too.
    """
    gate = tmp_path / "gate"
    first, *queued = await submit_before_the_worker(
        client_with,
        f"DOCMILL-TEST-WAIT {gate}\nslow".encode(),
        b"DOCMILL-TEST-STALL 600\nnever",
        b"DOCMILL-TEST-STALL 600\nnever again",
    )
    _copy_cannot_be_removed(monkeypatch, queued[0])
    with _gate_opened_on("worker_stopping", gate):
        async with client_with(
            workers=1, shutdown_grace_seconds=120, job_timeout_seconds=900
        ) as client:
            await wait_status(client, first, "processing")
            await wait_logged(worker_debug, "document_queued", queued[1])
    async with client_with(workers=0) as client:
        released = [(await client.get(f"/documents/{d}")).json() for d in queued]

    assert [(body["status"], body["attempts"]) for body in released] == [
        ("pending", 0),
        ("pending", 0),
    ]
    assert await claim_tokens(settings, queued) == [None, None]


async def claim_tokens(settings: Settings, document_ids: list[str]) -> list[Any]:
    """Who holds each document: None when no worker does."""
    from docmill.api.app import build_services

    services = build_services(settings)
    try:
        return [(await services.store.get(d)).claim_token for d in document_ids]
    finally:
        await services.engine.dispose()


async def test_a_refused_read_of_a_queued_original_spares_the_running_document(
    client_with: ClientFactory,
    settings: Settings,
    worker_debug: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """
    The database refused the read of the original to queue behind (a
    dropped connection, say): the error ended the running document's
    reading too, which was left to its lease and read again. Now the one
    to queue waits for its own hand-over, and both are read once.
    """
    from sqlalchemy.exc import OperationalError

    from docmill.queue import worker as worker_module

    first, second = await submit_before_the_worker(
        client_with, b"DOCMILL-TEST-SLEEP 0.5\nrunning", b"queued behind"
    )
    read_original = worker_module.small_original
    reads: list[str] = []
    refused: list[str] = []

    async def second_read_refused(storage: Any, key: str, size: int) -> Any:
        # The first read is the running document's hand-over, the second the
        # one queued behind it.
        reads.append(key)
        if len(reads) == 2:
            refused.append(key)
            raise OperationalError("SELECT", {}, Exception("connection lost"))
        return await read_original(storage, key, size)

    monkeypatch.setattr(worker_module, "small_original", second_read_refused)
    async with client_with(workers=1) as client:
        bodies = [await wait_final(client, d, timeout=60) for d in (first, second)]

    assert refused
    assert [(body["status"], body["attempts"]) for body in bodies] == [
        ("completed", 1),
        ("completed", 1),
    ]
    assert await attempt_rows(settings, first) == ["completed"]
    assert not any("unexpected error" in r.getMessage() for r in worker_debug.records)


# What each kind of document in the mix below begins with, and how it ends:
# status, error code, attempts counted, and its attempts' outcomes.
_MIX = {
    "plain": (b"", ("completed", None, 1), ["completed"]),
    "crash": (
        b"DOCMILL-TEST-CRASH\n",
        ("failed", "worker_crash", 2),
        ["retry", "failed"],
    ),
    "timeout": (
        b"DOCMILL-TEST-SLEEP 30\n",
        ("failed", "timeout", 2),
        ["retry", "failed"],
    ),
    "memory": (b"DOCMILL-TEST-HOG\n", ("failed", "limit_exceeded", 1), ["failed"]),
}


@pytest.mark.usefixtures("claims_for_three")
async def test_seeded_mix_of_failures_leaves_each_result_with_its_own_document(
    client_with: ClientFactory, settings: Settings
) -> None:
    """
    Plain documents shuffled (seeded) among crashes, timeouts and memory
    failures through one slot, so that kills take queued documents along at
    both depths and retries come back between them. Each plain document
    completes with its own text (a token and a word count of its own), and
    every document's attempts are counted once each.
    """
    kinds = ["plain"] * 18 + ["crash"] * 4 + ["timeout"] * 2 + ["memory"] * 2
    random.Random(8).shuffle(kinds)
    texts = [" ".join([f"tok-{n}"] + ["word"] * n) for n in range(len(kinds))]
    ids = await submit_before_the_worker(
        client_with,
        *[
            _MIX[kind][0] + text.encode()
            for kind, text in zip(kinds, texts, strict=True)
        ],
        max_attempts=2,
    )
    async with client_with(
        workers=1, max_attempts=2, job_timeout_seconds=1, job_memory_mb=400
    ) as client:
        bodies = [await wait_final(client, d, timeout=60) for d in ids]
        read = [
            (await client.get(f"/documents/{d}/text")).text
            if body["status"] == "completed"
            else None
            for d, body in zip(ids, bodies, strict=True)
        ]
    rows = await all_attempt_rows(settings, ids)

    assert [
        (body["status"], (body["error"] or {}).get("code"), body["attempts"])
        for body in bodies
    ] == [_MIX[kind][1] for kind in kinds]
    assert read == [
        text if kind == "plain" else None
        for kind, text in zip(kinds, texts, strict=True)
    ]
    assert [body["result"]["word_count"] for body in bodies if body["result"]] == [
        n + 1 for n, kind in enumerate(kinds) if kind == "plain"
    ]
    assert rows == [_MIX[kind][2] for kind in kinds]


async def all_attempt_rows(
    settings: Settings, document_ids: list[str]
) -> list[list[str]]:
    from docmill.api.app import build_services

    services = build_services(settings)
    try:
        return [
            [row.outcome for row in await services.store.attempts(document_id)]
            for document_id in document_ids
        ]
    finally:
        await services.engine.dispose()


async def test_json_with_a_lone_surrogate_completes_with_a_warning(
    client_with: ClientFactory,
) -> None:
    """A ``\\ud800`` escape once made a result no database could store."""
    async with client_with() as client:
        document_id = await submit(client, b'{"a":"\\ud800"}')

        body = await wait_final(client, document_id, timeout=10)
        text = (await client.get(f"/documents/{document_id}/text")).text

    assert (body["status"], text) == ("completed", "a: \ufffd")
    assert any("surrogate" in warning for warning in body["result"]["warnings"])


@pytest.mark.parametrize("field", ["text", "metadata"])
async def test_result_the_database_refuses_fails_the_document(
    client_with: ClientFactory, monkeypatch: pytest.MonkeyPatch, field: str
) -> None:
    """
    A lone surrogate past the pipeline (from a reader it does not see) makes
    the document ``unstorable_result`` at once, not a retried crash.
    """
    from docmill.extract.child import ExtractionChild

    original = ExtractionChild.receive

    async def receive_poisoned(self: Any, *args: Any, **kwargs: Any) -> Any:
        payload = await original(self, *args, **kwargs)
        poison = "\ud800" if field == "text" else {"title": "\ud800"}
        return payload | {field: poison}

    monkeypatch.setattr(ExtractionChild, "receive", receive_poisoned)
    async with client_with(workers=1) as client:
        document_id = await submit(client, b"some text")

        body = await wait_final(client, document_id, timeout=10)

    assert (body["status"], body["error"]["code"], body["attempts"]) == (
        "failed",
        "unstorable_result",
        1,
    )
    assert field in body["error"]["message"]
