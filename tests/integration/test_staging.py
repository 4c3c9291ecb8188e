"""
Staging left by uploads that died mid-way is swept; live uploads keep theirs.

A process killed during a large upload leaves chunks under a ``staging-`` key
(database storage) or a file under ``originals/incoming`` (local storage).
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from docmill.db.engine import write_transaction
from docmill.db.models import Blob, BlobChunk
from docmill.exceptions import StorageError, UploadTimeout
from docmill.settings import Settings
from docmill.storage import CHUNK_BYTES, DatabaseStorage, LocalStorage

pytestmark = pytest.mark.anyio

HOUR = 3600.0


@pytest.fixture
def engine(store: Any) -> AsyncEngine:
    # The job store's own set-up and tear-down (its row reader included).
    return store.engine  # type: ignore[no-any-return]


async def stage(engine: AsyncEngine, key: str, chunks: int = 2) -> None:
    async with write_transaction(engine) as connection:
        await connection.execute(
            insert(BlobChunk),
            [{"key": key, "seq": n, "data": b"x" * 1000} for n in range(chunks)],
        )


async def chunk_keys(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as connection:
        found = await connection.execute(select(BlobChunk.key).distinct())
        return sorted(found.scalars())


async def test_dead_upload_chunks_are_swept_and_live_ones_kept(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    now = int(time.time())
    dead, live = (
        f"staging-{now - 2 * 3600}-{'a' * 32}",
        f"staging-{now - 60}-{'b' * 32}",
    )
    stored = "c" * 64
    for key in (dead, live, stored):
        await stage(engine, key)
    storage = DatabaseStorage(engine, tmp_path / "scratch", HOUR)

    report = await storage.sweep_staging(max_age_seconds=HOUR)

    assert (report.removed, report.removed_bytes) == (1, 2000)
    assert await chunk_keys(engine) == sorted([live, stored])


async def test_staging_of_unknown_age_goes_once_unchanged_for_the_bound(
    engine: AsyncEngine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Keys from before the start time was in them: watched, then removed."""
    legacy = f"staging-{'d' * 32}"
    await stage(engine, legacy)
    storage = DatabaseStorage(engine, tmp_path / "scratch", HOUR)
    clock = [1_000_000.0]
    monkeypatch.setattr(time, "time", lambda: clock[0])

    first = await storage.sweep_staging(max_age_seconds=HOUR)
    clock[0] += HOUR + 1
    second = await storage.sweep_staging(max_age_seconds=HOUR)

    assert (first.unknown_age, first.removed, second.removed) == (1, 0, 1)
    assert await chunk_keys(engine) == []


