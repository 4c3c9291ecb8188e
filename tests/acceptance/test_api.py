"""The REST API, driven in-process with real embedded workers."""

from __future__ import annotations

import io
from typing import Any

import httpx
import pytest

from tests.support import wait_final

pytestmark = pytest.mark.anyio


async def upload(
    client: httpx.AsyncClient, data: bytes, name: str = "note.txt", **form: str
) -> httpx.Response:
    return await client.post(
        "/documents", files={"file": (name, io.BytesIO(data))}, data=form
    )


async def test_upload_answers_202_with_location_before_extraction(
    client: httpx.AsyncClient,
) -> None:
    response = await upload(client, b"DOCMILL-TEST-SLEEP 0.5\nslow")

    body = response.json()
    assert (response.status_code, body["status"]) == (202, "pending")
    assert response.headers["location"] == f"/documents/{body['id']}"


async def test_uploaded_text_completes_with_counts_and_text(
    client: httpx.AsyncClient,
) -> None:
    created = (await upload(client, "Grüße aus Köln, drei Wörter".encode())).json()

    body = await wait_final(client, created["id"])
    text = await client.get(f"/documents/{created['id']}/text")

    assert (body["result"]["word_count"], body["result"]["mime_type"]) == (
        5,
        "text/plain",
    )
    assert (text.text, text.headers["content-type"]) == (
        "Grüße aus Köln, drei Wörter",
        "text/plain; charset=utf-8",
    )


async def test_text_sent_in_slices_keeps_body_and_headers(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from docmill.queue import results

    monkeypatch.setattr(results, "SLICE_SIZE", 7)
    text = "Grüße 東京 🙂 aus Köln\n" * 30
    created = (await upload(client, text.encode())).json()
    await wait_final(client, created["id"])

    answers = [
        await client.get(f"/documents/{created['id']}/{kind}")
        for kind in ("text", "markdown")
    ]

    assert [
        (a.content, a.headers["content-length"], a.headers["content-type"])
        for a in answers
    ] == [
        (text.encode(), str(len(text.encode())), "text/plain; charset=utf-8"),
        (text.encode(), str(len(text.encode())), "text/markdown; charset=utf-8"),
    ]


async def test_json_text_submission_keeps_title_and_metadata(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        "/documents",
        json={"content": "plain words", "title": "T", "metadata": {"k": 1}},
    )

    body = await wait_final(client, response.json()["id"])

    assert (body["title"], body["metadata"], body["source"]) == ("T", {"k": 1}, "text")


async def test_sha256_of_the_original_is_reported(client: httpx.AsyncClient) -> None:
    import hashlib

    created = (await upload(client, b"abc")).json()

    assert created["sha256"] == hashlib.sha256(b"abc").hexdigest()


async def test_empty_upload_fails_with_code_empty(client: httpx.AsyncClient) -> None:
    created = (await upload(client, b"")).json()

    body = await wait_final(client, created["id"])

    assert (body["status"], body["error"]["code"]) == ("failed", "empty")


async def test_unknown_binary_fails_as_unsupported_format(
    client: httpx.AsyncClient,
) -> None:
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
    created = (await upload(client, png, name="picture.txt")).json()

    body = await wait_final(client, created["id"])

    assert body["error"]["code"] == "unsupported_format"
    assert "image/png" in body["error"]["message"]


async def test_crashing_extractor_is_retried_then_quarantined(
    client: httpx.AsyncClient,
) -> None:
    created = (await upload(client, b"DOCMILL-TEST-CRASH")).json()

    body = await wait_final(client, created["id"])

    assert (body["status"], body["error"]["code"], body["attempts"]) == (
        "failed",
        "worker_crash",
        3,
    )


async def test_neighbour_of_a_crashing_document_completes(
    client: httpx.AsyncClient,
) -> None:
    bad = (await upload(client, b"DOCMILL-TEST-CRASH")).json()
    good = (await upload(client, b"fine text")).json()

    await wait_final(client, bad["id"])
    body = await wait_final(client, good["id"])

    assert body["status"] == "completed"


async def test_text_of_unfinished_document_is_a_409_problem(
    client: httpx.AsyncClient,
) -> None:
    created = (await upload(client, b"DOCMILL-TEST-SLEEP 2\nslow")).json()

    response = await client.get(f"/documents/{created['id']}/text")

    assert (response.status_code, response.headers["content-type"]) == (
        409,
        "application/problem+json",
    )
    assert response.json()["type"] == "urn:docmill:problem:not-completed"


async def test_unknown_document_is_a_404_problem(client: httpx.AsyncClient) -> None:
    response = await client.get("/documents/nope")

    assert response.status_code == 404
    assert response.json()["type"] == "urn:docmill:problem:document-not-found"


async def test_metadata_that_is_not_json_is_refused(client: httpx.AsyncClient) -> None:
    response = await upload(client, b"x", metadata="{not json")

    assert (response.status_code, response.json()["type"]) == (
        422,
        "urn:docmill:problem:validation",
    )


async def test_json_without_content_is_refused(client: httpx.AsyncClient) -> None:
    response = await client.post("/documents", json={"title": "no content"})

    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == ["content"]


async def test_other_content_types_are_refused(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/documents", content=b"x", headers={"content-type": "text/plain"}
    )

    assert response.status_code == 415


async def test_listing_pages_newest_first(client: httpx.AsyncClient) -> None:
    ids = [(await upload(client, f"doc {n}".encode())).json()["id"] for n in range(5)]

    first = (await client.get("/documents", params={"limit": 3})).json()
    second = (
        await client.get(
            "/documents", params={"limit": 3, "cursor": first["next_cursor"]}
        )
    ).json()

    listed = [doc["id"] for doc in first["items"] + second["items"]]
    assert listed == ids[::-1]


async def test_listing_filters_by_status(client: httpx.AsyncClient) -> None:
    created = (await upload(client, b"")).json()
    await wait_final(client, created["id"])

    page = (await client.get("/documents", params={"status": "failed"})).json()

    assert [doc["id"] for doc in page["items"]] == [created["id"]]


async def test_delete_removes_document_and_original(
    client: httpx.AsyncClient, settings: Any
) -> None:
    created = (await upload(client, b"to be deleted")).json()
    await wait_final(client, created["id"])

    response = await client.delete(f"/documents/{created['id']}")

    assert response.status_code == 204
    assert (await client.get(f"/documents/{created['id']}")).status_code == 404
    assert not list(settings.originals_dir.glob(f"*/{created['sha256']}"))


async def test_responses_carry_request_id_and_process_time(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/healthz", headers={"X-Request-ID": "abc-123"})

    assert response.headers["x-request-id"] == "abc-123"
    assert float(response.headers["x-process-time"]) >= 0


async def test_readyz_reports_database_migrations_and_storage(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/readyz")

    assert response.json() == {
        "status": "ready",
        "database": True,
        "migrations_current": True,
        "storage": True,
    }


async def test_progress_is_reported_while_processing(
    client: httpx.AsyncClient,
) -> None:
    import asyncio

    created = (await upload(client, b"DOCMILL-TEST-SLEEP 3\nslow")).json()
    progress = None
    for _ in range(100):
        body = (await client.get(f"/documents/{created['id']}")).json()
        if body["progress"] and body["progress"]["done"] > 0:
            progress = body["progress"]
            break
        await asyncio.sleep(0.05)

    assert progress is not None and progress["unit"] == "steps"
