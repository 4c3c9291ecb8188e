"""Helpers the test layers share."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx


@contextlib.asynccontextmanager
async def app_client(settings: Any) -> AsyncIterator[httpx.AsyncClient]:
    """An in-process client of the app ``settings`` build, its lifespan running."""
    from docmill.api.app import create_app

    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://docmill.test"
        ) as client:
            yield client


async def downgrade(engine: Any, revision: str) -> None:
    """Take the schema down to ``revision``, as ``migrate.upgrade`` takes it up."""
    from alembic import command

    from docmill.db.engine import write_transaction
    from docmill.db.migrate import alembic_config

    async with write_transaction(engine) as connection:
        await connection.run_sync(
            lambda sync: command.downgrade(alembic_config(sync), revision)
        )


async def insert_old_document(engine: Any, sha256: str = "", **values: Any) -> str:
    """
    A pending documents row written with the columns of revision 0010, as
    the store of that time wrote it; its id.

    Today's ``JobStore`` writes and reads ``charset`` too (0011), which a
    schema taken back to an older revision lacks.
    """
    from sqlalchemy import insert

    from docmill.db.engine import write_transaction
    from docmill.db.models import Document
    from docmill.queue.ids import new_document_id

    document_id = new_document_id()
    now = datetime.now(UTC)
    row = {
        "id": document_id,
        "source": "text",
        "sha256": sha256,
        "size_bytes": 0,
        "storage_key": sha256,
        "status": "pending",
        "max_attempts": 3,
        "next_attempt_at": now,
        "created_at": now,
        "updated_at": now,
    }
    async with write_transaction(engine) as connection:
        await connection.execute(insert(Document).values(row | values))
    return document_id


async def add_later_columns(engine: Any) -> None:
    """
    Give a schema taken back to an older revision the ``documents`` columns
    later ones added (``charset``, 0011), so that today's ``JobStore`` can
    run on it; for a test that does not upgrade again afterwards.
    """
    from sqlalchemy import text

    from docmill.db.engine import write_transaction

    async with write_transaction(engine) as connection:
        await connection.execute(
            text("ALTER TABLE documents ADD COLUMN charset VARCHAR(64)")
        )


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


async def wait_logged(caplog: Any, action: str, document_id: str) -> None:
    """
    Wait until ``caplog`` holds a record of ``action`` for the document.

    The worker logs an outcome after its commit, so a client can see the
    document final a moment before the line is written.
    """
    deadline = time.monotonic() + 60
    while not any(
        getattr(r, "action", None) == action
        and getattr(r, "document_id", None) == document_id
        for r in caplog.records
    ):
        assert time.monotonic() < deadline, f"{document_id}: no {action} logged"
        await asyncio.sleep(0.02)


def run_cli(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """
    ``docmill ARGS`` in ``cwd``, with no DOCMILL_ setting of this process
    (only those in ``env``).
    """
    environment = {k: v for k, v in os.environ.items() if not k.startswith("DOCMILL_")}
    environment |= env or {}
    return subprocess.run(
        [sys.executable, "-m", "docmill.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env=environment,
    )


@contextlib.contextmanager
def served(app: Any) -> Iterator[str]:
    """``app`` served by uvicorn in a thread on a free 127.0.0.1 port; its URL."""
    import uvicorn

    instance = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning")
    )
    thread = threading.Thread(target=instance.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not instance.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.05)
    port = instance.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        instance.should_exit = True
        thread.join(20)


def api_document(status: str) -> dict[str, Any]:
    """A document as the API shows it, with ``status``: for fake servers."""
    now = "2026-12-05T09:00:00Z"
    return {
        "id": "doc-1",
        "status": status,
        "filename": "a.txt",
        "source": "upload",
        "sha256": "0" * 64,
        "size_bytes": 5,
        "priority": 0,
        "attempts": 1,
        "max_attempts": 3,
        "created_at": now,
        "updated_at": now,
    }


def zip_of(members: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    """A zip archive of ``members`` (name: bytes), in their order."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()
