"""``docmill serve`` as a process: its client address and how it stops."""

from __future__ import annotations

import json
import signal
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
