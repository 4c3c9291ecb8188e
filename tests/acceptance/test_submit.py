"""Submitting, listing and managing documents, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from docmill.db.engine import create_engine
from tests.support import wait_final

pytestmark = pytest.mark.anyio

MakeClient = Callable[..., Awaitable[httpx.AsyncClient]]


async def upload(
    client: httpx.AsyncClient,
    data: bytes,
    name: str = "note.txt",
    headers: dict[str, str] | None = None,
    **form: str,
) -> httpx.Response:
    return await client.post(
        "/documents",
        files={"file": (name, io.BytesIO(data))},
        data=form,
        headers=headers,
    )


async def test_chunked_upload_past_the_limit_is_refused_while_streaming(
    make_client: MakeClient,
) -> None:
    client = await make_client(max_upload_bytes=100_000)
    sent = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal sent
        yield (
            b'--b\r\nContent-Disposition: form-data; name="file"; '
            b'filename="big.txt"\r\n\r\n'
        )
        for _ in range(1000):  # 64 MB if it were all read
            sent += 1
            yield b"x" * 65536
        yield b"\r\n--b--\r\n"

    response = await client.post(
        "/documents",
        content=body(),
        headers={"content-type": "multipart/form-data; boundary=b"},
    )

    assert (response.status_code, response.json()["type"]) == (
        413,
        "urn:docmill:problem:too-large",
    )
    # Storage reads 1 MiB at a time: refused within a few MiB, not 64.
    assert sent < 50


async def test_declared_length_past_the_limit_is_refused_at_once(
    make_client: MakeClient,
) -> None:
    client = await make_client(max_upload_bytes=1000)

    response = await upload(client, b"x" * 200_000)

    assert response.status_code == 413


async def test_upload_keeps_client_ref_and_echoes_it(
    client: httpx.AsyncClient,
) -> None:
    created = (await upload(client, b"some words", client_ref="order-7")).json()

    body = await wait_final(client, created["id"])

    assert (created["client_ref"], body["client_ref"]) == ("order-7", "order-7")


async def test_batch_of_files_answers_per_item_in_order(
    make_client: MakeClient,
) -> None:
    client = await make_client(max_upload_bytes=1000)
    files = [
        ("file", ("a.txt", io.BytesIO(b"first"))),
        ("file", ("b.txt", io.BytesIO(b"y" * 5000))),
        ("file", ("c.txt", io.BytesIO(b"third"))),
    ]

    response = await client.post(
        "/documents/batch", files=files, data={"client_ref": "batch-1"}
    )

    items = response.json()["items"]
    assert [item["status"] for item in items] == [202, 413, 202]
    assert [items[0]["document"]["filename"], items[2]["document"]["filename"]] == [
        "a.txt",
        "c.txt",
    ]
    assert items[1]["error"]["type"] == "urn:docmill:problem:too-large"


async def test_json_batch_refuses_only_the_invalid_item(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        "/documents/batch",
        json={"items": [{"content": "one"}, {"title": "no content"}, {"content": "3"}]},
    )

    items = response.json()["items"]
    assert [item["status"] for item in items] == [202, 422, 202]
    assert items[1]["error"]["type"] == "urn:docmill:problem:validation"


async def test_batch_that_is_not_a_list_is_refused(client: httpx.AsyncClient) -> None:
    response = await client.post("/documents/batch", json={"items": "x"})

    assert response.status_code == 422


async def test_listing_filters_by_client_ref_mime_type_and_time(
    client: httpx.AsyncClient,
) -> None:
    before = datetime.now(UTC) - timedelta(seconds=1)
    csv = (await upload(client, b"a,b\n1,2\n", name="t.csv", client_ref="x")).json()
    text = (await upload(client, b"plain words here", client_ref="y")).json()
    await wait_final(client, csv["id"])
    await wait_final(client, text["id"])

    by_ref = (await client.get("/documents", params={"client_ref": "x"})).json()
    by_type = (await client.get("/documents", params={"mime_type": "text/csv"})).json()
    later = (
        await client.get(
            "/documents",
            params={"created_after": (datetime.now(UTC) + timedelta(1)).isoformat()},
        )
    ).json()
    since = (
        await client.get("/documents", params={"created_after": before.isoformat()})
    ).json()

    assert [d["id"] for d in by_ref["items"]] == [csv["id"]]
    assert [d["id"] for d in by_type["items"]] == [csv["id"]]
    assert (later["items"], len(since["items"])) == ([], 2)


async def test_search_finds_documents_by_words_of_their_text(
    client: httpx.AsyncClient,
) -> None:
    fox = (await upload(client, b"Der schnelle Fuchs springt")).json()
    dog = (await upload(client, b"The lazy dog sleeps")).json()
    await wait_final(client, fox["id"])
    await wait_final(client, dog["id"])

    found = (await client.get("/documents", params={"q": "fuchs SCHNELLE"})).json()
    none = (await client.get("/documents", params={"q": "fuchs dog"})).json()
    odd = await client.get("/documents", params={"q": '"OR NEAR( * -'})
    blank = (await client.get("/documents", params={"q": "  "})).json()

    assert [d["id"] for d in found["items"]] == [fox["id"]]
    assert none["items"] == []
    assert (odd.status_code, odd.json()["items"]) == (200, [])
    # An empty search box is no search: every document, as without q.
    assert [d["id"] for d in blank["items"]] == [dog["id"], fox["id"]]


async def test_cursor_pages_are_stable_under_concurrent_inserts(
    client: httpx.AsyncClient,
) -> None:
    ids = [(await upload(client, f"doc {n}".encode())).json()["id"] for n in range(4)]

    first = (await client.get("/documents", params={"limit": 2})).json()
    await upload(client, b"arrives while paging")
    second = (
        await client.get(
            "/documents", params={"limit": 2, "cursor": first["next_cursor"]}
        )
    ).json()

    listed = [d["id"] for d in first["items"] + second["items"]]
    assert listed == ids[::-1]


async def test_delete_drops_the_document_from_search(
    client: httpx.AsyncClient,
) -> None:
    created = (await upload(client, b"ephemeral zebra")).json()
    await wait_final(client, created["id"])

    await client.delete(f"/documents/{created['id']}")
    found = (await client.get("/documents", params={"q": "zebra"})).json()

    assert found["items"] == []


async def test_delete_of_unknown_document_is_404(client: httpx.AsyncClient) -> None:
    response = await client.delete("/documents/nope")

    assert response.json()["type"] == "urn:docmill:problem:document-not-found"


async def test_reprocess_runs_a_final_document_again(
    client: httpx.AsyncClient,
) -> None:
    created = (await upload(client, b"run me twice")).json()
    await wait_final(client, created["id"])

    response = await client.post(f"/documents/{created['id']}/reprocess")
    body = await wait_final(client, created["id"])

    assert (response.status_code, response.json()["status"]) == (202, "pending")
    assert (body["status"], body["attempts"]) == ("completed", 1)


async def test_reprocess_of_an_unfinished_document_is_409(
    make_client: MakeClient,
) -> None:
    client = await make_client(workers=0)
    created = (await upload(client, b"never processed here")).json()

    response = await client.post(f"/documents/{created['id']}/reprocess")

    assert (response.status_code, response.json()["type"]) == (
        409,
        "urn:docmill:problem:not-final",
    )


async def test_reprocess_into_a_full_queue_is_429(make_client: MakeClient) -> None:
    """A reprocess is new work: it waits for room as a submission does."""
    client = await make_client(max_pending=1, workers=0)
    final = (await upload(client, b"cancelled, so final")).json()["id"]
    await client.post(f"/documents/{final}/cancel")
    await upload(client, b"fills the queue")

    response = await client.post(f"/documents/{final}/reprocess")
    shown = (await client.get(f"/documents/{final}")).json()

    assert (response.status_code, response.json()["type"]) == (
        429,
        "urn:docmill:problem:queue-full",
    )
    assert (response.headers["retry-after"], shown["status"]) == ("10", "cancelled")


async def test_reprocess_without_its_original_is_410_and_keeps_the_result(
    make_client: MakeClient,
) -> None:
    """Queued anyway, it ended failed `original_missing`, its text lost."""
    client = await make_client()
    services: Any = client.app.state.services  # type: ignore[attr-defined]
    created = (await upload(client, b"read once, kept")).json()
    await wait_final(client, created["id"])
    await services.storage.delete((await services.store.get(created["id"])).storage_key)

    response = await client.post(f"/documents/{created['id']}/reprocess")
    shown = (await client.get(f"/documents/{created['id']}")).json()
    text = await client.get(f"/documents/{created['id']}/text")

    assert (response.status_code, response.json()["type"]) == (
        410,
        "urn:docmill:problem:original-missing",
    )
    assert (shown["status"], text.text) == ("completed", "read once, kept")


async def test_original_comes_back_with_its_content_type(
    client: httpx.AsyncClient,
) -> None:
    data = b"name,qty\nbolt,3\n"
    created = (await upload(client, data, name="stock.csv")).json()
    await wait_final(client, created["id"])

    response = await client.get(f"/documents/{created['id']}/original")

    assert (response.content, response.headers["content-type"]) == (
        data,
        "text/csv; charset=utf-8",
    )
    assert "stock.csv" in response.headers["content-disposition"]


@pytest.mark.parametrize(
    ("text", "codec", "charset"),
    [
        pytest.param(
            "① 日本語の文書です。② これは本文のテキストです。" * 20,
            "cp932",
            "windows-31j",
            id="cp932",
        ),
        pytest.param(
            "Съешь же ещё этих мягких французских булок, да выпей чаю. " * 20,
            "koi8_r",
            "koi8-r",
            id="koi8-r",
        ),
    ],
)
async def test_original_text_is_served_in_the_charset_it_was_read_in(
    client: httpx.AsyncClient, text: str, codec: str, charset: str
) -> None:
    """Both were served as UTF-8, which they are not."""
    data = text.encode(codec)
    created = (await upload(client, data)).json()
    body = await wait_final(client, created["id"])

    response = await client.get(f"/documents/{created['id']}/original")

    assert body["result"]["metadata"]["encoding"] == codec
    assert (response.content, response.headers["content-type"]) == (
        data,
        f"text/plain; charset={charset}",
    )


async def test_original_of_unknown_document_is_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/documents/nope/original")

    assert response.status_code == 404


async def test_idempotency_key_returns_the_first_document(
    client: httpx.AsyncClient,
) -> None:
    headers = {"Idempotency-Key": "k-1"}
    first = await upload(client, b"once", headers=headers, title="t")
    again = await upload(client, b"once", headers=headers, title="t")

    assert again.json()["id"] == first.json()["id"]
    assert (again.status_code, again.headers["idempotent-replayed"]) == (202, "true")


async def test_idempotency_key_reused_for_other_content_is_409(
    client: httpx.AsyncClient,
) -> None:
    headers = {"Idempotency-Key": "k-2"}
    await client.post("/documents", json={"content": "a"}, headers=headers)

    response = await client.post("/documents", json={"content": "b"}, headers=headers)

    assert (response.status_code, response.json()["type"]) == (
        409,
        "urn:docmill:problem:idempotency-conflict",
    )


async def test_concurrent_requests_with_one_key_make_one_document(
    client: httpx.AsyncClient,
) -> None:
    headers = {"Idempotency-Key": "k-3"}

    responses = await asyncio.gather(
        *(
            client.post("/documents", json={"content": "same"}, headers=headers)
            for _ in range(5)
        )
    )

    assert len({r.json()["id"] for r in responses}) == 1


async def test_dedupe_reuses_a_completed_result(client: httpx.AsyncClient) -> None:
    first = (await upload(client, b"identical bytes here")).json()
    await wait_final(client, first["id"])

    second = (await upload(client, b"identical bytes here", dedupe="true")).json()
    text = await client.get(f"/documents/{second['id']}/text")

    assert (second["status"], second["duplicate_of"]) == ("completed", first["id"])
    assert text.text == "identical bytes here"
    assert second["id"] != first["id"]


async def test_dedupe_without_a_twin_processes_normally(
    client: httpx.AsyncClient,
) -> None:
    created = await client.post("/documents", json={"content": "new", "dedupe": True})

    body = await wait_final(client, created.json()["id"])

    assert (body["status"], body["duplicate_of"]) == ("completed", None)


async def test_full_queue_answers_429_with_retry_after(
    make_client: MakeClient,
) -> None:
    client = await make_client(max_pending=1, workers=0)
    await client.post("/documents", json={"content": "waits"})

    response = await client.post("/documents", json={"content": "refused"})

    assert (response.status_code, response.json()["type"]) == (
        429,
        "urn:docmill:problem:queue-full",
    )
    assert int(response.headers["retry-after"]) > 0


async def test_parallel_uploads_stop_at_max_pending(make_client: MakeClient) -> None:
    client = await make_client(max_pending=5, workers=0)

    responses = await asyncio.gather(
        *(
            client.post("/documents", files={"file": (f"{n}.txt", b"words")})
            for n in range(40)
        )
    )

    statuses = sorted(response.status_code for response in responses)
    assert statuses == [202] * 5 + [429] * 35
    assert len((await client.get("/documents")).json()["items"]) == 5


async def test_batch_past_max_pending_is_refused_whole(
    make_client: MakeClient,
) -> None:
    client = await make_client(max_pending=5, workers=0)
    await client.post("/documents", json={"content": "waits"})
    items = [{"content": f"item {n}"} for n in range(5)]

    response = await client.post("/documents/batch", json={"items": items})

    assert (response.status_code, response.json()["pending"]) == (429, 1)
    assert len((await client.get("/documents")).json()["items"]) == 1


async def test_full_queue_answers_a_replay_of_an_idempotency_key(
    make_client: MakeClient,
) -> None:
    """Only new work waits for room; a replay queues nothing."""
    client = await make_client(max_pending=1, workers=0)
    headers = {"Idempotency-Key": "ik1"}
    first = await upload(client, b"fills the queue", headers=headers)

    again = await upload(client, b"fills the queue", headers=headers)

    assert (again.status_code, again.headers["idempotent-replayed"]) == (202, "true")
    assert again.json()["id"] == first.json()["id"]


async def test_full_queue_refuses_new_work_under_a_new_key(
    make_client: MakeClient,
) -> None:
    client = await make_client(max_pending=1, workers=0)
    await upload(client, b"fills the queue", headers={"Idempotency-Key": "ik1"})

    response = await upload(client, b"new work", headers={"Idempotency-Key": "ik2"})

    assert (response.status_code, response.json()["type"]) == (
        429,
        "urn:docmill:problem:queue-full",
    )
    assert len((await client.get("/documents")).json()["items"]) == 1


async def test_full_queue_answers_a_dedupe_hit(
    make_client: MakeClient, tmp_path: Any
) -> None:
    """The twin's result is reused: a place in the queue is not needed."""
    client = await make_client(max_pending=1, workers=1)
    twin = (await upload(client, b"already read")).json()
    await wait_final(client, twin["id"])
    gate = tmp_path / "gate"
    busy = (await upload(client, f"DOCMILL-TEST-WAIT {gate}\n".encode())).json()
    try:
        await wait_status(client, busy["id"], "processing")
        filler = await upload(client, b"fills the queue")
        plain = await upload(client, b"already read")

        hit = await upload(client, b"already read", dedupe="true")
    finally:
        gate.touch()

    assert (filler.status_code, plain.status_code) == (202, 429)
    assert (hit.status_code, hit.json()["duplicate_of"]) == (202, twin["id"])


