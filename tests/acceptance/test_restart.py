"""
Durability with the real server: kill it mid-work, start it again, lose nothing.

These tests run ``docmill serve`` as a subprocess on a free loopback port.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.slow

DOCUMENTS = 6


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Server:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.log = data_dir.parent / "server.log"

    def start(self, workers: int = 2, **settings: str) -> None:
        env = (
            os.environ
            | {
                "DOCMILL_DATA_DIR": str(self.data_dir),
                "DOCMILL_EXTRACTOR_PLUGINS": json.dumps(["docmill.testing"]),
                # These tests poll every document as fast as they can.
                "DOCMILL_RATE_LIMIT": "",
                "DOCMILL_LEASE_SECONDS": "3",
                "DOCMILL_POLL_SECONDS": "0.1",
                "DOCMILL_SHUTDOWN_GRACE_SECONDS": "0.5",
            }
            | settings
        )
        command = [
            sys.executable,
            "-m",
            "docmill.cli",
            "serve",
            "--port",
            str(self.port),
        ]
        command += ["--workers", str(workers)]
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(command, env=env, stdout=log, stderr=log)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise AssertionError(f"server did not start:\n{self.log.read_text()}")

    def signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    server = Server(tmp_path / "data")
    yield server
    server.stop()


def submit_slow_documents(server: Server) -> list[str]:
    ids = []
    for n in range(DOCUMENTS):
        body = f"DOCMILL-TEST-SLEEP 3\ndocument {n}".encode()
        response = httpx.post(
            f"{server.url}/documents", files={"file": (f"{n}.txt", body)}
        )
        ids.append(response.json()["id"])
    return ids


def wait_until_processing(server: Server) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        page = httpx.get(f"{server.url}/documents", params={"status": "processing"})
        if page.json()["items"]:
            return
        time.sleep(0.05)
    raise AssertionError("nothing started processing")


def wait_all_final(server: Server, ids: list[str], timeout: float = 90) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        bodies = [httpx.get(f"{server.url}/documents/{i}").json() for i in ids]
        if all(b["status"] in ("completed", "failed") for b in bodies):
            return bodies
        time.sleep(0.2)
    raise AssertionError(f"not all final: {[b['status'] for b in bodies]}")


def completed_attempts(data_dir: Path) -> dict[str, int]:
    with sqlite3.connect(data_dir / "docmill.db") as connection:
        rows = connection.execute(
            "SELECT document_id, count(*) FROM attempts "
            "WHERE outcome = 'completed' GROUP BY document_id"
        ).fetchall()
    return dict(rows)


@pytest.mark.parametrize(
    ("signum", "log_line"),
    [
        # A killed server's documents are recovered at the next start, at once
        # rather than after their leases expire, because its pid is gone.
        pytest.param(signal.SIGKILL, "its worker process exited", id="sigkill"),
        # A stopped server gives back what it could not finish in its grace
        # (0.5 s, where each document takes 3 s, so one is always unfinished).
        pytest.param(signal.SIGTERM, "released by", id="sigterm"),
    ],
)
def test_documents_survive_server_stop_and_complete_exactly_once(
    server: Server, signum: int, log_line: str
) -> None:
    server.start()
    ids = submit_slow_documents(server)
    wait_until_processing(server)

    server.signal(signum)
    server.start()
    bodies = wait_all_final(server, ids)

    assert [b["status"] for b in bodies] == ["completed"] * DOCUMENTS
    assert completed_attempts(server.data_dir) == {i: 1 for i in ids}
    texts = {httpx.get(f"{server.url}/documents/{i}/text").text for i in ids}
    assert texts == {f"document {n}" for n in range(DOCUMENTS)}
    assert log_line in server.log.read_text()


def test_killed_server_blames_only_the_documents_it_was_reading(
    server: Server,
) -> None:
    """
    With one attempt allowed, a SIGKILL fails the documents being read, and
    those its slots only held for later go back unblamed and complete.
    """
    server.start(DOCMILL_MAX_ATTEMPTS="1")
    ids = submit_slow_documents(server)
    deadline = time.monotonic() + 20
    while (reading := held(server.data_dir))["processing"] < 2 or not reading["held"]:
        assert time.monotonic() < deadline, f"slots never both busy: {reading}"
        time.sleep(0.05)
    being_read = set(reading["ids"])

    server.signal(signal.SIGKILL)
    server.start(DOCMILL_MAX_ATTEMPTS="1")
    bodies = wait_all_final(server, ids)

    outcomes = {b["id"]: (b["status"], b["attempts"]) for b in bodies}
    assert outcomes == {
        i: ("failed", 1) if i in being_read else ("completed", 1) for i in ids
    }


def held(data_dir: Path) -> dict[str, Any]:
    """The documents being read, and how many are held for a slot."""
    with sqlite3.connect(data_dir / "docmill.db") as connection:
        rows = connection.execute(
            "SELECT id, status FROM documents WHERE claim_token IS NOT NULL "
            "AND status IN ('pending', 'processing')"
        ).fetchall()
    reading = [i for i, status in rows if status == "processing"]
    return {
        "ids": reading,
        "processing": len(reading),
        "held": len(rows) - len(reading),
    }
