"""Feeding an async stream of bytes to ``Storage.put``, which reads blocking."""

from __future__ import annotations

import asyncio
import contextlib
import queue
from collections.abc import AsyncIterable
from typing import Any

from docmill.storage import Storage, StoredOriginal


class ChunkPipe:
    """
    A blocking, readable stream fed from the event loop.

    ``Storage.put`` reads it in a worker thread; the queue is short, so a
    slow disk or database slows the sender rather than filling memory.
    """

    _END = b""

    def __init__(self) -> None:
        self._queue: queue.Queue[bytes | BaseException] = queue.Queue(maxsize=4)
        self._buffer = b""
        self._ended = False

    def read(self, size: int = -1) -> bytes:
        while not self._ended and (size < 0 or len(self._buffer) < size):
            item = self._queue.get()
            if isinstance(item, BaseException):
                raise item
            if item == self._END:
                self._ended = True
            else:
                self._buffer += item
        if size < 0:
            size = len(self._buffer)
        data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data

    async def feed(self, data: bytes, reader: asyncio.Future[Any]) -> None:
        """Hand ``data`` to the reader; returns early if the reader has stopped."""
        while not reader.done():
            try:
                self._queue.put_nowait(data)
                return
            except queue.Full:
                await asyncio.sleep(0.002)

    async def close(self, reader: asyncio.Future[Any]) -> None:
        await self.feed(self._END, reader)

    def abort(self) -> None:
        """
        Make the reader stop at its next read, with what it has not read yet
        dropped: the sender gave up (a body inflating past its limit, a
        timeout). The queue is emptied first, as this is its only producer:
        sent to a full queue, the signal was lost, and the reader, once it
        had read what was queued, waited for data that never came, holding
        its thread and the document's slot until the fetch timed out (and a
        worker stopping after it never exited).
        """
        with contextlib.suppress(queue.Empty):
            while True:
                self._queue.get_nowait()
        self._queue.put_nowait(ConnectionAbortedError("stream abandoned"))


async def put_stream(
    storage: Storage, chunks: AsyncIterable[bytes], max_bytes: int
) -> StoredOriginal:
    """
    Store what ``chunks`` yields, never holding it whole.

    Raises:
        TooLarge: past ``max_bytes``; the rest of ``chunks`` is not read.
    """
    pipe = ChunkPipe()
    reader = asyncio.ensure_future(storage.put(pipe, max_bytes))  # type: ignore[arg-type]
    try:
        async for chunk in chunks:
            await pipe.feed(chunk, reader)
            if reader.done():
                break
        await pipe.close(reader)
    except BaseException:
        pipe.abort()
        with contextlib.suppress(Exception):
            await reader
        raise
    return await reader
