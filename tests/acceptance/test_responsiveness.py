"""Extraction runs off the event loop: the API answers while a big PDF is read."""

from __future__ import annotations

import asyncio
import io
import statistics
import time
from pathlib import Path

import httpx
import pytest

from tests.support import wait_final

pytestmark = pytest.mark.anyio


def write_long_pdf(path: Path, pages: int) -> None:
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    pdf = canvas.Canvas(str(path), pagesize=A4)
    line = "The quick brown fox jumps over the lazy dog. " * 2
    for page in range(pages):
        for row in range(40):
            pdf.drawString(40, 800 - row * 19, f"{page}.{row} {line}")
        pdf.showPage()
    pdf.save()


@pytest.fixture(scope="module")
def long_pdf(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("pdf") / "long.pdf"
    write_long_pdf(path, 1500)
    return path.read_bytes()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_status_reads_stay_fast_while_a_large_pdf_is_extracted(
    client: httpx.AsyncClient, long_pdf: bytes
) -> None:
    created = (
        await client.post(
            "/documents", files={"file": ("long.pdf", io.BytesIO(long_pdf))}
        )
    ).json()
    latencies = []
    seen_processing = 0
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        started = time.perf_counter()
        body = (await client.get(f"/documents/{created['id']}")).json()
        latencies.append(time.perf_counter() - started)
        if body["status"] == "processing":
            seen_processing += 1
        if body["status"] in ("completed", "failed"):
            break
        await asyncio.sleep(0.02)
    body = await wait_final(client, created["id"])

    # Reads answered while extraction was under way, the whole time.
    assert seen_processing >= 10
    assert body["result"]["page_count"] == 1500
    assert statistics.median(latencies) < 0.05, latencies
