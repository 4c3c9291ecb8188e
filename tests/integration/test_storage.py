"""Both stores of originals keep bytes whole, dedupe them and refuse oversize ones."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from docmill.api.app import build_services
from docmill.db.migrate import upgrade
from docmill.exceptions import OriginalMissing, TooLarge
from docmill.settings import Settings
from docmill.storage import (
    CHUNK_BYTES,
    SMALL_BYTES,
    DatabaseStorage,
    LocalStorage,
    Storage,
    put_bytes,
    small_original,
)

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["local", "database"])
async def storage(
    request: pytest.FixtureRequest, settings: Settings, tmp_path: Path
) -> AsyncIterator[Storage]:
    services = build_services(settings)
    await upgrade(services.engine)
    if request.param == "local":
        yield LocalStorage(tmp_path / "originals")
    else:
        yield DatabaseStorage(
            services.engine, tmp_path / "scratch", reads=services.store.reads
        )
    await services.engine.dispose()
    await services.store.reads.close()


async def test_original_comes_back_byte_for_byte(storage: Storage) -> None:
    data = bytes(range(256)) * (CHUNK_BYTES // 256 * 2 + 7)

    stored = await storage.put(io.BytesIO(data), max_bytes=len(data))
    async with storage.local_copy(stored.key) as path:
        copy = path.read_bytes()

    assert (copy == data, stored.size_bytes) == (True, len(data))


@pytest.mark.parametrize(
    "size", [0, 1, SMALL_BYTES], ids=["empty", "one-byte", "small-limit"]
)
async def test_small_original_comes_back_byte_for_byte(
    storage: Storage, size: int
) -> None:
    data = bytes(index % 251 for index in range(size))

    stored = await put_bytes(storage, data, max_bytes=SMALL_BYTES)
    async with storage.local_copy(stored.key) as path:
        copy = path.read_bytes()

    assert copy == data


@pytest.fixture(params=["database", "local-with-database"])
async def storage_with_database(
    request: pytest.FixtureRequest, settings: Settings, tmp_path: Path
) -> AsyncIterator[Storage]:
    """The stores that keep small originals in the database."""
    services = build_services(settings)
    await upgrade(services.engine)
    reads = services.store.reads
    if request.param == "database":
        yield DatabaseStorage(services.engine, tmp_path / "scratch", reads=reads)
    else:
        yield LocalStorage(tmp_path / "originals", services.engine, reads=reads)
    await services.engine.dispose()
    await reads.close()


async def keep_small(storage: Storage, data: bytes) -> str:
    """Store ``data`` as a blob, as a small submission's row is written."""
    database = storage.database if isinstance(storage, LocalStorage) else storage
    assert isinstance(database, DatabaseStorage)
    return (await database.put_small(data, max_bytes=SMALL_BYTES)).key


@pytest.mark.parametrize(
    "size", [0, 1, SMALL_BYTES], ids=["empty", "one-byte", "small-limit"]
)
async def test_small_original_is_read_into_memory(
    storage_with_database: Storage, size: int
) -> None:
    data = bytes(index % 251 for index in range(size))
    key = await keep_small(storage_with_database, data)

    found = await small_original(storage_with_database, key, size)

    assert found == data


async def test_original_past_the_small_size_is_left_to_a_local_copy(
    storage_with_database: Storage,
) -> None:
    data = b"x" * (SMALL_BYTES + 1)
    stored = await put_bytes(storage_with_database, data, max_bytes=len(data))

    found = await small_original(storage_with_database, stored.key, len(data))

    assert found is None


async def test_missing_original_is_left_to_a_local_copy(
    storage_with_database: Storage,
) -> None:
    """``local_copy`` is what reports it missing, as it did before."""
    found = await small_original(storage_with_database, "0" * 64, 10)

    assert found is None


async def test_same_bytes_share_one_key(storage: Storage) -> None:
    first = await storage.put(io.BytesIO(b"same"), max_bytes=10)
    second = await storage.put(io.BytesIO(b"same"), max_bytes=10)

    assert first.key == second.key


async def test_oversize_original_is_refused(storage: Storage) -> None:
    with pytest.raises(TooLarge):
        await storage.put(io.BytesIO(b"x" * 11), max_bytes=10)


async def test_deleted_original_is_missing(storage: Storage) -> None:
    stored = await storage.put(io.BytesIO(b"gone soon"), max_bytes=100)
    await storage.delete(stored.key)

    with pytest.raises(OriginalMissing):
        async with storage.local_copy(stored.key):
            pass


async def test_stored_file_and_its_directory_are_synced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rename is durable only once its directory is synced, as the bytes are."""
    import os
    import stat

    synced: list[str] = []
    fsync = os.fsync

    def recording(descriptor: int) -> None:
        kind = "dir" if stat.S_ISDIR(os.fstat(descriptor).st_mode) else "file"
        synced.append(kind)
        fsync(descriptor)

    monkeypatch.setattr(os, "fsync", recording)
    storage = LocalStorage(tmp_path / "originals")

    stored = await storage.put(io.BytesIO(b"x" * 100_000), max_bytes=1_000_000)

    assert synced == ["file", "dir"]
    assert (tmp_path / "originals" / stored.key[:2] / stored.key).exists()
