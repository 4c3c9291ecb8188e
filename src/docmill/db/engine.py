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
import collections
import contextlib
import json
import logging
import queue
import sqlite3
import threading
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, NamedTuple, TypeVar

from sqlalchemy import Select, event
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

SQLITE_BUSY_TIMEOUT_MS = 30_000
SQLITE_MMAP_BYTES = 1024 * 1024 * 1024
SQLITE_CACHE_KIB = 64 * 1024
# Bound parameters per statement that every SQLite build takes (before 3.32
# the limit was 999).
SQLITE_SAFE_VARIABLES = 999
# FULL, not NORMAL: in WAL mode NORMAL skips the fsync at commit, so a
# document acknowledged with 202 (and a result marked completed) could be
# lost to a power cut or an OS crash, though not to a killed process. The
# fsync is one per transaction, and submissions commit in groups.
SQLITE_SYNCHRONOUS = "FULL"
# A read on the event loop's thread gives up this soon and retries in a thread.
SQLITE_READER_BUSY_TIMEOUT_MS = 50
# The most connections one process opens to PostgreSQL by default
# (DOCMILL_DB_MAX_CONNECTIONS): two fifths kept open by the engine, one fifth
# more it may open under load, and two fifths for the read pool beside it
# (RowReader). With 10 in each pool, 64 clients' status reads queued for a
# connection while the API's CPU sat half idle.
POSTGRES_MAX_CONNECTIONS = 50
POOL_FAILURES_TO_GIVE_UP = 3

logger = logging.getLogger(__name__)

T = TypeVar("T")


class ConnectionShares(NamedTuple):
    """How one process's PostgreSQL connections are split."""

    pool: int  # kept open by the engine
    overflow: int  # opened by the engine under load, closed when idle
    reads: int  # the read pool's most (RowReader)