async def test_growing_staging_of_unknown_age_is_kept(
    engine: AsyncEngine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    legacy = f"staging-{'e' * 32}"
    await stage(engine, legacy, chunks=1)
    storage = DatabaseStorage(engine, tmp_path / "scratch", HOUR)
    clock = [1_000_000.0]
    monkeypatch.setattr(time, "time", lambda: clock[0])

    await storage.sweep_staging(max_age_seconds=HOUR)
    async with write_transaction(engine) as connection:
        await connection.execute(insert(BlobChunk).values(key=legacy, seq=1, data=b"y"))
    clock[0] += HOUR + 1
    report = await storage.sweep_staging(max_age_seconds=HOUR)

    assert (report.removed, await chunk_keys(engine)) == (0, [legacy])


async def test_dead_upload_file_is_swept_and_live_one_kept(tmp_path: Path) -> None:
    incoming = tmp_path / "originals" / "incoming"
    incoming.mkdir(parents=True)
    (incoming / "tmpdead").write_bytes(b"x" * 500)
    (incoming / "tmplive").write_bytes(b"y")
    old = time.time() - 2 * HOUR
    os.utime(incoming / "tmpdead", (old, old))
    storage = LocalStorage(tmp_path / "originals", upload_timeout_seconds=HOUR)

    report = await storage.sweep_staging(max_age_seconds=HOUR)

    assert (report.removed, report.removed_bytes) == (1, 500)
    assert sorted(p.name for p in incoming.iterdir()) == ["tmplive"]


async def test_scratch_copy_of_a_killed_worker_is_swept(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    (scratch / "original-dead").write_bytes(b"x" * 300)
    (scratch / "original-live").write_bytes(b"y")
    old = time.time() - 2 * HOUR
    os.utime(scratch / "original-dead", (old, old))
    storage = DatabaseStorage(engine, scratch, HOUR)

    report = await storage.sweep_staging(max_age_seconds=HOUR)

    assert (report.removed, report.removed_bytes) == (1, 300)
    assert sorted(p.name for p in scratch.iterdir()) == ["original-live"]


def test_sweep_bound_exceeds_both_time_limits() -> None:
    settings = Settings(upload_timeout_seconds=60, job_timeout_seconds=900)

    assert settings.staging_max_age_seconds == 900 + 600


class Trickle(io.RawIOBase):
    """A stream that takes ``pause`` seconds per chunk, like a slow client."""

    def __init__(self, chunks: int, pause: float) -> None:
        self.left = chunks
        self.pause = pause

    def read(self, size: int = -1) -> bytes:
        if not self.left:
            return b""
        self.left -= 1
        time.sleep(self.pause)
        return b"z" * CHUNK_BYTES


@pytest.mark.parametrize("kind", ["local", "database"])
async def test_upload_past_its_time_limit_fails_and_leaves_nothing(
    engine: AsyncEngine, tmp_path: Path, kind: str
) -> None:
    storage = (
        LocalStorage(tmp_path / "originals", upload_timeout_seconds=0.2)
        if kind == "local"
        else DatabaseStorage(engine, tmp_path / "scratch", 0.2)
    )

    with pytest.raises(UploadTimeout):
        await storage.put(Trickle(chunks=10, pause=0.05), max_bytes=100 * CHUNK_BYTES)

    incoming = tmp_path / "originals" / "incoming"
    leftovers = list(incoming.iterdir()) if incoming.exists() else []
    assert (leftovers, await chunk_keys(engine)) == ([], [])


async def test_upload_whose_chunks_were_swept_is_not_published(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    """A blob must never name chunks a sweep removed under a too-slow upload."""
    storage = DatabaseStorage(engine, tmp_path / "scratch")
    loop = asyncio.get_running_loop()

    class SweptMidway(Trickle):
        def read(self, size: int = -1) -> bytes:
            if self.left == 1:
                sweep = storage.sweep_staging(max_age_seconds=-1)
                asyncio.run_coroutine_threadsafe(sweep, loop).result()
            return super().read(size)

    with pytest.raises(StorageError):
        await storage.put(SweptMidway(chunks=3, pause=0), max_bytes=10 * CHUNK_BYTES)

    async with engine.connect() as connection:
        blobs = (
            await connection.execute(select(func.count()).select_from(Blob))
        ).scalar()
    assert (blobs, await chunk_keys(engine)) == (0, [])


async def test_shutdown_lets_a_sweep_in_progress_finish() -> None:
    """Cancelling a sweep mid-connect left asyncpg a future no one retrieved."""

    from docmill.storage import SweepReport, sweep_periodically

    started, release = asyncio.Event(), asyncio.Event()
    finished: list[bool] = []

    class SlowStorage:
        async def sweep_staging(self, max_age_seconds: float) -> SweepReport:
            started.set()
            await release.wait()
            finished.append(True)
            return SweepReport()

    stop = asyncio.Event()
    task = asyncio.create_task(sweep_periodically(SlowStorage(), 60, stop))  # type: ignore[arg-type]
    await started.wait()
    stop.set()
    release.set()
    await asyncio.wait_for(task, 5)

    assert finished == [True] and not task.cancelled()


async def test_a_sweep_without_the_database_is_one_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A PostgreSQL out of reach at start logged a traceback each round."""
    from docmill.storage import SweepReport, sweep_periodically

    stop = asyncio.Event()

    class Unreachable:
        async def sweep_staging(self, max_age_seconds: float) -> SweepReport:
            stop.set()
            raise ConnectionRefusedError(111, "Connect call failed")

    with caplog.at_level(logging.WARNING, logger="docmill.storage"):
        await asyncio.wait_for(sweep_periodically(Unreachable(), 60, stop), 5)  # type: ignore[arg-type]

    assert [(r.levelname, r.exc_info) for r in caplog.records] == [("WARNING", None)]
    assert "database unavailable" in caplog.records[0].getMessage()
