"""Helpers the test layers share."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx


async def wait_final(
    client: httpx.AsyncClient, document_id: str, timeout: float = 30
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body: dict[str, Any] = (await client.get(f"/documents/{document_id}")).json()
        if body["status"] in ("completed", "failed"):
            return body
        await asyncio.sleep(0.05)
    raise AssertionError(f"document {document_id} not final after {timeout}s: {body}")
