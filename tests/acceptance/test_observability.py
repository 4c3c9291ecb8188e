"""/metrics and live progress over Server-Sent Events."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import wait_final

pytestmark = pytest.mark.anyio


async def test_metrics_report_requests_queue_and_extraction(
    client: httpx.AsyncClient,
) -> None:
    created = await client.post(
        "/documents", files={"file": ("m.txt", io.BytesIO(b"counted words"))}
    )
    await wait_final(client, created.json()["id"])

    text = (await client.get("/metrics")).text

    assert 'route="/documents/{document_id}"' in text
    assert "docmill_queue_depth 0.0" in text
    assert 'docmill_documents{status="completed"}' in text
    assert 'docmill_extraction_duration_seconds_count{format="text/plain"}' in text
    assert "docmill_oldest_pending_age_seconds" in text


async def test_events_stream_status_changes_until_final(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from docmill.api.events import StatusPoller

    # The document finishes once the stream has seen it processing.
    gate, next_row = tmp_path / "gate", StatusPoller.next_row

    async def finish_once_seen(self: StatusPoller, document_id: str) -> Any:
        row = await next_row(self, document_id)
        if row is not None and row.status == "processing":
            gate.touch()
        return row

    monkeypatch.setattr(StatusPoller, "next_row", finish_once_seen)
    created = await client.post(
        "/documents",
        files={
            "file": ("s.txt", io.BytesIO(f"DOCMILL-TEST-WAIT {gate}\nslow".encode()))
        },
    )

    response = await client.get(f"/documents/{created.json()['id']}/events")

    events = [
        json.loads(line[len("data: ") :])
        for line in response.text.splitlines()
        if line.startswith("data: ")
    ]
    assert response.headers["content-type"].startswith("text/event-stream")
    assert events[-1]["status"] == "completed"
    assert "processing" in [event["status"] for event in events]


async def test_events_of_unknown_document_is_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/documents/nope/events")

    assert response.status_code == 404


async def test_event_streams_share_one_read_per_document(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from docmill.api.events import StatusPoller
    from docmill.queue.store import JobStore

    asked: list[list[str]] = []
    waits: list[str] = []
    waiting: set[object] = set()
    # The document finishes once all five streams wait on it, not on a clock.
    gate = tmp_path / "gate"
    get_statuses, next_row = JobStore.get_statuses, StatusPoller.next_row

    async def count_reads(self: JobStore, ids: list[str]) -> dict[str, object]:
        asked.append(list(ids))
        return await get_statuses(self, ids)

    async def count_waits(self: StatusPoller, document_id: str) -> object:
        waits.append(document_id)
        waiting.add(asyncio.current_task())
        if len(waiting) == 5:
            gate.touch()
        return await next_row(self, document_id)

    monkeypatch.setattr(JobStore, "get_statuses", count_reads)
    monkeypatch.setattr(StatusPoller, "next_row", count_waits)
    created = await client.post(
        "/documents",
        files={
            "file": ("s.txt", io.BytesIO(f"DOCMILL-TEST-WAIT {gate}\nslow".encode()))
        },
    )
    document_id = created.json()["id"]

    streams = await asyncio.gather(
        *(client.get(f"/documents/{document_id}/events") for _ in range(5))
    )

    finals = [json.loads(s.text.split("data: ")[-1])["status"] for s in streams]
    assert finals == ["completed"] * 5
    # Five streams waited each round; the document was read once a round.
    assert all(ids == [document_id] for ids in asked)
    assert len(asked) < len(waits)


async def test_event_stream_reports_a_deleted_document(
    make_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from docmill.api.events import StatusPoller

    next_row, watching = StatusPoller.next_row, asyncio.Event()

    async def note_the_watch(self: StatusPoller, document_id: str) -> object:
        watching.set()
        return await next_row(self, document_id)

    monkeypatch.setattr(StatusPoller, "next_row", note_the_watch)
    client = await make_client(workers=0)
    created = await client.post("/documents", json={"content": "never processed"})
    document_id = created.json()["id"]

    async def delete_soon() -> None:
        # Deleted once the stream watches, so its first event was sent.
        await asyncio.wait_for(watching.wait(), 60)
        await client.delete(f"/documents/{document_id}")

    stream, _ = await asyncio.gather(
        client.get(f"/documents/{document_id}/events"), delete_soon()
    )

    events = [line for line in stream.text.splitlines() if line.startswith("event:")]
    assert events == ["event: status", "event: deleted"]
