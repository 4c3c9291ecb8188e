"""
Where originals are kept.

Originals are content-addressed: the key is the SHA-256 of the bytes, so the
same file uploaded twice is stored once and a key always names the same
bytes. ``LocalStorage`` keeps them as files under the data directory;
``DatabaseStorage`` keeps them in the database in chunks, so API and worker
processes on different machines need nothing but the database. An
S3-compatible store would implement the same ``Storage`` protocol.

An original whose hash is not known yet is staged: a file under
``incoming/`` or chunks under a ``staging-`` key. A process killed mid-upload
leaves its staging behind, so every ``docmill serve`` sweeps staging older
than any upload may last (``sweep_periodically``), and so does ``docmill
storage sweep``. Puts enforce that time limit themselves, which is what makes
the sweep safe with many processes on many machines: staging old enough to be
swept belongs to a put that can no longer succeed.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import hashlib
import io
import logging
import math
import os
import secrets
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol

from sqlalchemy import (
    and_,
    bindparam,
    delete,
    func,
    insert,
    literal_column,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from docmill.db.errors import log_failure
from docmill.exceptions import (
    OriginalMissing,
    StorageError,
    TooLarge,
    UploadTimeout,
)

logger = logging.getLogger(__name__)

if TYPE_CHECKING:
    from docmill.db.engine import RowReader

CHUNK_BYTES = 1024 * 1024
# Originals up to this size (a JSON text submission) are hashed in memory and
# stored by DatabaseStorage in one transaction.
SMALL_BYTES = 64 * 1024
# Chunks of an upload in progress are kept under "staging-<unix start>-<hex>"
# until its hash is known. Keys written before the start time was part of
# them are "staging-<hex>".
STAGING_PREFIX = "staging-"
# Stored keys are SHA-256 hex digests, which sort before "g" in any
# collation, and staging keys after it: an index range, where a LIKE on a
# non-C collation would scan the whole table.
_STAGING_FLOOR = "g"
# How often each `docmill serve` process sweeps stale staging.
SWEEP_INTERVAL_SECONDS = 600.0
# How long shutdown waits for a sweep in progress before cancelling it.
SWEEP_SHUTDOWN_SECONDS = 10.0


@dataclass(frozen=True)
class StoredOriginal:
    key: str
    sha256: str
    size_bytes: int


@dataclass
class SweepReport:
    """What one sweep of staging found and removed."""

    removed: int = 0
    removed_bytes: int = 0
    # Staging from before keys carried their start time: removed once a
    # long-running sweeper has seen it unchanged for the whole bound.
    unknown_age: int = 0

    def add(self, other: SweepReport) -> None:
        self.removed += other.removed
        self.removed_bytes += other.removed_bytes
        self.unknown_age += other.unknown_age


class Storage(Protocol):
    """A content-addressed store of originals."""

    async def put(self, stream: IO[bytes], max_bytes: int) -> StoredOriginal:
        """
        Store everything ``stream`` yields.

        Raises:
            TooLarge: past ``max_bytes``; nothing is kept.
        """

    def local_copy(self, key: str) -> contextlib.AbstractAsyncContextManager[Path]:
        """
        A path to the original on this machine for as long as the block runs.

        Raises:
            OriginalMissing: no original has this key.
        """

    async def has(self, key: str) -> bool:
        """Whether an original is stored under ``key``, without reading it."""

    async def delete(self, key: str) -> None: ...

    async def sweep_staging(self, max_age_seconds: float) -> SweepReport:
        """
        Remove staging left by uploads that started over ``max_age_seconds``
        ago; the bound must exceed the upload time limit of every process.
        """


async def sweep_periodically(
    storage: Storage,
    max_age_seconds: float,
    stop: asyncio.Event,
    interval_seconds: float = SWEEP_INTERVAL_SECONDS,
) -> None:
    """
    Sweep stale staging now and then every ``interval_seconds``, until
    ``stop`` is set.

    The caller sets ``stop`` rather than cancelling the task: a sweep is
    short, and cancelling one while asyncpg opens its connection leaves a
    failed future no one retrieves (reported as "unexpected
    connection_lost() call" at shutdown).
    """
    while not stop.is_set():
        try:
            report = await storage.sweep_staging(max_age_seconds)
        except Exception as exc:
            # A database hiccup must not end the sweeper; the next round
            # finds the same staging. A database out of reach is one line,
            # not a traceback at every round.
            log_failure(logger, "staging sweep failed", exc)
        else:
            if report.removed:
                logger.info(
                    "swept %d stale staging item(s), %d bytes",
                    report.removed,
                    report.removed_bytes,
                    extra={"action": "staging_swept"},
                )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval_seconds)


# What a failed write to the data directory means for a caller: out of
# space (or quota) is 507 until an operator frees some; a directory that
# refuses writes or a failing disk is the service's trouble, 503. Any other
# OSError is a fault in docmill, reported whole.
FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
REFUSED_ERRNOS = frozenset({errno.EACCES, errno.EPERM, errno.EROFS, errno.EIO})


def storage_failure(error: BaseException) -> str | None:
    """``"full"``, ``"refused"`` or None: what ``error`` says of the disk."""
    if not isinstance(error, OSError):
        return None
    if error.errno in FULL_ERRNOS:
        return "full"
    if error.errno in REFUSED_ERRNOS:
        return "refused"
    return None


class WritableProbe:
    """
    Whether ``directory`` takes a new file, for /readyz: a small file is
    written and removed, at most once every ``ttl_seconds`` (a probe per
    request would cost a thread hop and a file each time).

    A write can still fail between probes; the probe only lets a balancer
    route around a server whose disk is full or read-only, and notice when
    it comes back.
    """

    def __init__(self, directory: Path, ttl_seconds: float = 5.0) -> None:
        self.directory = directory
        self.ttl_seconds = ttl_seconds
        self.writable = True
        self.checked_at = -math.inf

    async def check(self) -> bool:
        now = time.monotonic()
        if now - self.checked_at >= self.ttl_seconds:
            self.checked_at = now
            writable = await asyncio.to_thread(self._probe)
            if writable and not self.writable:
                logger.info(
                    "data directory %s is writable again",
                    self.directory,
                    extra={"action": "storage_recovered"},
                )
            self.writable = writable
        return self.writable

    def _probe(self) -> bool:
        path = self.directory / f".docmill-probe-{os.getpid()}"
        try:
            path.write_bytes(b"docmill readiness probe\n")
            path.unlink()
        except OSError as exc:
            # One line when it turns, not one each probe.
            if self.writable:
                logger.error(
                    "data directory %s cannot be written: %s",
                    self.directory,
                    exc.strerror or type(exc).__name__,
                    extra={"action": "storage_unavailable"},
                )
            with contextlib.suppress(OSError):
                path.unlink(missing_ok=True)
            return False
        return True


def _deadline(timeout_seconds: float | None) -> float | None:
    return None if timeout_seconds is None else time.monotonic() + timeout_seconds


def _check_deadline(deadline: float | None, timeout_seconds: float | None) -> None:
    if deadline is not None and time.monotonic() > deadline:
        assert timeout_seconds is not None
        raise UploadTimeout(timeout_seconds)


async def put_bytes(storage: Storage, data: bytes, max_bytes: int) -> StoredOriginal:
    if isinstance(storage, DatabaseStorage) and len(data) <= SMALL_BYTES:
        return await storage.put_small(data, max_bytes)
    return await storage.put(io.BytesIO(data), max_bytes)


def small_in_database(storage: Storage, size: int) -> bool:
    """
    Whether an original of ``size`` bytes in memory can be written in its
    document's own transaction (``NewDocument.original_bytes``).
    """
    if size > SMALL_BYTES:
        return False
    if isinstance(storage, LocalStorage):
        return storage.database is not None
    return isinstance(storage, DatabaseStorage)


def check_writable(directory: Path) -> None:
    """Write, sync and remove a small file in ``directory``; OSError if it fails."""
    fd, name = tempfile.mkstemp(dir=directory, prefix=".write-check-")
    try:
        os.write(fd, bytes(64 * 1024))
        os.fsync(fd)
    finally:
        os.close(fd)
        os.unlink(name)


def _remove_scratch(path: Path) -> None:
    """
    Remove a worker's copy of an original, or leave it to the sweep.

    Its removal failing (a failing disk) is no fault of the document and
    must not end what the copy served: the worker had its result stored, or
    its failure recorded, or gave it back, only after the removal, so an
    error here left the document to its lease (and a slot's queue out of
    step with its child). The staging sweep removes what is left.
    """
    try:
        path.unlink(missing_ok=True)
    except OSError as exc:
        logger.warning(
            "could not remove the scratch copy %s (%s); the staging sweep will",
            path,
            exc,
            extra={"action": "scratch_left"},
        )


async def small_original(storage: Storage, key: str, size_bytes: int) -> bytes | None:
    """
    The bytes of an original of at most ``SMALL_BYTES`` kept in the database,
    for a worker to hand its extraction child in memory; None for any other
    original, which ``local_copy`` gives as a file.

    A scratch file per document (create, write, close, unlink, in a scratch
    directory on the data disk) cost the embedded server about 0.25 ms of
    CPU a document, an eighth of all it spent on one, and the child a
    second open and read.
    """
    if size_bytes > SMALL_BYTES:
        return None
    if isinstance(storage, LocalStorage):
        database = storage.database
    elif isinstance(storage, DatabaseStorage):
        database = storage
    else:
        return None
    return None if database is None else await database.read_small(key)


def describe_small(data: bytes, max_bytes: int) -> StoredOriginal:
    """The key ``data`` will have, for an original written later by the caller."""
    if len(data) > max_bytes:
        raise _too_large(max_bytes)
    key = hashlib.sha256(data).hexdigest()
    return StoredOriginal(key=key, sha256=key, size_bytes=len(data))


async def insert_small_blobs(connection: Any, originals: dict[str, bytes]) -> None:
    """
    Write small originals, keyed by their hash, in the caller's transaction.

    A key already stored is left alone: it names the same bytes.
    """
    from sqlalchemy.dialects import postgresql, sqlite

    from docmill.db.models import Blob, BlobChunk
    from docmill.queue.store import utcnow

    insert_or_skip: Any = (
        postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert
    )
    now = utcnow()
    chunks = [
        {"key": key, "seq": 0, "data": data} for key, data in originals.items() if data
    ]
    if chunks:
        await connection.execute(
            insert_or_skip(BlobChunk).on_conflict_do_nothing(), chunks
        )
    await connection.execute(
        insert_or_skip(Blob).on_conflict_do_nothing(),
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


@functools.cache
def _blob_reads() -> tuple[Any, Any]:
    """A blob's size and chunk count, and one chunk: built once, not per read."""
    from docmill.db.models import Blob, BlobChunk

    blob = select(Blob.size_bytes, Blob.chunk_count).where(Blob.key == bindparam("key"))
    chunk = select(BlobChunk.data).where(
        BlobChunk.key == bindparam("key"), BlobChunk.seq == bindparam("seq")
    )
    return blob, chunk


@functools.cache
def _small_read() -> Any:
    """A blob's size and chunk count with its first chunk, in one statement."""
    from docmill.db.models import Blob, BlobChunk

    # A literal, not a bound value: the row reader binds only what it is given.
    first = and_(BlobChunk.key == Blob.key, BlobChunk.seq == literal_column("0"))
    return (
        select(Blob.size_bytes, Blob.chunk_count, BlobChunk.data)
        .select_from(Blob)
        .outerjoin(BlobChunk, first)
        .where(Blob.key == bindparam("key"))
    )


def _sync_directory(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _too_large(max_bytes: int) -> TooLarge:
    return TooLarge(f"the document is larger than the limit of {max_bytes} bytes")


class LocalStorage:
    """
    Originals as files under ``root``, with two hex digits of fan-out.

    Given the engine, small originals submitted as text are kept in the
    database instead, written in their document's transaction: a file costs
    a thread hop and an fsync per submission, and the row is then exactly
    as durable as the document that names it. Those are read from, and
    deleted in, the database.
    """

    def __init__(
        self,
        root: Path,
        engine: AsyncEngine | None = None,
        upload_timeout_seconds: float | None = None,
        reads: RowReader | None = None,
    ) -> None:
        self.root = root
        self.upload_timeout_seconds = upload_timeout_seconds
        self.database = (
            DatabaseStorage(
                engine, root / "scratch", upload_timeout_seconds, reads=reads
            )
            if engine is not None
            else None
        )

    def _file(self, key: str) -> Path:
        return self.root / key[:2] / key

    async def put(self, stream: IO[bytes], max_bytes: int) -> StoredOriginal:
        return await asyncio.to_thread(self._put_sync, stream, max_bytes)

    def _put_sync(self, stream: IO[bytes], max_bytes: int) -> StoredOriginal:
        staging = self.root / "incoming"
        staging.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        size = 0
        timeout = self.upload_timeout_seconds
        deadline = _deadline(timeout)
        fd, temp_name = tempfile.mkstemp(dir=staging)
        try:
            with os.fdopen(fd, "wb") as temp:
                while chunk := stream.read(CHUNK_BYTES):
                    size += len(chunk)
                    if size > max_bytes:
                        raise _too_large(max_bytes)
                    _check_deadline(deadline, timeout)
                    digest.update(chunk)
                    temp.write(chunk)
                temp.flush()
                # The row that names this file is committed after we return;
                # the bytes must be on disk before anything can point at them.
                os.fsync(temp.fileno())
            # Past the limit a sweep may already have taken the file.
            _check_deadline(deadline, timeout)
            key = digest.hexdigest()
            target = self._file(key)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(temp_name, target)
            # The rename is a change to the directory, and is durable only
            # once the directory is synced too: until then a power loss can
            # leave the file under its temporary name.
            _sync_directory(target.parent)
        except BaseException:
            Path(temp_name).unlink(missing_ok=True)
            raise
        return StoredOriginal(key=key, sha256=key, size_bytes=size)

    @contextlib.asynccontextmanager
    async def local_copy(self, key: str) -> AsyncIterator[Path]:
        target = self._file(key)
        if target.exists():
            yield target
        elif self.database is not None:
            async with self.database.local_copy(key) as copy:
                yield copy
        else:
            raise OriginalMissing(key)

    async def has(self, key: str) -> bool:
        if self._file(key).exists():
            return True
        return self.database is not None and await self.database.has(key)

    async def delete(self, key: str) -> None:
        self._file(key).unlink(missing_ok=True)
        if self.database is not None:
            await self.database.delete(key)

    async def sweep_staging(self, max_age_seconds: float) -> SweepReport:
        # A file's mtime is its last write, never before its put started:
        # a file not written for the bound belongs to a put past its limit.
        incoming = self.root / "incoming"
        report = await asyncio.to_thread(_sweep_files, incoming, max_age_seconds)
        if self.database is not None:
            # Scratch copies of small originals kept in the database, and
            # staging chunks of a deployment that once stored originals there.
            report.add(await self.database.sweep_staging(max_age_seconds))
        return report


class DatabaseStorage:
    """
    Originals in the ``blobs`` and ``blob_chunks`` tables.

    Args:
        engine: the database engine.
        scratch_dir: where a worker's temporary copy of an original is made.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        scratch_dir: Path,
        upload_timeout_seconds: float | None = None,
        reads: RowReader | None = None,
    ) -> None:
        from docmill.db.engine import RowReader

        self.engine = engine
        self.scratch_dir = scratch_dir
        self.upload_timeout_seconds = upload_timeout_seconds
        # Legacy staging keys (no start time) -> (chunks, when first seen).
        self._unknown_age: dict[str, tuple[int, float]] = {}
        # The job store's reader when given, so the process keeps one.
        self.reads = reads or RowReader(engine)

    async def put(self, stream: IO[bytes], max_bytes: int) -> StoredOriginal:
        from docmill.db.engine import write_transaction
        from docmill.db.models import BlobChunk

        # The start time in the key lets a sweep on any machine tell a dead
        # upload's chunks from a live one's.
        staging = f"{STAGING_PREFIX}{int(time.time())}-{secrets.token_hex(16)}"
        digest = hashlib.sha256()
        size = seq = 0
        timeout = self.upload_timeout_seconds
        deadline = _deadline(timeout)
        try:
            while chunk := await asyncio.to_thread(stream.read, CHUNK_BYTES):
                size += len(chunk)
                if size > max_bytes:
                    raise _too_large(max_bytes)
                _check_deadline(deadline, timeout)
                digest.update(chunk)
                async with write_transaction(self.engine) as connection:
                    await connection.execute(
                        insert(BlobChunk).values(key=staging, seq=seq, data=chunk)
                    )
                seq += 1
            _check_deadline(deadline, timeout)
            key = digest.hexdigest()
            try:
                await self._publish(staging, key, size, seq)
            except IntegrityError:
                # A concurrent upload of the same bytes published the key
                # first (PostgreSQL); its copy serves both.
                async with write_transaction(self.engine) as connection:
                    await connection.execute(
                        delete(BlobChunk).where(BlobChunk.key == staging)
                    )
        except BaseException:
            async with write_transaction(self.engine) as connection:
                await connection.execute(
                    delete(BlobChunk).where(BlobChunk.key == staging)
                )
            raise
        return StoredOriginal(key=key, sha256=key, size_bytes=size)

    async def put_small(self, data: bytes, max_bytes: int) -> StoredOriginal:
        """
        Store bytes already in memory, up to ``SMALL_BYTES``, in one transaction.

        ``put`` streams through a staging key and renames it once the hash is
        known: two transactions at least. Here the hash is known first, so
        the chunk is written under its key at once.
        """
        from docmill.db.engine import write_transaction
        from docmill.db.models import Blob, BlobChunk
        from docmill.queue.store import utcnow

        if len(data) > max_bytes:
            raise _too_large(max_bytes)
        key = hashlib.sha256(data).hexdigest()
        stored = StoredOriginal(key=key, sha256=key, size_bytes=len(data))
        try:
            async with write_transaction(self.engine) as connection:
                exists = (
                    await connection.execute(select(Blob.key).where(Blob.key == key))
                ).first()
                if exists:
                    return stored
                if data:
                    await connection.execute(
                        insert(BlobChunk).values(key=key, seq=0, data=data)
                    )
                await connection.execute(
                    insert(Blob).values(
                        key=key,
                        size_bytes=len(data),
                        chunk_count=1 if data else 0,
                        created_at=utcnow(),
                    )
                )
        except IntegrityError:
            # A concurrent upload of the same bytes stored them first
            # (PostgreSQL); its copy serves both.
            pass
        return stored

    async def _publish(self, staging: str, key: str, size: int, seq: int) -> None:
        from docmill.db.engine import write_transaction
        from docmill.db.models import Blob, BlobChunk
        from docmill.queue.store import utcnow

        async with write_transaction(self.engine) as connection:
            exists = (
                await connection.execute(select(Blob.key).where(Blob.key == key))
            ).first()
            if exists:
                await connection.execute(
                    delete(BlobChunk).where(BlobChunk.key == staging)
                )
                return
            moved = await connection.execute(
                update(BlobChunk).where(BlobChunk.key == staging).values(key=key)
            )
            if moved.rowcount != seq:
                # A sweep took chunks of an upload that outlived its limit
                # (and the sweep's margin): a blob would name missing chunks.
                if self.upload_timeout_seconds is not None:
                    raise UploadTimeout(self.upload_timeout_seconds)
                raise StorageError(f"chunks of {staging!r} went missing")
            await connection.execute(
                insert(Blob).values(
                    key=key, size_bytes=size, chunk_count=seq, created_at=utcnow()
                )
            )

    async def read_small(self, key: str) -> bytes | None:
        """
        The bytes of original ``key`` if it is a blob of at most
        ``SMALL_BYTES`` in one chunk (or none: empty), read in one query
        off the pool; None otherwise, a missing blob included.
        """
        found = await self.reads.first(_small_read(), key=key)
        if found is None or found.size_bytes > SMALL_BYTES:
            return None
        if found.chunk_count == 0:
            return b""
        if found.chunk_count != 1 or found.data is None:
            # Not the one chunk a small original is written as: the file
            # copy reads whatever is there, and reports what is missing.
            return None
        return bytes(found.data)

    @contextlib.asynccontextmanager
    async def local_copy(self, key: str) -> AsyncIterator[Path]:
        blob, chunk = _blob_reads()
        self.scratch_dir.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=self.scratch_dir, prefix="original-")
        path = Path(name)
        try:
            with os.fdopen(fd, "wb") as copy:
                found = await self.reads.first(blob, key=key)
                if found is None:
                    raise OriginalMissing(key)
                if found.size_bytes <= SMALL_BYTES:
                    # Nearly every upload: one short row, read off the pool
                    # (on SQLite, in this thread) and written here. Through
                    # the engine, its two reads cost the embedded server more
                    # CPU per document than claiming, starting and
                    # completing it together.
                    for seq in range(found.chunk_count):
                        row = await self.reads.first(chunk, key=key, seq=seq)
                        if row is None:
                            raise OriginalMissing(key)
                        copy.write(row.data)
                else:
                    await self._copy_large(key, found.chunk_count, copy)
            yield path
        finally:
            _remove_scratch(path)

    async def has(self, key: str) -> bool:
        blob, _ = _blob_reads()
        return await self.reads.first(blob, key=key) is not None

    async def _copy_large(self, key: str, chunk_count: int, copy: IO[bytes]) -> None:
        _, chunk = _blob_reads()
        async with self.engine.connect() as connection:
            # One chunk per round trip keeps memory flat whatever the
            # original's size, on drivers with and without server-side
            # cursors.
            for seq in range(chunk_count):
                data = (
                    await connection.execute(chunk, {"key": key, "seq": seq})
                ).scalar_one()
                await asyncio.to_thread(copy.write, data)

    async def delete(self, key: str) -> None:
        from docmill.db.engine import write_transaction
        from docmill.db.models import Blob, BlobChunk

        async with write_transaction(self.engine) as connection:
            await connection.execute(delete(BlobChunk).where(BlobChunk.key == key))
            await connection.execute(delete(Blob).where(Blob.key == key))

    async def sweep_staging(self, max_age_seconds: float) -> SweepReport:
        from docmill.db.engine import write_transaction
        from docmill.db.models import BlobChunk

        # A worker killed mid-extraction leaves its copy of the original; a
        # live copy is opened within its job's time limit, which the bound
        # exceeds (Settings.staging_max_age_seconds).
        report = await asyncio.to_thread(
            _sweep_files, self.scratch_dir, max_age_seconds
        )
        async with self.engine.connect() as connection:
            staged = (
                await connection.execute(
                    select(
                        BlobChunk.key,
                        func.count(),
                        func.coalesce(func.sum(func.length(BlobChunk.data)), 0),
                    )
                    .where(
                        BlobChunk.key > _STAGING_FLOOR,
                        BlobChunk.key.like(f"{STAGING_PREFIX}%"),
                    )
                    .group_by(BlobChunk.key)
                )
            ).all()
        stale = []
        now = time.time()
        for key, chunks, size in staged:
            started = _staging_start(key)
            if started is None:
                if self._unknown_age_is_stale(key, chunks, now, max_age_seconds):
                    stale.append((key, size))
                else:
                    report.unknown_age += 1
            elif now - started > max_age_seconds:
                stale.append((key, size))
        present = {row[0] for row in staged}
        for key in list(self._unknown_age):
            if key not in present:
                del self._unknown_age[key]
        for key, size in stale:
            async with write_transaction(self.engine) as connection:
                await connection.execute(delete(BlobChunk).where(BlobChunk.key == key))
            self._unknown_age.pop(key, None)
            report.removed += 1
            report.removed_bytes += int(size)
        return report

    def _unknown_age_is_stale(
        self, key: str, chunks: int, now: float, max_age_seconds: float
    ) -> bool:
        # Staging written before keys carried a start time: dead once it has
        # not grown for the whole bound. A live upload of that older code
        # stalled that long would lose its chunks; that code has no time
        # limit to make this safe, so only the long-running sweeper, which
        # can watch, removes these.
        seen = self._unknown_age.get(key)
        if seen is None or seen[0] != chunks:
            self._unknown_age[key] = (chunks, now)
            return False
        return now - seen[1] > max_age_seconds


def _sweep_files(directory: Path, max_age_seconds: float) -> SweepReport:
    """Remove the files in ``directory`` not written for ``max_age_seconds``."""
    report = SweepReport()
    cutoff = time.time() - max_age_seconds
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        return report
    for entry in entries:
        with contextlib.suppress(FileNotFoundError):
            stat = entry.stat(follow_symlinks=False)
            if stat.st_mtime < cutoff and entry.is_file(follow_symlinks=False):
                os.unlink(entry.path)
                report.removed += 1
                report.removed_bytes += stat.st_size
    return report


def _staging_start(key: str) -> int | None:
    """The unix time a staging key's upload started, if the key says."""
    started, dash, _ = key.removeprefix(STAGING_PREFIX).partition("-")
    return int(started) if dash and started.isdigit() else None
