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
