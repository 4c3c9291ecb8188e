"""
Where originals are kept.

Originals are content-addressed: the key is the SHA-256 of the bytes, so the
same file uploaded twice is stored once and a key always names the same
bytes. ``LocalStorage`` keeps them under the data directory. Other backends
(PostgreSQL large objects, S3) implement the same four methods.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol

from docmill.exceptions import OriginalMissing, TooLarge

CHUNK_BYTES = 1024 * 1024


@dataclass(frozen=True)
class StoredOriginal:
    key: str
    sha256: str
    size_bytes: int


class Storage(Protocol):
    async def put(self, stream: IO[bytes], max_bytes: int) -> StoredOriginal: ...

    async def put_bytes(self, data: bytes, max_bytes: int) -> StoredOriginal: ...

    async def path(self, key: str) -> Path: ...

    async def delete(self, key: str) -> None: ...


class LocalStorage:
    """Originals as files under ``root``, two hex digits of fan-out."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _file(self, key: str) -> Path:
        return self.root / key[:2] / key

    async def put(self, stream: IO[bytes], max_bytes: int) -> StoredOriginal:
        return await asyncio.to_thread(self._put_sync, stream, max_bytes)

    async def put_bytes(self, data: bytes, max_bytes: int) -> StoredOriginal:
        import io

        return await asyncio.to_thread(self._put_sync, io.BytesIO(data), max_bytes)

    def _put_sync(self, stream: IO[bytes], max_bytes: int) -> StoredOriginal:
        staging = self.root / "incoming"
        staging.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        size = 0
        fd, temp_name = tempfile.mkstemp(dir=staging)
        try:
            with os.fdopen(fd, "wb") as temp:
                while chunk := stream.read(CHUNK_BYTES):
                    size += len(chunk)
                    if size > max_bytes:
                        raise TooLarge(
                            f"the document is larger than the limit of {max_bytes} "
                            "bytes"
                        )
                    digest.update(chunk)
                    temp.write(chunk)
                temp.flush()
                # The row that names this file is committed after we return;
                # the bytes must be on disk before anything can point at them.
                os.fsync(temp.fileno())
            key = digest.hexdigest()
            target = self._file(key)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(temp_name, target)
        except BaseException:
            Path(temp_name).unlink(missing_ok=True)
            raise
        return StoredOriginal(key=key, sha256=key, size_bytes=size)

    async def path(self, key: str) -> Path:
        target = self._file(key)
        if not target.exists():
            raise OriginalMissing(key)
        return target

    async def delete(self, key: str) -> None:
        self._file(key).unlink(missing_ok=True)
