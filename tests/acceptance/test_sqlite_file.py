"""
A SQLite database file deleted or replaced under a running server: /readyz
says not ready and the log says why; a start-up on a new database file next
to stored originals warns that they belong to a lost one.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest

from docmill.settings import Settings
from tests.support import app_client

pytestmark = pytest.mark.anyio


def _settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", workers=0, rate_limit="")


@pytest.mark.parametrize("how", ["deleted", "replaced"])
async def test_readyz_notices_the_database_file_gone(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, how: str
) -> None:
    settings = _settings(tmp_path)
    database = settings.data_dir / "docmill.db"
    async with app_client(settings) as client:
        before = await client.get("/readyz")
        if how == "deleted":
            database.unlink()
        else:
            shutil.copy(database, tmp_path / "copy.db")
            (tmp_path / "copy.db").replace(database)
        with caplog.at_level(logging.INFO, logger="docmill"):
            after = await client.get("/readyz")
            again = await client.get("/readyz")

    assert before.status_code == 200
    assert (after.status_code, after.json()["database"]) == (503, False)
    assert again.status_code == 503
    lost = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert [getattr(r, "action", None) for r in lost] == ["database_file_lost"]
    assert how in lost[0].getMessage()


async def test_a_new_database_beside_stored_originals_is_warned_of(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = _settings(tmp_path)
    async with app_client(settings) as client:
        created = await client.post(
            "/documents", files={"file": ("a.txt", b"x" * 200_000)}
        )
        assert created.status_code == 202, created.text
    assert any(settings.originals_dir.glob("??/*"))

    with caplog.at_level(logging.WARNING, logger="docmill"):
        async with app_client(settings) as client:
            pass
        restarted = [r.getMessage() for r in caplog.records]
        (settings.data_dir / "docmill.db").unlink()
        async with app_client(settings) as client:
            listed = await client.get("/documents")

    warned = [
        r for r in caplog.records if getattr(r, "action", None) == "database_file_new"
    ]
    assert not any("holds originals" in message for message in restarted)
    assert len(warned) == 1
    assert str(settings.originals_dir) in warned[0].getMessage()
    assert listed.json()["items"] == []
