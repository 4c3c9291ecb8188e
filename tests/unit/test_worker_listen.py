"""The worker's LISTEN connection on PostgreSQL, with a scripted database."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import pytest

from docmill.queue.worker import Worker

pytestmark = pytest.mark.anyio


class ClosedAtOnce:
    """An asyncpg connection that drops as soon as its LISTEN is set up."""

    async def add_listener(self, channel: str, callback: Any) -> None:
        pass

    async def remove_listener(self, channel: str, callback: Any) -> None:
        pass

    def is_closed(self) -> bool:
        return True


class ScriptedEngine:
    """Refuses or grants each connection in turn, as ``script`` says."""

    def __init__(self, script: list[bool]) -> None:
        self.script = script
        self.finished = asyncio.Event()

    @contextlib.asynccontextmanager
    async def connect(self) -> AsyncIterator[Any]:
        if not self.script:
            self.finished.set()
            await asyncio.Event().wait()
        if not self.script.pop(0):
            raise OSError("connection refused")

        async def raw_connection() -> Any:
            return SimpleNamespace(driver_connection=ClosedAtOnce())

        yield SimpleNamespace(get_raw_connection=raw_connection)


async def test_listen_says_once_per_outage_that_it_is_lost_and_back(
    caplog: pytest.LogCaptureFixture,
) -> None:
    engine = ScriptedEngine([False] * 5 + [True] + [False] * 3 + [True])
    worker: Any = SimpleNamespace(
        store=SimpleNamespace(engine=engine),
        settings=SimpleNamespace(poll_seconds=0.001),
        _queued=lambda: None,
    )
    caplog.set_level(logging.INFO, logger="docmill.queue.worker")

    listening = asyncio.create_task(Worker._listen(worker))
    await asyncio.wait_for(engine.finished.wait(), timeout=10)
    listening.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await listening

    assert [record.getMessage() for record in caplog.records] == [
        "LISTEN connection lost; polling until it is back",
        "LISTEN connection is back",
        "LISTEN connection lost; polling until it is back",
        "LISTEN connection is back",
    ]