def connection_shares(max_connections: int) -> ConnectionShares:
    """Split ``max_connections`` (at least 3) between the engine and reads."""
    if max_connections < 3:
        raise ValueError("a process needs at least 3 connections to PostgreSQL")
    pool = reads = max(1, max_connections * 2 // 5)
    return ConnectionShares(pool, max_connections - pool - reads, reads)


def create_engine(
    url: str, max_connections: int = POSTGRES_MAX_CONNECTIONS, **kwargs: Any
) -> AsyncEngine:
    """
    The engine for ``url``; on PostgreSQL, it and the read pool opened on it
    (``RowReader``) together hold at most ``max_connections``.
    """
    if url.startswith("sqlite"):
        return _create_sqlite_engine(url, **kwargs)
    # Under load, connections past pool_size were closed as soon as they came
    # back and opened again a moment later (a new server process each time on
    # PostgreSQL); keep as many as a busy API process uses at once.
    shares = connection_shares(max_connections)
    options: dict[str, Any] = {
        "pool_pre_ping": True,
        "pool_size": shares.pool,
        "max_overflow": shares.overflow,
    }
    engine = create_async_engine(url, **(options | kwargs))
    _READ_POOL_SIZES[engine.sync_engine] = shares.reads
    return engine


# The read pool's size for each PostgreSQL engine, set where the engine's
# share is decided; keyed weakly, as engines come and go in tests.
_READ_POOL_SIZES: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()


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
        cursor.execute(f"PRAGMA synchronous={SQLITE_SYNCHRONOUS}")
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


class RowReader:
    """
    Runs the hot single-row reads (a status poll) with as little machinery
    as each database allows; answers rows with attribute access by label.

    On SQLite, through aiosqlite, one primary-key lookup cost several hops to
    the connection's thread (checkout, execute, fetch, the pool's rollback on
    return), each a wake-up of the event loop, and that dwarfed the lookup.
    Here the statement runs on a plain ``sqlite3`` connection of its own, in
    the event loop's thread. That is safe to do without a thread because in
    WAL mode a reader never waits for the writer: it reads the last committed
    snapshot, from the page cache for a hot row, in microseconds. A reader
    can still meet a lock in rare cases (WAL recovery after a crash, another
    process holding the database exclusively), so its busy timeout is short
    and such a read is retried through the engine, which waits in its own
    thread. The one cost left on the loop is a page that is not cached.

    On PostgreSQL, a read through SQLAlchemy's pool cost a ping on checkout,
    a BEGIN, the query and a ROLLBACK on return, and about 0.5 ms of the
    API's CPU besides. Here it is one prepared statement on a small asyncpg
    pool of its own, in autocommit; with ``first_by_key`` the reads of one
    turn of the event loop share one. Should that pool fail (a dropped
    connection, the server gone, an option in the URL asyncpg does not
    take), the read goes through the engine, which reconnects and reports
    errors as the API expects; after a few such failed queries in a row
    whose reads the engine could serve, the pool is given up.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._sqlite_path: str | None = None
        # At most one connection; a list so the finalizer need not hold self.
        self._sqlite: list[sqlite3.Connection] = []
        self._compiled: dict[Any, tuple[str, list[tuple[str, Any]], _RowConverter]] = {}
        database = engine.url.database
        if engine.dialect.name == "sqlite" and database and database != ":memory:":
            self._sqlite_path = database
            weakref.finalize(self, _close_all, self._sqlite)
        self._asyncpg = engine.dialect.driver == "asyncpg"
        self._pool: Any = None
        self._pool_opening: asyncio.Future[Any] | None = None
        # Reads in a row that failed on the pool but worked through the engine.
        self._pool_failures = 0
        # Pooled statements the server refused a connection for, whose
        # fallback to the engine is not to count as the pool's failure.
        self._refusals_to_forgive = 0
        # PostgreSQL reads of this turn of the event loop, by statement.
        self._batches: dict[Any, _ReadBatch] = {}

    async def first(self, statement: Select[Any], **params: Any) -> Any | None:
        """The first row of ``statement``, or None."""
        return await self._first(statement, params, None)

    async def first_by_key(
        self, statement: Select[Any], batched: Select[Any], key: str, **param: Any
    ) -> Any | None:
        """
        The first row of ``statement``, which takes one parameter, a value of
        the column ``key``; ``batched`` is the same query for a list of them.

        On PostgreSQL the reads that reach this in one turn of the event loop
        go to the server together, as one ``batched`` query: under load, a
        turn hands out many requests, and each read on its own cost a pool
        checkout and a round trip, in the API and in PostgreSQL (on the same
        cores), as much as the rest of the request. A lone read waits for no
        one: it goes at the start of the next turn.
        """
        return await self._first(statement, param, (batched, key))

    async def _first(
        self,
        statement: Select[Any],
        params: dict[str, Any],
        batched: tuple[Select[Any], str] | None,
    ) -> Any | None:
        pool_failed = False
        if self._sqlite_path is not None:
            try:
                return self._sqlite_first(statement, params)
            except sqlite3.OperationalError:
                pass  # locked past the short timeout: wait in the engine instead
        elif self._asyncpg and self._pool_failures < POOL_FAILURES_TO_GIVE_UP:
            batch = None
            try:
                if batched is None:
                    row = await self._asyncpg_first(statement, params)
                else:
                    (value,) = params.values()
                    batch, future = self._join_batch(*batched, value)
                    row = await future
            except Exception as exc:
                # A dropped connection, an outage, or an option in the URL
                # that asyncpg does not take: the engine tells them apart.
                # A failed batch counts once, however many reads it held. A
                # server out of connections is no fault of the pool's: it
                # passes, and counting it could give the pool up for good.
                pool_failed = not _refused_for_now(exc) and (
                    batch is None or batch.blame()
                )
            else:
                self._pool_failures = 0
                return row
        async with self.engine.connect() as connection:
            row = (await connection.execute(statement, params)).first()
        if pool_failed:
            # The engine could read what the pool could not.
            self._count_pool_failure()
        return row

    @property
    def pooled(self) -> bool:
        """Whether statements go to the asyncpg pool (``execute_pooled``)."""
        return self._asyncpg and self._pool_failures < POOL_FAILURES_TO_GIVE_UP

    async def execute_pooled(self, sql: str, *args: Any) -> bool:
        """
        Run one statement of asyncpg's SQL on the pool, in autocommit (one
        statement, one transaction); False if the pool failed, for the
        caller to do the work through the engine instead.

        A failure counts with the reads' towards giving the pool up once
        the caller reports (``engine_served``) that the engine did the work.
        """
        if not self.pooled:
            return False
        try:
            pool = await self._asyncpg_pool()
            await pool.execute(sql, *args)
        except Exception as exc:
            # As for reads: the engine tells an outage from a bad statement,
            # and its errors are the ones the API maps to answers; a server
            # out of connections is not held against the pool.
            if _refused_for_now(exc):
                self._refusals_to_forgive += 1
            return False
        self._pool_failures = 0
        return True

    async def copy_pooled(
        self, sql: str, *args: Any, output: Callable[[bytes], Awaitable[None]]
    ) -> bool:
        """
        ``COPY (sql) TO STDOUT`` in PostgreSQL's binary format, on the pool,
        its bytes handed to ``output``; False if the pool is not in use.
        """
        if not self.pooled:
            return False
        pool = await self._asyncpg_pool()
        async with pool.acquire() as connection:
            await connection.copy_from_query(sql, *args, output=output, format="binary")
        return True

    def engine_served(self) -> None:
        """The engine did what ``execute_pooled`` could not."""
        if self._refusals_to_forgive:
            self._refusals_to_forgive -= 1
            return
        self._count_pool_failure()

    def _count_pool_failure(self) -> None:
        self._pool_failures += 1
        if self._pool_failures == POOL_FAILURES_TO_GIVE_UP:
            logger.warning(
                "status reads and submissions go through the engine from now "
                "on: the asyncpg pool failed %d times in a row where the "
                "engine did not",
                POOL_FAILURES_TO_GIVE_UP,
                extra={"action": "fast_reads_off"},
            )

    @property
    def sqlite_file(self) -> bool:
        """Whether ``sqlite_slice`` can read (SQLite in a file)."""
        return self._sqlite_path is not None

    async def sqlite_slice(
        self, locate: str, params: Sequence[Any], offset: int, size: int
    ) -> tuple[tuple[Any, ...], int, bytes] | None:
        """
        ``size`` bytes from ``offset`` of one stored value, read in place.

        ``locate`` is a query whose first row names the value: table,
        column and rowid first, then whatever the caller wants to check,
        all read in the same snapshot as the bytes. Answers those extra
        columns, the value's length in bytes and the bytes; None when the
        query finds no row. A text comes as it is stored, in UTF-8.

        SQLite's incremental blob reads fetch only the pages asked for;
        ``substr`` would load the whole value (megabytes) for each slice.
        """
        if self._sqlite_path is None:
            raise RuntimeError("sqlite_slice needs a SQLite database in a file")
        if not self._sqlite:
            self._sqlite.append(_open_sqlite_reader(self._sqlite_path))
        try:
            return _read_slice(self._sqlite[0], locate, params, offset, size)
        except sqlite3.OperationalError:
            # Locked past the short timeout (recovery, a checkpoint): wait
            # in a thread, on a connection of its own, as the engine would.
            return await asyncio.to_thread(
                _read_slice_apart, self._sqlite_path, locate, params, offset, size
            )

    def _sqlite_first(self, statement: Select[Any], params: dict[str, Any]) -> Any:
        sql, names, convert = self._compile(statement)
        if not self._sqlite:
            self._sqlite.append(_open_sqlite_reader(self._sqlite_path or ""))
        raw = self._sqlite[0].execute(sql, _bound(names, params)).fetchone()
        return None if raw is None else convert(raw)

    async def _asyncpg_first(
        self, statement: Select[Any], params: dict[str, Any]
    ) -> Any:
        sql, names, convert = self._compile(statement)
        pool = await self._asyncpg_pool()
        raw = await pool.fetchrow(sql, *_bound(names, params))
        return None if raw is None else convert(raw)

    async def _asyncpg_pool(self) -> Any:
        if self._pool is None:
            # Shared, so reads that arrive together open one pool, not many.
            opening = self._pool_opening
            if opening is None or opening.get_loop() is not asyncio.get_running_loop():
                opening = self._pool_opening = asyncio.ensure_future(
                    _open_asyncpg_pool(self.engine)
                )
            try:
                pool = await asyncio.shield(opening)
            finally:
                if opening.done() and self._pool_opening is opening:
                    self._pool_opening = None
            if self._pool is None:
                self._pool = pool
            elif pool is not self._pool:
                await pool.close()
        return self._pool

    def _join_batch(
        self, statement: Select[Any], key: str, value: Any
    ) -> tuple[_ReadBatch, asyncio.Future[Any]]:
        """A future of the row for ``value``, read with this turn's others."""
        loop = asyncio.get_running_loop()
        batch = self._batches.get(statement)
        if batch is None or batch.loop is not loop:
            batch = self._batches[statement] = _ReadBatch(loop)
            # Its first step runs in the next turn, after every request this
            # turn started has asked for its row.
            batch.task = loop.create_task(self._read_batch(statement, key, batch))
        future: asyncio.Future[Any] = loop.create_future()
        batch.waiting.setdefault(value, []).append(future)
        return batch, future

    async def _read_batch(
        self, statement: Select[Any], key: str, batch: _ReadBatch
    ) -> None:
        if self._batches.get(statement) is batch:
            del self._batches[statement]
        try:
            sql, _, convert = self._compile(statement)
            pool = await self._asyncpg_pool()
            raws = await pool.fetch(sql, list(batch.waiting))
        except BaseException as exc:
            for futures in batch.waiting.values():
                for future in futures:
                    if future.done():
                        continue
                    if isinstance(exc, asyncio.CancelledError):
                        future.cancel()
                    else:
                        future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        found = {raw[key]: raw for raw in raws}
        for value, futures in batch.waiting.items():
            raw = found.get(value)
            row = None if raw is None else convert(raw)
            for future in futures:
                if not future.done():
                    future.set_result(row)

    def _compile(
        self, statement: Select[Any]
    ) -> tuple[str, list[tuple[str, Any]], _RowConverter]:
        # Compiled once per statement object, with the dialect's own
        # conversions (JSON, UTC timestamps, booleans) of results and of the
        # parameters that need one, so a row reads the same as one that came
        # through the engine, and a timestamp compares as the engine's would.
        found = self._compiled.get(statement)
        if found is None:
            dialect = self.engine.dialect
            compiled = statement.compile(dialect=dialect)
            columns = list(statement.selected_columns)
            processors = [_result_processor(c.type, dialect) for c in columns]
            row_type = collections.namedtuple(  # type: ignore[misc]
                "ReadRow", [str(c.key) for c in columns]
            )
            names = [
                (name, _bind_processor(compiled.binds[name].type, dialect))
                for name in compiled.positiontup or []
            ]
            found = (str(compiled), names, _RowConverter(processors, row_type))
            self._compiled[statement] = found
        return found

    async def close(self) -> None:
        _close_all(self._sqlite)
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()


