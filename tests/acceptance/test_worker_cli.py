"""``docmill worker``: a standalone worker process against the API's database."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from docmill.api.app import build_services
from docmill.db.migrate import upgrade
from docmill.queue.store import NewDocument
from docmill.settings import Settings
from docmill.storage import put_bytes
from tests.support import run_cli


async def queue_texts(settings: Settings, texts: list[str]) -> list[str]:
    services = build_services(settings)
    await upgrade(services.engine)
    ids = []
    for text in texts:
        stored = await put_bytes(services.storage, text.encode(), 1000)
        ids.append(
            await services.store.create(
                NewDocument("text", stored.sha256, stored.size_bytes, stored.key)
            )
        )
    await services.engine.dispose()
    return ids


async def statuses(settings: Settings, ids: list[str]) -> list[str]:
    services = build_services(settings)
    found = [(await services.store.get(i)).status for i in ids]
    await services.engine.dispose()
    return found


def test_worker_once_drains_the_queue_and_exits(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    ids = asyncio.run(queue_texts(settings, [f"text number {n}" for n in range(5)]))

    done = subprocess.run(
        [sys.executable, "-m", "docmill.cli", "worker", "--once", "-c", "2"],
        env=os.environ | {"DOCMILL_DATA_DIR": str(settings.data_dir)},
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert done.returncode == 0, done.stderr
    assert asyncio.run(statuses(settings, ids)) == ["completed"] * 5


def test_worker_once_without_its_database_fails(tmp_path: Path) -> None:
    """
    ``--once`` from cron with the database out of reach exited 0, having
    done nothing; it now says so and exits 1.
    """
    done = run_cli(
        "worker",
        "--once",
        cwd=tmp_path,
        # Port 1: nothing listens there.
        env={"DOCMILL_DATABASE_URL": "postgresql://docmill@127.0.0.1:1/docmill"},
    )

    assert done.returncode == 1, done.stderr
    assert "the worker could not claim work" in done.stderr


def test_worker_help_names_its_settings() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "docmill.cli", "worker", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        env=os.environ | {"COLUMNS": "200"},
    )

    assert "--concurrency" in done.stdout and "DOCMILL_LEASE_SECONDS" in done.stdout


def test_admin_verbs_refuse_a_missing_database(tmp_path: Path) -> None:
    done = run_cli("queue", "stats", cwd=tmp_path)

    assert (done.returncode, "no docmill database" in done.stderr) == (2, True)
    assert not (tmp_path / "docmill-data").exists()


@pytest.mark.parametrize("days", ["-5", "nan", "inf"])
def test_purge_refuses_ages_that_are_not_finite_and_positive(
    tmp_path: Path, days: str
) -> None:
    done = run_cli("queue", "purge", "--older-than-days", days, cwd=tmp_path)

    assert done.returncode == 2
