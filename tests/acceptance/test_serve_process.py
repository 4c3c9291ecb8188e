"""``docmill serve`` as a process: its client address and how it stops."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.acceptance.test_restart import Server

pytestmark = pytest.mark.slow


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    server = Server(tmp_path / "data")
    yield server
    server.stop()


def statuses(server: Server, forwarded_for: list[str]) -> list[int]:
    return [
        httpx.get(
            f"{server.url}/documents", headers={"X-Forwarded-For": address}
        ).status_code
        for address in forwarded_for
    ]


def test_forwarded_for_is_ignored_without_trusted_proxies(server: Server) -> None:
    server.start(DOCMILL_RATE_LIMIT="2/minute")

    answers = statuses(server, ["203.0.113.1", "203.0.113.2", "203.0.113.3"])

    assert answers == [200, 200, 429]


def test_a_trusted_proxy_names_the_client(server: Server) -> None:
    server.start(
        DOCMILL_RATE_LIMIT="1/minute",
        DOCMILL_TRUSTED_PROXIES=json.dumps(["127.0.0.0/8"]),
    )

    answers = statuses(server, ["203.0.113.1", "203.0.113.2", "203.0.113.1"])

    assert answers == [200, 200, 429]


def test_serve_exits_0_after_a_graceful_stop(server: Server) -> None:
    server.start()

    server.signal(signal.SIGTERM)

    assert server.process is not None
    assert server.process.returncode == 0


def test_event_streams_end_cleanly_and_at_once_at_a_stop(server: Server) -> None:
    """
    uvicorn waited its whole graceful timeout for an open event stream, then
    cancelled it with an error and a traceback; the client saw a cut-off
    response.
    """
    server.start(workers=0, DOCMILL_SHUTDOWN_GRACE_SECONDS="10")
    posted = httpx.post(f"{server.url}/documents", files={"file": ("a.txt", b"x")})
    url = f"{server.url}/documents/{posted.json()['id']}/events"
    assert server.process is not None

    with httpx.stream("GET", url, timeout=30) as response:
        lines = response.iter_lines()
        assert next(lines).startswith("event: status")
        stopped = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        # Read to the end: a cut-off chunked body raises here.
        rest = list(lines)
        ended = time.monotonic() - stopped
    code = server.process.wait(timeout=30)
    exited = time.monotonic() - stopped

    assert "event: status" not in rest
    assert (ended < 2, exited < 4, code) == (True, True, 0)
    assert "ERROR" not in server.log.read_text()


def test_a_taken_port_stops_serve_before_its_worker_reads_anything(
    tmp_path: Path,
) -> None:
    """
    uvicorn binds after the application's start-up: a serve whose port was
    taken started its embedded worker, which claimed and read a document
    before the bind failed.
    """
    import asyncio
    import socket

    from docmill.settings import Settings
    from tests.acceptance.test_worker_cli import queue_texts, statuses
    from tests.support import run_cli

    settings = Settings(data_dir=tmp_path / "data")
    ids = asyncio.run(queue_texts(settings, ["waiting to be read"]))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run_cli(
            "serve",
            "--port",
            str(port),
            "--data-dir",
            str(settings.data_dir),
            cwd=tmp_path,
        )

    assert done.returncode == 3, done.stderr
    assert "already in use" in done.stderr
    assert "worker" not in done.stderr
    assert asyncio.run(statuses(settings, ids)) == ["pending"]