class _ReadBatch:
    """The keys asked for in one turn of the event loop, and who asked."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.waiting: dict[Any, list[asyncio.Future[Any]]] = {}
        self.task: asyncio.Task[None] | None = None
        self.blamed = False

    def blame(self) -> bool:
        """True for the first reader to count this batch's failure."""
        first, self.blamed = not self.blamed, True
        return first


def _bound(names: list[tuple[str, Any]], params: dict[str, Any]) -> list[Any]:
    return [
        params[name] if process is None else process(params[name])
        for name, process in names
    ]


def _bind_processor(type_: Any, dialect: Any) -> Any:
    try:
        return type_.dialect_impl(dialect).bind_processor(dialect)
    except TypeError:
        return None  # as for results: asyncpg converts what it is given


def _result_processor(type_: Any, dialect: Any) -> Any:
    try:
        return type_.dialect_impl(dialect).result_processor(dialect, None)
    except TypeError:
        # asyncpg's numeric types want the column's type OID to choose, and
        # need nothing: asyncpg already answers Python ints and floats.
        return None


class _RowConverter:
    """
    A driver's row as the engine would answer it: converted values, by label.

    Only the columns with a conversion are touched, and a NULL is passed by
    when the conversion maps None to None (all of docmill's do), so a
    pending document's many empty columns cost nothing. A status read spent
    about 30 µs here when every value went through a generator.
    """

    def __init__(self, processors: list[Any], row_type: Any) -> None:
        self.make = row_type._make
        self.always: list[tuple[int, Any]] = []
        self.unless_null: list[tuple[int, Any]] = []
        for index, process in enumerate(processors):
            if process is not None:
                kind = self.unless_null if _keeps_null(process) else self.always
                kind.append((index, process))

    def __call__(self, raw: Any) -> Any:
        values = list(raw)
        for index, process in self.unless_null:
            value = values[index]
            if value is not None:
                values[index] = process(value)
        for index, process in self.always:
            values[index] = process(values[index])
        return self.make(values)


