"""
Many processes on PostgreSQL: one API, three workers, faults injected.

Each process has its own data directory, so originals can only travel
through the database. One worker is SIGKILLed and another SIGTERMed while
300 documents are processed; every document must still complete exactly
once, none lost and none left processing, and no two workers may ever hold
the same document at the same time.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.acceptance.test_restart import free_port
from tests.conftest import reset_postgres

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

DOCUMENTS = 300


class Cluster:
    def __init__(self, root: Path, database_url: str) -> None:
        self.root = root
        self.database_url = database_url
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.env = os.environ | {
            "DOCMILL_DATABASE_URL": database_url,
            "DOCMILL_EXTRACTOR_PLUGINS": json.dumps(["docmill.testing"]),
            # These tests poll every document as fast as they can.
            "DOCMILL_RATE_LIMIT": "",
            "DOCMILL_LEASE_SECONDS": "2",
            "DOCMILL_POLL_SECONDS": "0.2",
            "DOCMILL_SHUTDOWN_GRACE_SECONDS": "0.2",
            "DOCMILL_RETRY_BASE_SECONDS": "0.1",
        }

    def spawn(self, name: str, *args: str) -> None:
        data_dir = self.root / name
        command = [
            sys.executable,
            "-m",
            "docmill.cli",
            *args,
            "--data-dir",
            str(data_dir),
        ]
        log = open(self.root / f"{name}.log", "ab")  # noqa: SIM115 - outlives this call
        self.processes[name] = subprocess.Popen(
            command, env=self.env, stdout=log, stderr=log
        )

    def start(self) -> None:
        subprocess.run(
            [sys.executable, "-m", "docmill.cli", "db", "upgrade"],
            env=self.env,
            check=True,
            capture_output=True,
        )
        self.spawn("api", "serve", "--no-workers", "--port", str(self.port))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise AssertionError("API did not start")

    def start_workers(self) -> None:
        for n in range(3):
            self.spawn(f"worker{n}", "worker", "--concurrency", "2")

    def stop_all(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.kill()
                process.wait()


@pytest.fixture
def cluster(tmp_path: Path, postgres_url: str) -> Iterator[Cluster]:
    asyncio.run(reset_postgres(postgres_url))
    cluster = Cluster(tmp_path, postgres_url)
    yield cluster
    cluster.stop_all()


def count_completed(cluster: Cluster) -> int:
    page = httpx.get(
        f"{cluster.url}/documents", params={"status": "completed", "limit": 500}
    )
    return len(page.json()["items"])


def wait_for_completed(cluster: Cluster, target: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if count_completed(cluster) >= target:
            return
        time.sleep(0.2)
    raise AssertionError(f"fewer than {target} completed after {timeout}s")


def wait_until_holding(database_url: str, pid: int, timeout: float = 30) -> None:
    async def holding() -> bool:
        import asyncpg

        connection = await asyncpg.connect(
            database_url.replace("postgresql+asyncpg://", "postgresql://")
        )
        try:
            found = await connection.fetchval(
                "SELECT count(*) FROM documents "
                "WHERE status = 'processing' AND worker_id LIKE $1",
                # host:pid:place.start (see queue.ids.default_worker_id)
                f"%:{pid}:%",
            )
        finally:
            await connection.close()
        return bool(found)

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if asyncio.run(holding()):
            return
        time.sleep(0.01)
    raise AssertionError(f"worker {pid} never held a document")


def attempts_by_document(database_url: str) -> dict[str, list[tuple]]:
    async def read() -> list[tuple]:
        import asyncpg

        connection = await asyncpg.connect(
            database_url.replace("postgresql+asyncpg://", "postgresql://")
        )
        rows = await connection.fetch(
            "SELECT document_id, worker_id, started_at, finished_at, outcome "
            "FROM attempts ORDER BY started_at"
        )
        await connection.close()
        return [tuple(row) for row in rows]

    grouped: dict[str, list[tuple]] = defaultdict(list)
    for document_id, *rest in asyncio.run(read()):
        grouped[document_id].append(tuple(rest))
    return grouped


def test_three_workers_with_faults_complete_every_document_once(
    cluster: Cluster,
) -> None:
    cluster.start()
    ids = []
    with httpx.Client(base_url=cluster.url) as client:
        for n in range(DOCUMENTS):
            content = f"DOCMILL-TEST-SLEEP 0.2\ndocument {n}"
            ids.append(
                client.post("/documents", json={"content": content}).json()["id"]
            )
    # Workers start on a full queue, so every one of them is mid-document
    # whenever a fault strikes.
    cluster.start_workers()

    wait_for_completed(cluster, DOCUMENTS // 3)
    victim = cluster.processes["worker0"]
    # Kill it while the database shows it holding a document, so the test
    # always exercises the takeover of an abandoned claim.
    wait_until_holding(cluster.database_url, victim.pid)
    victim.send_signal(signal.SIGKILL)
    wait_for_completed(cluster, 2 * DOCUMENTS // 3)
    cluster.processes["worker1"].send_signal(signal.SIGTERM)
    assert cluster.processes["worker1"].wait(timeout=30) == 0
    wait_for_completed(cluster, DOCUMENTS)

    statuses = {httpx.get(f"{cluster.url}/documents/{i}").json()["status"] for i in ids}
    attempts = attempts_by_document(cluster.database_url)
    completed_once = {
        doc: sum(1 for a in tries if a[3] == "completed")
        for doc, tries in attempts.items()
    }
    # Every document is final, so no attempt may still be open: one left
    # open reads as a worker holding a document that others took since.
    left_open = {
        doc: tries for doc, tries in attempts.items() if None in (t[2] for t in tries)
    }
    # An attempt ends (its time read before the commit that frees the
    # document) before the next one's hold, after which that one's start
    # reads the time; so, on one host's clock, they never overlap.
    overlaps = {
        doc: tries
        for doc, tries in attempts.items()
        for earlier, later in itertools.pairwise(tries)
        if earlier[2] is not None and earlier[2] > later[1]
    }
    assert statuses == {"completed"}
    assert completed_once == {i: 1 for i in ids}
    assert left_open == {}, "attempts left open (worker_id, started, finished, outcome)"
    assert overlaps == {}, (
        "attempts that overlap (worker_id, started, finished, outcome)"
    )
    # The killed worker really was mid-document: its claims were taken over.
    assert any(t[3] == "abandoned" for tries in attempts.values() for t in tries)
