"""An upload that takes longer than DOCMILL_UPLOAD_TIMEOUT_SECONDS is refused."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest

pytestmark = pytest.mark.anyio


async def test_upload_past_the_time_limit_is_408_and_stores_nothing(
    make_client: Callable[..., Awaitable[httpx.AsyncClient]],
) -> None:
    client = await make_client(upload_timeout_seconds=1e-9)

    response = await client.post(
        "/documents", files={"file": ("big.bin", b"x" * 3_000_000)}
    )
    listed = await client.get("/documents")

    assert (response.status_code, response.json()["type"]) == (
        408,
        "urn:docmill:problem:upload-timeout",
    )
    assert listed.json()["items"] == []


async def test_slow_small_upload_is_408_past_the_limit(
    make_client: Callable[..., Awaitable[httpx.AsyncClient]],
) -> None:
    """Small parts once never met the deadline, which storage checked per MiB."""
    client = await make_client(upload_timeout_seconds=0.5)
    boundary = "slowpoke"

    async def body() -> AsyncIterator[bytes]:
        yield (
            f"--{boundary}\r\nContent-Disposition: form-data; name=file; "
            'filename="slow.txt"\r\n\r\n'
        ).encode()
        for line in range(8):
            await asyncio.sleep(0.1)
            yield f"slow line {line}\n".encode()
        yield f"\r\n--{boundary}--\r\n".encode()

    response = await client.post(
        "/documents",
        content=body(),
        headers={"content-type": f"multipart/form-data; boundary={boundary}"},
    )
    listed = await client.get("/documents")

    assert (response.status_code, response.json()["type"]) == (
        408,
        "urn:docmill:problem:upload-timeout",
    )
    assert listed.json()["items"] == []


async def slow_json(text: str) -> AsyncIterator[bytes]:
    yield b'{"content": "'
    for word in text.split():
        await asyncio.sleep(0.1)
        yield f"{word} ".encode()
    yield b'"}'


@pytest.mark.parametrize(
    ("path", "wrap"),
    [
        pytest.param("/documents", b"", id="single"),
        pytest.param("/documents/batch", b'{"items": [', id="batch"),
    ],
)
async def test_slow_json_body_is_408_past_the_limit(
    make_client: Callable[..., Awaitable[httpx.AsyncClient]], path: str, wrap: bytes
) -> None:
    """A JSON body once had no deadline, as multipart uploads have."""
    client = await make_client(upload_timeout_seconds=0.5)

    async def body() -> AsyncIterator[bytes]:
        yield wrap
        async for chunk in slow_json("one two three four five six seven eight"):
            yield chunk
        yield b"]}" if wrap else b""

    response = await client.post(
        path, content=body(), headers={"content-type": "application/json"}
    )
    listed = await client.get("/documents")

    assert (response.status_code, response.json()["type"]) == (
        408,
        "urn:docmill:problem:upload-timeout",
    )
    assert listed.json()["items"] == []


async def test_chunked_json_body_past_the_size_limit_is_413(
    make_client: Callable[..., Awaitable[httpx.AsyncClient]],
) -> None:
    """
    A chunked body declares no length to refuse it by, and was read whole
    into memory; padding keeps this one's content within the limit.
    """
    client = await make_client(max_upload_bytes=1000)

    async def body() -> AsyncIterator[bytes]:
        yield b'{"content": "x"'
        for _ in range(200):
            yield b" " * 1000
        yield b"}"

    response = await client.post(
        "/documents", content=body(), headers={"content-type": "application/json"}
    )

    assert (response.status_code, response.json()["type"]) == (
        413,
        "urn:docmill:problem:too-large",
    )