def _keeps_null(process: Any) -> bool:
    try:
        return process(None) is None
    except Exception:
        return False


async def _open_asyncpg_pool(engine: AsyncEngine) -> Any:
    import asyncpg

    # The engine's own translation of its URL, less what only SQLAlchemy
    # reads; JSON decoded as the engine's connections decode it.
    _, options = engine.dialect.create_connect_args(engine.url)
    options.pop("prepared_statement_cache_size", None)
    options.pop("prepared_statement_name_func", None)

    async def setup(connection: Any) -> None:
        await connection.set_type_codec(
            "json",
            encoder=json.dumps,
            decoder=json.loads,
            schema="pg_catalog",
            format="text",
        )

    async def keep_session(connection: Any) -> None:
        # By default every release sends "RESET ALL; UNLISTEN *; ..." to the
        # server, a second round trip per status read. These connections
        # only ever run single SELECTs in autocommit and change no session
        # state; asyncpg still rolls back an open transaction before this.
        pass

    return await asyncpg.create_pool(
        min_size=0,
        max_size=_READ_POOL_SIZES.get(
            engine.sync_engine, connection_shares(POSTGRES_MAX_CONNECTIONS).reads
        ),
        init=setup,
        reset=keep_session,
        **options,
    )


def _refused_for_now(error: BaseException) -> bool:
    """Whether PostgreSQL refused a connection for a while: too many
    clients, or the server starting or stopping."""
    sqlstate = getattr(error, "sqlstate", None)
    return sqlstate in ("53300", "57P03")


