"""
Engines for the two supported databases.

SQLite runs in WAL mode so readers never wait for the writer, with a busy
timeout so a writer waits for another instead of failing. Deferred SQLite
transactions that read and then write can fail with "database is locked" at
the moment they upgrade their lock, and no busy timeout helps with that, so
every write transaction docmill opens on SQLite starts with BEGIN IMMEDIATE
(``write_transaction``); reads stay deferred and never block.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

SQLITE_BUSY_TIMEOUT_MS = 30_000
SQLITE_MMAP_BYTES = 1024 * 1024 * 1024
SQLITE_CACHE_KIB = 64 * 1024


def create_engine(url: str, **kwargs: Any) -> AsyncEngine:
    if url.startswith("sqlite"):
        return _create_sqlite_engine(url, **kwargs)
    return create_async_engine(url, pool_pre_ping=True, **kwargs)


def _create_sqlite_engine(url: str, **kwargs: Any) -> AsyncEngine:
    engine = create_async_engine(
        url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}, **kwargs
    )

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event, not the driver, start transactions.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        # Read a large database through the page cache of the OS (mmap) and
        # keep more pages per connection than the 2 MB default.
        cursor.execute(f"PRAGMA mmap_size={SQLITE_MMAP_BYTES}")
        cursor.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Connection) -> None:
        # Writes (write_transaction) take the write lock up front. Reads run
        # without BEGIN, each statement its own snapshot: that saves a round
        # trip to aiosqlite's thread on every status read, and no read path
        # needs two statements to agree.
        if connection.get_execution_options().get("sqlite_immediate"):
            connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


# SQLite has one writer at a time. Writers of this process queue on a lock
# here, in order, instead of each taking a pooled connection and sleeping in
# the busy handler until the file lock frees: under load the busy handler's
# back-off wasted most of the time. Other processes still meet the file lock
# and the busy timeout.
_SQLITE_WRITERS: weakref.WeakKeyDictionary[Any, asyncio.Lock] = (
    weakref.WeakKeyDictionary()
)


@asynccontextmanager
async def write_transaction(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """
    A write transaction; on SQLite, it takes the write lock up front.

    Must not be nested: on SQLite the inner one would wait for the outer.
    """
    if engine.dialect.name != "sqlite":
        async with engine.begin() as connection:
            yield connection
        return
    lock = _SQLITE_WRITERS.setdefault(engine.sync_engine, asyncio.Lock())
    async with lock, engine.connect() as connection:
        connection = await connection.execution_options(sqlite_immediate=True)
        async with connection.begin():
            yield connection
