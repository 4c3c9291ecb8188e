"""
A server killed mid-upload leaves staging; the next start sweeps it, and so do
``docmill storage sweep`` and ``docmill queue purge``.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import func, insert, select

from docmill.api.app import build_services
from docmill.db.engine import write_transaction
from docmill.db.migrate import upgrade
from docmill.db.models import BlobChunk
from docmill.settings import Settings
from tests.acceptance.test_restart import Server

pytestmark = pytest.mark.slow

# Upload and job time limit: staging older than twice this is swept.
LIMIT_SECONDS = "1"


async def staged_chunks(settings: Settings) -> int:
    services = build_services(settings)
    try:
        async with services.engine.connect() as connection:
            return int(
                (
                    await connection.execute(
                        select(func.count()).where(BlobChunk.key.like("staging-%"))
                    )
                ).scalar_one()
            )
    finally:
        await services.engine.dispose()


def staging_probe(settings: Settings) -> Callable[[], int]:
    """How much staging there is: chunks in the database, or incoming files."""
    if settings.uses_database_storage:
        return lambda: asyncio.run(staged_chunks(settings))
    incoming = settings.originals_dir / "incoming"
    return lambda: sum(1 for _ in incoming.iterdir()) if incoming.exists() else 0


def wait_for(condition: Callable[[], bool], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition never held"
        time.sleep(0.1)


@pytest.fixture
def server(settings: Settings) -> Iterator[Server]:
    asyncio.run(_migrate(settings))
    server = Server(settings.data_dir)
    yield server
    server.stop()


async def _migrate(settings: Settings) -> None:
    services = build_services(settings)
    await upgrade(services.engine)
    await services.engine.dispose()


def start_upload(server: Server, send_bytes: int) -> socket.socket:
    """Begin a multipart upload of 64 MiB and send only its first bytes."""
    boundary = "sweepboundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
        'filename="big.bin"\r\nContent-Type: application/octet-stream\r\n\r\n'
    ).encode()
    total = len(head) + 64 * 1024 * 1024 + len(f"\r\n--{boundary}--\r\n")
    connection = socket.create_connection(("127.0.0.1", server.port))
    connection.sendall(
        (
            f"POST /documents HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
            f"Content-Length: {total}\r\n\r\n"
        ).encode()
        + head
    )
    connection.sendall(b"\0" * send_bytes)
    return connection


def test_staging_of_a_killed_upload_is_swept_at_the_next_start(
    server: Server, settings: Settings
) -> None:
    environment = {
        "DOCMILL_DATABASE_URL": settings.resolved_database_url,
        "DOCMILL_UPLOAD_TIMEOUT_SECONDS": LIMIT_SECONDS,
        "DOCMILL_JOB_TIMEOUT_SECONDS": LIMIT_SECONDS,
    }
    staged = staging_probe(settings)
    server.start(**environment)
    upload = start_upload(server, send_bytes=3 * 1024 * 1024)
    wait_for(lambda: staged() > 0)

    server.signal(signal.SIGKILL)
    upload.close()
    left = staged()
    time.sleep(2.5)
    server.start(**environment)
    wait_for(lambda: staged() == 0)
    # The sweep logs after it deletes: the line may come a moment after.
    wait_for(lambda: "swept 1 stale staging item(s)" in server.log.read_text())

    assert left > 0


def run_cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "docmill.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=os.environ
        | {
            "DOCMILL_DATA_DIR": str(settings.data_dir),
            "DOCMILL_DATABASE_URL": settings.resolved_database_url,
            "DOCMILL_UPLOAD_TIMEOUT_SECONDS": LIMIT_SECONDS,
            "DOCMILL_JOB_TIMEOUT_SECONDS": LIMIT_SECONDS,
        },
    )


async def leave_dead_staging(settings: Settings) -> None:
    """Staging as a killed upload leaves it, in the store the settings use."""
    await _migrate(settings)
    if not settings.uses_database_storage:
        incoming = settings.originals_dir / "incoming"
        incoming.mkdir(parents=True)
        (incoming / "tmpdead").write_bytes(b"x" * 2_000_000)
        os.utime(incoming / "tmpdead", (time.time() - 60, time.time() - 60))
        return
    services = build_services(settings)
    key = f"staging-{int(time.time()) - 60}-{'f' * 32}"
    async with write_transaction(services.engine) as connection:
        await connection.execute(
            insert(BlobChunk), [{"key": key, "seq": 0, "data": b"x" * 2_000_000}]
        )
    await services.engine.dispose()


@pytest.mark.parametrize(
    ("verb", "message"),
    [
        pytest.param(["storage", "sweep"], "", id="storage-sweep"),
        pytest.param(
            ["queue", "purge", "--older-than-days", "30"],
            "purged 0 document(s); 0 original(s) deleted\n",
            id="queue-purge",
        ),
    ],
)
def test_admin_verbs_sweep_dead_staging(
    settings: Settings, verb: list[str], message: str
) -> None:
    asyncio.run(leave_dead_staging(settings))

    done = run_cli(settings, *verb)

    assert (done.returncode, done.stderr) == (
        0,
        message + "swept 1 stale staging item(s) (2.0 MB)\n",
    )
    assert staging_probe(settings)() == 0