def _close_all(connections: list[sqlite3.Connection]) -> None:
    while connections:
        connections.pop().close()


def _read_slice(
    connection: sqlite3.Connection,
    locate: str,
    params: Sequence[Any],
    offset: int,
    size: int,
) -> tuple[tuple[Any, ...], int, bytes] | None:
    # One read transaction, so the row found and the bytes read agree.
    connection.execute("BEGIN")
    try:
        row = connection.execute(locate, params).fetchone()
        if row is None:
            return None
        table, column, rowid, *checked = row
        with connection.blobopen(table, column, rowid, readonly=True) as blob:
            length = len(blob)
            blob.seek(min(offset, length))
            return tuple(checked), length, blob.read(size)
    finally:
        connection.execute("COMMIT")


def _read_slice_apart(
    path: str, locate: str, params: Sequence[Any], offset: int, size: int
) -> tuple[tuple[Any, ...], int, bytes] | None:
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        return _read_slice(connection, locate, params, offset, size)
    finally:
        connection.close()


def _open_sqlite_reader(path: str) -> sqlite3.Connection:
    # Used from the event loop's thread only; check_same_thread is off so an
    # engine disposed from another thread can still close it.
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    connection.execute("PRAGMA query_only=ON")
    connection.execute(f"PRAGMA busy_timeout={SQLITE_READER_BUSY_TIMEOUT_MS}")
    connection.execute(f"PRAGMA mmap_size={SQLITE_MMAP_BYTES}")
    return connection


