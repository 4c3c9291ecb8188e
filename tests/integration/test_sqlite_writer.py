"""The SQLite writer: its connection, and transactions run back to back."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import sqlite3
import threading
from pathlib import Path

import pytest
from sqlalchemy import text

from docmill.db.engine import (
    SqliteTransaction,
    SqliteWriter,
    _open_sqlite_writer,
    _write_until_stopped,
    create_engine,
)


def _spilled_journals() -> list[str]:
    """SQLite's open temporary files (unlinked at once: ``etilqs_*``)."""
    links = []
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # the listing's own descriptor
            links.append(os.readlink(f"/proc/self/fd/{fd}"))
    return [link for link in links if "etilqs_" in link]


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc")
def test_the_statement_journal_stays_in_memory(tmp_path: Path) -> None:
    """
    A multi-row INSERT into a table with unique indexes keeps a statement
    journal; the writer's must not spill to a temporary file, one more
    file and a write per page on every group commit.
    """
    writer = _open_sqlite_writer(str(tmp_path / "docmill.db"))
    try:
        writer.execute("PRAGMA journal_mode=WAL")
        writer.execute("CREATE TABLE t (id TEXT PRIMARY KEY, sha TEXT UNIQUE, body)")
        insert = f"INSERT INTO t VALUES {', '.join(['(?, ?, ?)'] * 100)}"
        # Only the pages there before the statement are journaled: the last
        # group's keys land all over the indexes of the rows before it.
        for group in range(21):
            keys = [hashlib.sha256(b"%d" % (21 * n + group)) for n in range(100)]
            rows = [(k.hexdigest()[:32], k.hexdigest(), "x") for k in keys]
            writer.execute("BEGIN IMMEDIATE")
            writer.execute(insert, [value for row in rows for value in row])
            spilled = _spilled_journals()
            writer.execute("COMMIT")
    finally:
        writer.close()

    assert spilled == []


@pytest.mark.anyio
async def test_a_failed_commit_is_rolled_back(tmp_path: Path) -> None:
    """
    A COMMIT that fails can leave its transaction open (here a deferred
    foreign key; SQLITE_BUSY likewise): the writer rolls it back, so the
    next transaction can begin and nothing holds the write lock.
    """
    path = tmp_path / "docmill.db"
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    async with engine.begin() as connection:
        await connection.execute(text("CREATE TABLE parent (id INTEGER PRIMARY KEY)"))
        await connection.execute(
            text("CREATE TABLE child (id INTEGER, parent_id REFERENCES parent (id))")
        )
    writer = SqliteWriter(engine)

    def orphan(transaction: SqliteTransaction) -> None:
        transaction.execute(text("PRAGMA defer_foreign_keys=ON"))
        transaction.execute(text("INSERT INTO child VALUES (1, 99)"))

    def parent(transaction: SqliteTransaction) -> None:
        transaction.execute(text("INSERT INTO parent VALUES (1)"))

    try:
        with pytest.raises(sqlite3.IntegrityError):
            await writer.run(orphan)
        await writer.run(parent)
        async with engine.connect() as connection:
            rows = (await connection.execute(text("SELECT id FROM child"))).all()
            parents = (await connection.execute(text("SELECT id FROM parent"))).all()
    finally:
        await asyncio.to_thread(writer.close)
        await engine.dispose()

    assert (rows, parents) == ([], [(1,)])


class _CloseBeforePut:
    """
    The writer's queue, with ``close()`` started in another thread just as
    a transaction is about to be queued: the moment ``JobStore.close`` (run
    in a thread) can meet a write still being handed over.
    """

    def __init__(self, writer: SqliteWriter) -> None:
        self._items = writer._queue
        self._writer = writer
        self.armed = False

    def put(self, item: object) -> None:
        if self.armed and item is not None:
            self.armed = False
            closer = threading.Thread(target=self._writer.close)
            closer.start()
            # A close that cannot get in first waits for the hand-over.
            closer.join(timeout=0.5)
        self._items.put(item)  # type: ignore[arg-type]

    def get(self) -> object:
        return self._items.get()


@pytest.mark.anyio
async def test_a_close_racing_a_transaction_never_strands_it(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'docmill.db'}")
    writer = SqliteWriter(engine)
    racing = _CloseBeforePut(writer)
    writer._queue = racing  # type: ignore[assignment]

    def answer(transaction: SqliteTransaction) -> int:
        return 7

    await writer.run(answer)
    racing.armed = True
    running = asyncio.ensure_future(writer.run(answer))
    # It runs before the close or is refused: it is never left waiting.
    done, _ = await asyncio.wait([running], timeout=5)
    if not done:
        # Stranded behind the thread's stop: run it, so the test can end.
        stranded = threading.Thread(target=_write_until_stopped, args=(racing,))
        stranded.start()
        racing.put(None)
        await asyncio.to_thread(stranded.join)
    await asyncio.to_thread(writer.close)
    await engine.dispose()

    assert (done, running.result()) == ({running}, 7)


@pytest.mark.anyio
async def test_a_writer_cancelled_twice_keeps_the_lock_until_its_commit(
    tmp_path: Path,
) -> None:
    """
    The second cancel of a caller waiting out its transaction ended the
    wait: the engine's lock went while the writer's thread still wrote, and
    the next write through the engine met SQLite's busy timeout.
    """
    from docmill.db.engine import _SQLITE_WRITERS

    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'docmill.db'}")
    writer = SqliteWriter(engine)
    began, finish = threading.Event(), threading.Event()

    def slow(transaction: SqliteTransaction) -> None:
        began.set()
        finish.wait(10)

    caller = asyncio.create_task(writer.run(slow))
    await asyncio.to_thread(began.wait, 10)
    lock = _SQLITE_WRITERS[engine.sync_engine]
    caller.cancel()
    await asyncio.sleep(0.01)
    caller.cancel()
    await asyncio.sleep(0.01)
    held_while_writing = lock.locked()
    finish.set()
    with contextlib.suppress(asyncio.CancelledError):
        await caller
    writer.close()
    await engine.dispose()

    assert (held_while_writing, caller.cancelled(), lock.locked()) == (
        True,
        True,
        False,
    )
