"""An upload that takes longer than DOCMILL_UPLOAD_TIMEOUT_SECONDS is refused."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

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