class SqliteWriter:
    """
    Runs a whole write transaction on SQLite in one hop to a thread.

    Through aiosqlite every statement cost three or four hops to the
    connection's thread (cursor, execute, fetch, close), and the transaction
    as many again (checkout, BEGIN IMMEDIATE, COMMIT, the pool's reset):
    each a wake-up of the event loop, and the driver's thread holding the
    GIL meanwhile. Here the caller hands a plain function that runs every
    statement of the transaction on a ``sqlite3`` connection of the writer's
    own, between BEGIN IMMEDIATE and COMMIT, in a thread of its own. It
    queues on the same in-process lock as ``write_transaction``, so the two
    paths never contend for the file lock; other processes meet the busy
    timeout as before. Statements are SQLAlchemy's, compiled once for
    SQLite with the dialect's own conversions of values (UTC timestamps,
    JSON), so a row reads the same whichever path wrote it.

    The thread takes transactions from a queue and answers each through
    the event loop's ``call_soon_threadsafe``. Through an executor, each
    hand-off (a ``concurrent.futures`` future with its lock and condition,
    chained to an asyncio one) was 12.6% of the event loop's samples in a
    busy ``serve`` (py-spy ``--gil``); now 6%, most of it the queue's
    wake-up of the thread.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        assert engine.dialect.name == "sqlite"
        self.engine = engine
        self._path = engine.url.database or ""
        self._queue: queue.SimpleQueue[_WriterItem | None] = queue.SimpleQueue()
        self._thread: list[threading.Thread] = []
        self._connection: list[sqlite3.Connection] = []
        self._statements = _SqliteStatements(engine.dialect)
        self._closed = False
        # close() runs in a thread of its own (JobStore.close): the check
        # that the writer is open and the hand-over of a transaction must
        # not let a close in between, or the transaction lands behind the
        # thread's stop and its caller waits for ever.
        self._handing_over = threading.Lock()
        weakref.finalize(
            self, _close_writer, self._queue, self._thread, self._connection
        )

    def close(self) -> None:
        """
        Close the writer's connection once the transactions queued have run.

        Left to the garbage collector, the connection (and its WAL and
        shared-memory files) stayed open as long as anything held the
        store: seven descriptors an app in a process that makes many.
        """
        with self._handing_over:
            self._closed = True
            self._queue.put(None)
            threads = self._thread.copy()
            self._thread.clear()
        for thread in threads:
            thread.join()
        _close_all(self._connection)

    @staticmethod
    def usable(engine: AsyncEngine) -> bool:
        """Whether ``engine`` is a SQLite file (not in memory) this can share."""
        database = engine.url.database
        return (
            engine.dialect.name == "sqlite"
            and bool(database)
            and (database != ":memory:")
        )

    async def run(self, work: Callable[[SqliteTransaction], T]) -> T:
        """Run ``work`` in one write transaction; its answer, after COMMIT."""
        lock = _SQLITE_WRITERS.setdefault(self.engine.sync_engine, asyncio.Lock())
        loop = asyncio.get_running_loop()
        async with lock:
            running: asyncio.Future[T] = loop.create_future()
            self._hand_over(_WriterItem(self._transaction, work, loop, running))
            try:
                return await asyncio.shield(running)
            except asyncio.CancelledError:
                # The thread cannot be stopped: hold the lock until it is done,
                # as a cancelled write_transaction does until its rollback.
                # A second cancel must not end the wait: the lock would go
                # while the thread still commits.
                while not running.done():
                    with contextlib.suppress(asyncio.CancelledError):
                        await asyncio.wait([running])
                raise

    def _hand_over(self, item: _WriterItem) -> None:
        with self._handing_over:
            if self._closed:
                raise RuntimeError("the SQLite writer is closed")
            if not self._thread:
                # Holds no reference to the writer, whose finalizer stops it.
                thread = threading.Thread(
                    target=_write_until_stopped,
                    args=(self._queue,),
                    name="docmill-writer",
                    daemon=True,
                )
                thread.start()
                self._thread.append(thread)
            self._queue.put(item)

    def _transaction(self, work: Callable[[SqliteTransaction], T]) -> T:
        if not self._connection:
            self._connection.append(_open_sqlite_writer(self._path))
        connection = self._connection[0]
        connection.execute("BEGIN IMMEDIATE")
        try:
            answer = work(SqliteTransaction(connection, self._statements))
            # Inside: a COMMIT that fails can leave the transaction open (a
            # deferred constraint, SQLITE_BUSY), and with it the write lock.
            connection.execute("COMMIT")
        except BaseException:
            # SQLite may have rolled back already (a full disk, say).
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise
        return answer


class SqliteTransaction:
    """The statements of one ``SqliteWriter.run``, on its writer thread."""

    def __init__(
        self, connection: sqlite3.Connection, statements: _SqliteStatements
    ) -> None:
        self._connection = connection
        self._statements = statements

    def execute(self, statement: Any, params: dict[str, Any] | None = None) -> int:
        """Run ``statement``; the number of rows it changed."""
        compiled = self._statements.get(statement)
        cursor = self._connection.execute(compiled.sql, compiled.bind(params or {}))
        cursor.fetchall()
        return int(cursor.rowcount)

    def executemany(self, statement: Any, rows: Sequence[dict[str, Any]]) -> int:
        """Run ``statement`` once per parameter set; the rows changed in all."""
        if not rows:
            return 0
        compiled = self._statements.get(statement)
        cursor = self._connection.executemany(compiled.sql, compiled.bind_all(rows))
        return int(cursor.rowcount)

    def insert_all(self, statement: Any, rows: Sequence[dict[str, Any]]) -> None:
        """
        Insert ``rows`` with ``statement``, a one-row ``INSERT ... VALUES``,
        as multi-row statements: ``executemany`` paid the sqlite3 module's
        reset, binding and step per row, a sixth of a submission's insert.
        """
        if not rows:
            return
        compiled = self._statements.get(statement)
        per_statement = max(1, SQLITE_SAFE_VARIABLES // max(1, len(compiled.names)))
        bound = compiled.bind_all(rows)
        for start in range(0, len(rows), per_statement):
            chunk = bound[start : start + per_statement]
            values = [value for row in chunk for value in row]
            self._connection.execute(compiled.many_sql(len(chunk)), values)

    def rows(self, statement: Any, params: dict[str, Any] | None = None) -> list[Any]:
        """The rows ``statement`` answers (a SELECT, or RETURNING)."""
        compiled = self._statements.get(statement)
        raw = self._connection.execute(compiled.sql, compiled.bind(params or {}))
        return [compiled.convert(row) for row in raw]


class _CompiledForSqlite:
    def __init__(self, statement: Any, dialect: Any) -> None:
        compiled = statement.compile(dialect=dialect)
        self.sql = str(compiled)
        self.names: list[str] = list(compiled.positiontup or [])
        self.defaults: dict[str, Any] = dict(compiled.params)
        binds = compiled.binds
        self.converters = [
            binds[name].type.dialect_impl(dialect).bind_processor(dialect)
            for name in self.names
        ]
        # Columns of one type convert a value alike: a new document's three
        # timestamps are one value, converted once (each took 4-7 µs).
        kinds: dict[tuple[type, str], int] = {}
        self.kinds = [
            kinds.setdefault((type(binds[n].type), repr(binds[n].type)), len(kinds))
            for n in self.names
        ]
        # Only these positions convert: a new document has 20 values and 4
        # conversions, and the loop over every value once cost more than the
        # conversions (a submission's bind went from about 18 to 10 µs).
        self.conversions = [
            (index, convert, kind)
            for index, (convert, kind) in enumerate(
                zip(self.converters, self.kinds, strict=True)
            )
            if convert is not None
        ]
        # A SELECT's columns, or those of RETURNING.
        columns = list(getattr(statement, "exported_columns", ()))
        self.convert = _RowConverter(
            [_result_processor(c.type, dialect) for c in columns],
            collections.namedtuple("WriteRow", [str(c.key) for c in columns]),
        )

    def many_sql(self, count: int) -> str:
        """This one-row INSERT's SQL for ``count`` rows."""
        head, _, rest = self.sql.partition(" VALUES ")
        row = rest[: rest.find(")") + 1]
        if not row or set(row) - set("(?, )"):
            raise ValueError(f"not a one-row INSERT of parameters: {self.sql}")
        return f"{head} VALUES {', '.join([row] * count)}{rest[len(row) :]}"

    def bind_all(self, rows: Sequence[dict[str, Any]]) -> list[list[Any]]:
        """
        Each row's values; a value shared by rows converts once (a group's
        blobs share their ``created_at``, its new rows their empty metadata).
        """
        converted: dict[tuple[int, int], Any] = {}
        return [self.bind(row, converted) for row in rows]

    def bind(
        self,
        params: dict[str, Any],
        converted: dict[tuple[int, int], Any] | None = None,
    ) -> list[Any]:
        """
        The values of ``params`` in order, converted. ``converted`` holds
        conversions by identity, so it must not outlive the values it was
        filled from (``bind_all`` holds them for the call).
        """
        defaults = self.defaults
        values = [
            params[name] if name in params else defaults[name] for name in self.names
        ]
        if converted is None:
            converted = {}
        for index, convert, kind in self.conversions:
            value = values[index]
            # By identity: the caller holds the value for the whole call.
            key = (kind, id(value))
            if key in converted:
                values[index] = converted[key]
            else:
                values[index] = converted[key] = convert(value)
        return values