async def test_full_queue_answers_a_replayed_batch(make_client: MakeClient) -> None:
    client = await make_client(max_pending=2, workers=0)
    items = [{"content": f"item {n}"} for n in range(2)]
    headers = {"Idempotency-Key": "batch-1"}
    first = await client.post(
        "/documents/batch", json={"items": items}, headers=headers
    )

    again = await client.post(
        "/documents/batch", json={"items": items}, headers=headers
    )

    ids = [[i["document"]["id"] for i in r.json()["items"]] for r in (first, again)]
    assert (again.status_code, ids[1]) == (200, ids[0])


async def wait_status(client: httpx.AsyncClient, document_id: str, status: str) -> None:
    for _ in range(600):
        shown = (await client.get(f"/documents/{document_id}")).json()
        if shown["status"] == status:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"document {document_id} never became {status}")


async def test_unreachable_database_answers_503_not_429(
    make_client: MakeClient,
) -> None:
    client = await make_client(workers=0)
    services: Any = client.app.state.services  # type: ignore[attr-defined]
    healthy = services.store.engine
    services.store.engine = create_engine(
        "postgresql+asyncpg://postgres@127.0.0.1:1/none"
    )
    try:
        submit = await client.post("/documents", json={"content": "x"})
        read = await client.get("/documents")
    finally:
        await services.store.engine.dispose()
        services.store.engine = healthy

    assert (submit.status_code, read.status_code) == (503, 503)
    assert submit.json()["type"] == "urn:docmill:problem:database-unavailable"
    assert "retry-after" in submit.headers


