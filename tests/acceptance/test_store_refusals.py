"""
A store that refuses a write for a reason of its own (a full disk, a
database that cannot be reached) costs no document an attempt: the worker
keeps the document, its lease renewed, and stores the outcome once the
store takes it; the API answers such a refusal as 507 or 503.
"""

from __future__ import annotations

import asyncio
import io
import logging
import sqlite3
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlalchemy.exc import DBAPIError, OperationalError

from docmill.api.app import build_services
from docmill.db.migrate import upgrade
from docmill.queue import worker as worker_module
from docmill.queue.store import GroupCommit, JobStore, NewDocument
from docmill.queue.worker import Worker
from docmill.settings import Settings
from docmill.storage import put_bytes
from tests.support import app_client, wait_final

pytestmark = pytest.mark.anyio


def _sqlite_full() -> sqlite3.OperationalError:
    """A real SQLITE_FULL, as the SQLite writer's connection raises it."""
    connection = sqlite3.connect(":memory:")
    try:
        connection.execute("PRAGMA max_page_count = 2")
        connection.execute("CREATE TABLE filler (blob)")
        connection.execute("INSERT INTO filler VALUES (zeroblob(100000))")
    except sqlite3.OperationalError as exc:
        return exc
    finally:
        connection.close()
    raise AssertionError("SQLite took a blob larger than its page limit")


def _postgres_full() -> DBAPIError:
    """PostgreSQL's disk_full (53100) as SQLAlchemy's asyncpg dialect wraps it."""
    from asyncpg.exceptions import DiskFullError

    adapted = Exception("could not extend file: No space left on device")
    adapted.__cause__ = DiskFullError("could not extend file")
    return DBAPIError("COMMIT", {}, adapted)


def _disk_full(settings: Settings) -> Exception:
    if settings.database_url.startswith("sqlite"):
        return _sqlite_full()
    return _postgres_full()


def _unreachable(settings: Settings) -> Exception:
    return OperationalError(
        "UPDATE documents", {}, ConnectionRefusedError(111, "Connection refused")
    )


class Refusing:
    """Makes a store method raise ``error`` while ``refusing`` is set."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, name: str, error: Any) -> None:
        self.error = error
        self.refusing = True
        self.refused: list[str] = []
        original = getattr(JobStore, name)

        async def write(store: JobStore, claim: Any, *args: Any) -> Any:
            if self.refusing:
                self.refused.append(claim.document_id)
                raise self.error
            return await original(store, claim, *args)

        monkeypatch.setattr(JobStore, name, write)


@pytest.fixture
def client_with(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., Any]:
    monkeypatch.setattr(worker_module, "_UNSTORED_FIRST_SECONDS", 0.05)
    monkeypatch.setattr(worker_module, "_UNSTORED_MOST_SECONDS", 0.2)

    def make(**overrides: Any) -> Any:
        return app_client(settings.model_copy(update=overrides))

    return make


async def _submit(client: httpx.AsyncClient, data: bytes, name: str = "f") -> str:
    response = await client.post("/documents", files={"file": (name, io.BytesIO(data))})
    return str(response.json()["id"])


async def _until_refused(refusing: Refusing, document_id: str) -> None:
    for _ in range(400):
        if document_id in refusing.refused:
            return
        await asyncio.sleep(0.025)
    raise AssertionError(f"{document_id}: no write refused")


@pytest.mark.parametrize(
    "error",
    [pytest.param(_disk_full, id="full"), pytest.param(_unreachable, id="down")],
)
async def test_result_refused_past_its_lease_is_stored_uncharged(
    client_with: Callable[..., Any],
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    error: Callable[[Settings], Exception],
) -> None:
    """
    The write was tried three times in 2.6 s and the result thrown away: the
    lease ran out and recovery failed the document as worker_crash.
    """
    refusing = Refusing(monkeypatch, "complete", error(settings))
    with caplog.at_level(logging.INFO, logger="docmill"):
        async with client_with(lease_seconds=1, max_attempts=1) as client:
            document_id = await _submit(client, b"healthy words")
            await _until_refused(refusing, document_id)
            # Three leases long, and tried again many times meanwhile.
            await asyncio.sleep(3)
            refusing.refusing = False
            body = await wait_final(client, document_id)
            services = client._transport.app.state.services  # type: ignore[attr-defined]
            attempts = await services.store.attempts(document_id)

    logged = [
        (r.levelno, getattr(r, "document_id", None))
        for r in caplog.records
        if getattr(r, "action", None) == "result_unstored"
    ]
    assert (body["status"], body["attempts"], logged) == (
        "completed",
        1,
        [(logging.ERROR, document_id)],
    )
    assert [attempt.outcome for attempt in attempts] == ["completed"]


async def test_no_document_is_claimed_while_a_result_waits_for_the_store(
    client_with: Callable[..., Any],
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    refusing = Refusing(monkeypatch, "complete", _disk_full(settings))
    async with client_with(workers=1) as client:
        first = await _submit(client, b"first")
        await _until_refused(refusing, first)
        second = await _submit(client, b"second")
        await asyncio.sleep(1)
        waiting = (await client.get(f"/documents/{second}")).json()
        refusing.refusing = False
        done = [(await wait_final(client, d))["status"] for d in (first, second)]

    assert (waiting["status"], waiting["attempts"], done) == (
        "pending",
        0,
        ["completed", "completed"],
    )


async def test_failure_refused_by_the_store_is_recorded_as_itself(
    client_with: Callable[..., Any],
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A corrupt file's failure is kept until stored, not left as worker_crash."""
    refusing = Refusing(monkeypatch, "fail", _unreachable(settings))
    async with client_with(lease_seconds=1, max_attempts=1) as client:
        document_id = await _submit(client, b"%PDF-1.7\nno objects", "broken.pdf")
        await _until_refused(refusing, document_id)
        await asyncio.sleep(3)
        refusing.refusing = False
        body = await wait_final(client, document_id)

    assert (body["status"], body["attempts"], body["error"]["code"]) == (
        "failed",
        1,
        "corrupt",
    )


async def test_stopping_gives_back_a_document_whose_result_waits_uncounted(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(worker_module, "_UNSTORED_FIRST_SECONDS", 0.05)
    refusing = Refusing(monkeypatch, "complete", _disk_full(settings))
    services = build_services(settings)
    await upgrade(services.engine)
    store = services.store
    stored = await put_bytes(services.storage, b"plain words", 1000)
    document_id = await store.create(
        NewDocument("a.txt", stored.sha256, stored.size_bytes, stored.key)
    )
    worker = Worker(store, services.storage, settings, 1)
    running = asyncio.ensure_future(worker.run())
    try:
        await _until_refused(refusing, document_id)
        await worker.stop()
        await running
        row = await store.get(document_id)
        attempts = await store.attempts(document_id)
    finally:
        await services.engine.dispose()
        await store.close()

    assert (row.status, row.attempts, row.claim_token) == ("pending", 0, None)
    assert [attempt.outcome for attempt in attempts] == ["released"]


async def test_a_submission_the_database_has_no_room_for_is_507(
    client_with: Callable[..., Any],
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """SQLite's full disk, raised by the group commit, was a 500 with a traceback."""
    full = _disk_full(settings)

    async def add(*_args: Any) -> Any:
        raise full

    monkeypatch.setattr(GroupCommit, "add", add)
    async with client_with(workers=0) as client:
        response = await client.post("/documents", json={"content": "some words"})

    assert (response.status_code, response.json()["type"]) == (
        507,
        "urn:docmill:problem:insufficient-storage",
    )