class _SqliteStatements:
    """Statements compiled once per writer, by the statement object."""

    def __init__(self, dialect: Any) -> None:
        self.dialect = dialect
        self._compiled: dict[Any, _CompiledForSqlite] = {}

    def get(self, statement: Any) -> _CompiledForSqlite:
        found = self._compiled.get(statement)
        if found is None:
            found = self._compiled[statement] = _CompiledForSqlite(
                statement, self.dialect
            )
        return found


def _open_sqlite_writer(path: str) -> sqlite3.Connection:
    # Used from the writer's one thread, but closed from whichever thread
    # disposes of it.
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    connection.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    connection.execute(f"PRAGMA synchronous={SQLITE_SYNCHRONOUS}")
    connection.execute("PRAGMA foreign_keys=ON")
    connection.execute(f"PRAGMA mmap_size={SQLITE_MMAP_BYTES}")
    connection.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
    # A multi-row INSERT into a table with unique indexes keeps a statement
    # journal (the pages it changes, to undo it alone should a row fail);
    # past 64 KiB SQLite spilled it to a temporary file: an open, an unlink
    # and a write per page on every group commit of submissions. Kept in
    # memory it is as large as the statement's pages, and it never served
    # durability: the WAL and its fsync do.
    connection.execute("PRAGMA temp_store=MEMORY")
    return connection


