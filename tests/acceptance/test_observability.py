"""/metrics and live progress over Server-Sent Events."""

from __future__ import annotations

import io
import json

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
    client: httpx.AsyncClient,
) -> None:
    created = await client.post(
        "/documents",
        files={"file": ("s.txt", io.BytesIO(b"DOCMILL-TEST-SLEEP 0.6\nslow"))},
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
