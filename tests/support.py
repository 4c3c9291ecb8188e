"""Helpers the test layers share."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path
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


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``docmill ARGS`` in ``cwd``, with no DOCMILL_ setting of this process."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("DOCMILL_")}
    return subprocess.run(
        [sys.executable, "-m", "docmill.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env=environment,
    )