class _WriterItem(NamedTuple):
    transaction: Callable[[Callable[[SqliteTransaction], Any]], Any]
    work: Callable[[SqliteTransaction], Any]
    loop: asyncio.AbstractEventLoop
    answer: asyncio.Future[Any]


def _write_until_stopped(items: queue.SimpleQueue[_WriterItem | None]) -> None:
    """The writer's thread: run each transaction queued, until a None."""
    while (item := items.get()) is not None:
        _run_one(item)
        # The writer and its work must not outlive their transaction here.
        del item


def _run_one(item: _WriterItem) -> None:
    try:
        answer = item.transaction(item.work)
    except BaseException as exc:
        _answer_soon(item, None, exc)
    else:
        _answer_soon(item, answer, None)


def _answer_soon(item: _WriterItem, answer: Any, error: BaseException | None) -> None:
    # A closed loop: nobody waits for the answer any more.
    with contextlib.suppress(RuntimeError):
        item.loop.call_soon_threadsafe(_answer, item.answer, answer, error)


def _answer(
    future: asyncio.Future[Any], answer: Any, error: BaseException | None
) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(answer)


def _close_writer(
    items: queue.SimpleQueue[_WriterItem | None],
    thread: list[threading.Thread],
    connections: list[sqlite3.Connection],
) -> None:
    items.put(None)
    thread.clear()
    _close_all(connections)
