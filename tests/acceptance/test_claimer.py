"""The worker's claimer: documents held ahead for the slots."""

from __future__ import annotations

from typing import Any

import pytest

from docmill.api.app import build_services
from docmill.queue.store import JobStore
from docmill.queue.worker import Worker
from docmill.settings import Settings
from tests.support import app_client

pytestmark = pytest.mark.anyio


async def queue_texts(settings: Settings, count: int) -> None:
    async with app_client(settings.model_copy(update={"workers": 0})) as client:
        for number in range(count):
            body = {"content": f"document {number}"}
            assert (await client.post("/documents", json=body)).status_code == 202


async def test_slots_taking_claims_do_not_each_send_the_claimer_looking(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """
    A look for documents that outrank the waiting claims follows work
    queued, or a poll interval; a slot taking a claim queues nothing.
    """
    looks: list[int] = []
    original = JobStore.outranking_due_at

    async def counted(self: JobStore, priority: int) -> Any:
        looks.append(priority)
        return await original(self, priority)

    monkeypatch.setattr(JobStore, "outranking_due_at", counted)
    await queue_texts(settings, 12)
    quiet = settings.model_copy(update={"poll_seconds": 60.0})
    services = build_services(quiet)
    try:
        await Worker(services.store, services.storage, quiet, 1).run(drain=True)
        counts = await services.store.count_by_status()
    finally:
        await services.engine.dispose()
        await services.store.close()

    assert (counts["completed"], len(looks)) == (12, 1)
