"""
A data directory that cannot take a write: a full disk is 507, one that
refuses writes 503 with Retry-After, each one log line, and /readyz says
not ready until it can be written again. Nothing needs a restart.
"""

from __future__ import annotations

import errno
import io
import logging
from pathlib import Path
from typing import IO, Any

import httpx
import pytest

from docmill.storage import SMALL_BYTES, StoredOriginal

pytestmark = pytest.mark.anyio

LARGE = b"x" * (SMALL_BYTES * 2)


def _failing_put(services: Any, error: OSError) -> Any:
    """``services.storage.put`` that reads a little, then meets ``error``."""

    async def put(stream: IO[bytes], max_bytes: int) -> StoredOriginal:
        stream.read(1024)
        raise error

    return put


@pytest.mark.parametrize(
    ("error", "status", "slug"),
    [
        pytest.param(
            OSError(errno.ENOSPC, "No space left on device"),
            507,
            "insufficient-storage",
            id="full",
        ),
        pytest.param(
            OSError(errno.EDQUOT, "Disk quota exceeded"),
            507,
            "insufficient-storage",
            id="quota",
        ),
        pytest.param(
            PermissionError(errno.EACCES, "Permission denied"),
            503,
            "storage-unavailable",
            id="unwritable",
        ),
        pytest.param(
            OSError(errno.EROFS, "Read-only file system"),
            503,
            "storage-unavailable",
            id="read-only",
        ),
    ],
)
async def test_an_upload_the_disk_refuses_is_a_problem_that_says_so(
    client: httpx.AsyncClient,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    error: OSError,
    status: int,
    slug: str,
) -> None:
    services = client._transport.app.state.services  # type: ignore[attr-defined]
    healthy = services.storage.put
    monkeypatch.setattr(services.storage, "put", _failing_put(services, error))

    with caplog.at_level(logging.INFO):
        refused = await client.post(
            "/documents", files={"file": ("big.txt", io.BytesIO(LARGE))}
        )
    monkeypatch.setattr(services.storage, "put", healthy)
    again = await client.post(
        "/documents", files={"file": ("big.txt", io.BytesIO(LARGE))}
    )

    assert refused.status_code == status, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["type"] == f"urn:docmill:problem:{slug}"
    assert int(refused.headers["retry-after"]) > 0
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, [r.getMessage() for r in errors]
    assert errors[0].exc_info is None
    assert again.status_code == 202, again.text


async def test_an_os_error_of_another_kind_is_still_a_500(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    services = client._transport.app.state.services  # type: ignore[attr-defined]
    error = OSError(errno.EBADF, "Bad file descriptor")
    monkeypatch.setattr(services.storage, "put", _failing_put(services, error))

    response = await client.post(
        "/documents", files={"file": ("b.txt", io.BytesIO(LARGE))}
    )

    assert response.json()["type"] == "urn:docmill:problem:internal"


async def test_readyz_is_not_ready_while_the_data_dir_cannot_be_written(
    client: httpx.AsyncClient,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    services = client._transport.app.state.services  # type: ignore[attr-defined]
    probe = services.data_dir_probe
    write_bytes = Path.write_bytes

    def refuse(path: Path, data: bytes) -> int:
        if path.parent == probe.directory:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return write_bytes(path, data)

    before = await client.get("/readyz")
    probe.checked_at = float("-inf")
    monkeypatch.setattr(Path, "write_bytes", refuse)
    with caplog.at_level(logging.INFO):
        full = await client.get("/readyz")
        probe.checked_at = float("-inf")
        still = await client.get("/readyz")
    monkeypatch.setattr(Path, "write_bytes", write_bytes)
    cached = await client.get("/readyz")
    probe.checked_at = float("-inf")
    after = await client.get("/readyz")

    assert (before.status_code, before.json()["storage"]) == (200, True)
    assert (full.status_code, full.json()["status"]) == (503, "not_ready")
    assert full.json()["storage"] is False
    assert full.headers["content-type"] == "application/json"
    assert still.status_code == 503
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, [r.getMessage() for r in errors]
    assert cached.status_code == 503, "within the cache the last probe stands"
    assert after.status_code == 200
    assert list(probe.directory.glob(".docmill-probe-*")) == []
