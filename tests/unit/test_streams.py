"""Feeding a blocking reader from the event loop (docmill.streams)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from typing import Any

import pytest

from docmill.streams import ChunkPipe, put_stream

pytestmark = pytest.mark.anyio


def test_abort_reaches_a_reader_behind_a_full_queue() -> None:
    """
    Sent to a full queue, the abort was dropped: the reader read what was
    queued, then waited for ever.
    """
    pipe = ChunkPipe()
    for _ in range(4):
        pipe._queue.put_nowait(b"x" * 10)
    pipe.abort()
    outcome: list[Any] = []

    def read_all() -> None:
        try:
            outcome.append(pipe.read())
        except ConnectionAbortedError as exc:
            outcome.append(exc)

    reader = threading.Thread(target=read_all, daemon=True)
    reader.start()
    reader.join(5)

    assert not reader.is_alive()
    assert isinstance(outcome[0], ConnectionAbortedError)


class SlowStorage:
    """Reads a chunk at a time, slower than the sender sends."""

    def __init__(self) -> None:
        self.finished = threading.Event()

    async def put(self, stream: Any, max_bytes: int) -> None:
        def read() -> None:
            try:
                while True:
                    threading.Event().wait(0.02)
                    if not stream.read(10):
                        return
            finally:
                self.finished.set()

        await asyncio.to_thread(read)


async def test_put_stream_ends_its_reader_when_the_sender_fails() -> None:
    storage = SlowStorage()

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(8):
            yield b"y" * 10
        raise ValueError("inflated past its limit")

    with pytest.raises(ValueError, match="inflated"):
        await asyncio.wait_for(put_stream(storage, chunks(), 10**6), 10)  # type: ignore[arg-type]

    assert storage.finished.wait(5)