async def test_bad_idempotency_key_is_422(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/documents", json={"content": "x"}, headers={"Idempotency-Key": "k" * 300}
    )

    assert response.status_code == 422


async def test_malformed_multipart_is_422(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/documents",
        content=b"not multipart at all",
        headers={"content-type": "multipart/form-data; boundary=zz"},
    )

    assert response.status_code == 422


@pytest.mark.parametrize(
    "disposition",
    [
        pytest.param('form-data; name="file"', id="no-filename"),
        pytest.param('form-data; name="file"; filename=""', id="empty-filename"),
    ],
)
async def test_file_part_without_a_filename_is_the_document(
    client: httpx.AsyncClient, disposition: str
) -> None:
    """As a JSON text has none, an upload needs no name."""
    body = (
        f"--zz\r\nContent-Disposition: {disposition}\r\n\r\n"
        "a nameless note\r\n--zz--\r\n"
    ).encode()

    created = await client.post(
        "/documents",
        content=body,
        headers={"content-type": "multipart/form-data; boundary=zz"},
    )
    shown = await wait_final(client, created.json()["id"])
    text = await client.get(f"/documents/{created.json()['id']}/text")

    assert (created.status_code, shown["filename"]) == (202, None)
    assert text.text == "a nameless note"


async def test_small_upload_is_kept_with_its_row_not_as_a_file(
    client: httpx.AsyncClient, settings: Any
) -> None:
    data = b"a small note\n" * 100
    created = (await upload(client, data)).json()

    original = await client.get(f"/documents/{created['id']}/original")

    assert original.content == data
    assert not list(settings.originals_dir.glob(f"*/{created['sha256']}"))


