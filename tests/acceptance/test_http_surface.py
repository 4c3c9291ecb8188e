"""
What the HTTP surface promises beyond bodies: HEAD wherever GET is, the one
multipart part name a file may have, and the response headers and status
codes the OpenAPI document names.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from docmill.settings import Settings

pytestmark = pytest.mark.anyio
MakeClient = Callable[..., Awaitable[httpx.AsyncClient]]


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("/documents/{id}", id="status"),
        pytest.param("/documents/{id}/original", id="original"),
        pytest.param("/documents?limit=5", id="list"),
        pytest.param("/readyz", id="readyz"),
        pytest.param("/", id="page"),
    ],
)
async def test_head_answers_as_get_without_the_body(
    make_client: MakeClient, path: str
) -> None:
    client = await make_client(workers=0)
    created = await client.post(
        "/documents", files={"file": ("a.txt", io.BytesIO(b"x" * 100_000))}
    )
    path = path.replace("{id}", created.json()["id"])

    get = await client.get(path)
    head = await client.head(path)

    assert (head.status_code, head.content) == (get.status_code, b"")
    assert get.status_code == 200 and get.content
    for name in ("content-type", "content-length"):
        assert head.headers.get(name) == get.headers.get(name)


async def test_head_of_an_event_stream_ends_after_the_headers(
    make_client: MakeClient,
) -> None:
    client = await make_client(workers=0)
    created = await client.post("/documents", json={"content": "never run"})

    head = await asyncio.wait_for(
        client.head(f"/documents/{created.json()['id']}/events"), 10
    )

    assert (head.status_code, head.content) == (200, b"")
    assert head.headers["content-type"].startswith("text/event-stream")


async def test_head_of_an_unknown_document_is_its_404(
    client: httpx.AsyncClient,
) -> None:
    head = await client.head("/documents/nope")

    assert (head.status_code, head.content) == (404, b"")


@pytest.mark.parametrize("path", ["/documents", "/documents/batch"])
async def test_a_file_in_a_part_not_named_file_is_refused(
    client: httpx.AsyncClient, path: str
) -> None:
    answer = await client.post(
        path,
        files={"metadata": ("m.json", io.BytesIO(b'{"a": 1}'))},
        data={"title": "t"},
    )

    assert answer.status_code == 422, answer.text
    assert "'metadata'" in answer.json()["detail"]
    assert (await client.get("/documents")).json()["items"] == []


def _responses(schema: dict[str, Any], path: str, method: str) -> dict[str, Any]:
    responses: dict[str, Any] = schema["paths"][path][method]["responses"]
    return responses


async def test_the_contract_names_the_headers_and_the_upload_timeout(
    make_client: MakeClient,
) -> None:
    client = await make_client(rate_limit="100/second")
    schema = client.app.openapi()  # type: ignore[attr-defined]
    submit = _responses(schema, "/documents", "post")
    batch = _responses(schema, "/documents/batch", "post")

    answer = await client.post("/documents", json={"content": "x"})

    assert "408" in submit and "408" in batch
    assert "Location" in submit["202"]["headers"]
    for code in ("429", "503", "507"):
        assert "Retry-After" in submit[code]["headers"], code
    documented = set(submit["202"]["headers"])
    sent = {name for name in documented if name.lower() in answer.headers}
    assert (
        sent
        == documented
        == {
            "Location",
            "RateLimit-Limit",
            "RateLimit-Remaining",
            "RateLimit-Reset",
        }
    )
    assert "headers" not in _responses(schema, "/healthz", "get")["200"]


async def test_the_contract_names_rate_limit_headers_on_error_answers(
    make_client: MakeClient,
) -> None:
    client = await make_client(rate_limit="100/second")
    schema = client.app.openapi()  # type: ignore[attr-defined]
    status = _responses(schema, "/documents/{document_id}", "get")

    answer = await client.get("/documents/nope")

    assert answer.status_code == 404
    assert "ratelimit-limit" in answer.headers
    assert "RateLimit-Limit" in status["404"]["headers"]


async def test_an_upload_past_its_deadline_is_the_documented_408(
    settings: Settings, make_client: MakeClient
) -> None:
    client = await make_client(upload_timeout_seconds=0.2)

    async def slow() -> Any:
        yield b'--b\r\nContent-Disposition: form-data; name="file"; '
        yield b'filename="a.txt"\r\n\r\n'
        await asyncio.sleep(1)
        yield b"late\r\n--b--\r\n"

    answer = await client.post(
        "/documents",
        content=slow(),
        headers={"content-type": "multipart/form-data; boundary=b"},
    )
    documented = _responses(
        client.app.openapi(),  # type: ignore[attr-defined]
        "/documents",
        "post",
    )

    assert answer.status_code == 408
    assert answer.json()["type"] == "urn:docmill:problem:upload-timeout"
    assert str(answer.status_code) in documented
