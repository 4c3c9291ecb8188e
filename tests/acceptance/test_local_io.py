"""A worker whose own disk fails gives documents back instead of blaming them."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from docmill.api.app import build_services
from docmill.db.migrate import upgrade
from docmill.queue import worker as worker_module
from docmill.queue.store import NewDocument
from docmill.queue.worker import Worker
from docmill.settings import Settings
from docmill.storage import put_bytes

pytestmark = pytest.mark.anyio


class FullDisk:
    """Storage whose scratch copies fail with ENOSPC while ``full`` is set."""

    def __init__(self, inner: Any, fill_at: int = 1) -> None:
        self.inner = inner
        self.full = False
        self.copies = 0
        # The copy that finds the disk full (1: the first).
        self.fill_at = fill_at

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    @contextlib.asynccontextmanager
    async def local_copy(self, key: str) -> AsyncIterator[Path]:
        self.copies += 1
        if self.copies == self.fill_at:
            self.full = True
        if self.full:
            raise OSError(errno.ENOSPC, "No space left on device")
        async with self.inner.local_copy(key) as path:
            yield path


async def _until(check: Any, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not await check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def test_full_data_dir_releases_the_document_uncounted_and_pauses(
    settings: Settings,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """
    Each attempt failed with ENOSPC and was left to its lease, so a healthy
    document ended as worker_crash; the log said it was released at shutdown.
    """
    monkeypatch.setattr(worker_module, "_LOCAL_RETRY_SECONDS", 0.5)
    services = build_services(settings)
    await upgrade(services.engine)
    store = services.store
    stored = await put_bytes(services.storage, b"plain words", 1000)
    document_id = await store.create(
        NewDocument("a.txt", stored.sha256, stored.size_bytes, stored.key)
    )
    storage = FullDisk(services.storage)
    worker = Worker(store, storage, settings, 1)
    running = asyncio.ensure_future(worker.run())
    failed: list[logging.LogRecord] = []

    async def given_back() -> bool:
        failed[:] = [
            r for r in caplog.records if getattr(r, "action", "") == "local_io_failed"
        ]
        row = await store.get(document_id)
        return bool(failed) and row.status == "pending" and row.claim_token is None

    try:
        with caplog.at_level(logging.INFO, logger="docmill"):
            await _until(given_back)
            row = await store.get(document_id)
            assert (row.attempts, row.error_code) == (0, None)
            # No claim while the disk is full: the same document is not
            # tried again before a write to the data dir is.
            await asyncio.sleep(0.2)
            assert storage.copies == 1
            storage.full = False

            async def completed() -> bool:
                return (await store.get(document_id)).status == "completed"

            await _until(completed)
    finally:
        await worker.stop(0)
        await running
        await services.engine.dispose()
        await store.close()

    assert [r.levelno for r in failed] == [logging.ERROR]
    assert (await _attempts(settings, document_id)) == ["released", "completed"]
    assert not any("at shutdown" in r.getMessage() for r in caplog.records)


async def _attempts(settings: Settings, document_id: str) -> list[str | None]:
    services = build_services(settings)
    attempts = await services.store.attempts(document_id)
    await services.engine.dispose()
    await services.store.close()
    return [attempt.outcome for attempt in attempts]


async def test_full_disk_while_queueing_behind_spares_the_running_document(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """
    The copy of the document to queue behind failed: the running document's
    child was killed and it was left to its lease, the other "released at
    shutdown".
    """
    services = build_services(settings)
    await upgrade(services.engine)
    store = services.store
    ids = []
    for text in (b"DOCMILL-TEST-SLEEP 1\nfirst", b"second"):
        stored = await put_bytes(services.storage, text, 1000)
        ids.append(
            await store.create(
                NewDocument("a", stored.sha256, stored.size_bytes, stored.key)
            )
        )
    storage = FullDisk(services.storage, fill_at=2)
    worker = Worker(store, storage, settings, 1)
    running = asyncio.ensure_future(worker.run())

    rows: list[Any] = []

    async def settled() -> bool:
        rows[:] = [await store.get(i) for i in ids]
        first, second = rows
        return first.status == "completed" and (
            second.status == "pending" and second.claim_token is None
        )

    try:
        with caplog.at_level(logging.INFO, logger="docmill"):
            await _until(settled)
    finally:
        await worker.stop(0)
        await running
        await services.engine.dispose()
        await store.close()

    assert (rows[0].attempts, rows[1].attempts, rows[1].error_code) == (1, 0, None)
    assert not any("at shutdown" in r.getMessage() for r in caplog.records)


async def test_scratch_copy_left_behind_does_not_cost_the_document(
    settings: Settings,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """
    Removing a worker's copy of a large original failed (a failing disk):
    the error ended the slot's handling of the document, whose result was
    then never stored (left to its lease). The copy is now left to the
    staging sweep with a warning, and the documents complete.
    """
    # Originals in the database: a worker reads a large one from a copy.
    services = build_services(settings.model_copy(update={"storage": "database"}))
    await upgrade(services.engine)
    store = services.store
    scratch = services.storage.scratch_dir
    refused: list[Path] = []
    unlink = Path.unlink

    def failing_unlink(path: Path, missing_ok: bool = False) -> None:
        if path.parent == scratch:
            refused.append(path)
            raise OSError(errno.EIO, "Input/output error")
        unlink(path, missing_ok=missing_ok)

    monkeypatch.setattr(Path, "unlink", failing_unlink)
    # Past the size a worker hands its child in memory: read from a copy.
    texts = [b"large " * 20_000, b"small one"]
    ids = []
    for text in texts:
        stored = await put_bytes(services.storage, text, len(text))
        ids.append(
            await store.create(
                NewDocument("a.txt", stored.sha256, stored.size_bytes, stored.key)
            )
        )
    worker = Worker(store, services.storage, settings, 1)
    running = asyncio.ensure_future(worker.run())

    async def completed() -> bool:
        rows = [await store.get(i) for i in ids]
        return all(row.status == "completed" for row in rows)

    try:
        with caplog.at_level(logging.WARNING, logger="docmill"):
            await _until(completed)
            texts = [(await store.get_content(i)).text for i in ids]
    finally:
        await worker.stop(0)
        await running
        await services.engine.dispose()
        await store.close()

    assert [len(text.split()) for text in texts] == [20_000, 2]
    assert refused and all(path.exists() for path in refused)
    assert any(getattr(r, "action", "") == "scratch_left" for r in caplog.records)