async def test_upload_past_the_small_size_is_stored_as_a_file(
    client: httpx.AsyncClient, settings: Any
) -> None:
    if settings.uses_database_storage:
        pytest.skip("this database keeps every original, large or small")
    data = b"0123456789abcdef" * 4097  # just over 64 KiB
    created = (await upload(client, data)).json()

    original = await client.get(f"/documents/{created['id']}/original")

    assert original.content == data
    assert len(list(settings.originals_dir.glob(f"*/{created['sha256']}"))) == 1


async def test_a_json_batch_is_held_to_the_upload_limit(
    make_client: MakeClient,
) -> None:
    """
    A JSON batch was read whole into memory with no limit at all, declared
    or streamed; each item was only checked after.
    """
    from docmill.api.submit import FORM_OVERHEAD_BYTES

    client = await make_client(max_upload_bytes=100_000)
    limit = 100_000 + FORM_OVERHEAD_BYTES
    item = {"content": "x" * 60_000}
    items = [item] * (limit // 60_000 + 1)

    declared = await client.post("/documents/batch", json={"items": items})
    sent = 0

    async def streamed() -> AsyncIterator[bytes]:
        nonlocal sent
        yield b'{"items": ['
        for n in range(1000):  # 60 MB if it were all read
            sent += 1
            yield (b"," if n else b"") + b'{"content": "' + b"x" * 60_000 + b'"}'
        yield b"]}"

    chunked = await client.post(
        "/documents/batch",
        content=streamed(),
        headers={"content-type": "application/json"},
    )
    within = await client.post("/documents/batch", json={"items": [item]})

    assert (declared.status_code, declared.json()["type"]) == (
        413,
        "urn:docmill:problem:too-large",
    )
    assert chunked.status_code == 413
    assert sent < 1000
    assert within.status_code == 200, within.text
