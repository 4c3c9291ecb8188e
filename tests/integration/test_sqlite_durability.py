"""SQLite commits are durable past a power cut, not only past a crash."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from docmill.db.engine import _open_sqlite_writer, create_engine

pytestmark = pytest.mark.anyio

FULL = 2  # PRAGMA synchronous's answer for FULL (NORMAL is 1)


async def test_every_sqlite_connection_syncs_each_commit(tmp_path: Path) -> None:
    path = tmp_path / "docmill.db"
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    try:
        async with engine.connect() as connection:
            engine_level = (
                await connection.execute(text("PRAGMA synchronous"))
            ).scalar_one()
    finally:
        await engine.dispose()
    writer = _open_sqlite_writer(str(path))
    try:
        writer_level = writer.execute("PRAGMA synchronous").fetchone()[0]
    finally:
        writer.close()

    assert (engine_level, writer_level) == (FULL, FULL)
