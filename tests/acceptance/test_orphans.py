"""Extraction children die with the process that started them, however it ends."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.acceptance.test_cli import (
    _children_of,
    _running,
    _wait_for,
    start_stalled_extract,
)


@pytest.mark.parametrize("number", ["SIGKILL", "SIGTERM", "SIGHUP"])
def test_extract_children_die_with_extract_mid_document(
    tmp_path: Path, number: str
) -> None:
    """
    A child busy in a parser never read its socket: it ran on to the end
    of the document, past its time limit, after its parent was killed.
    """
    parent = start_stalled_extract(tmp_path, seconds=60)
    try:
        children = _wait_for(lambda: _children_of(parent.pid))
        # Into the document: the stall has begun.
        time.sleep(1)
        parent.send_signal(signal.Signals[number])
        code = parent.wait(timeout=10)
        if number != "SIGKILL":
            # Ended by its handler, which kills the children itself.
            assert code == 128 + signal.Signals[number]
        try:
            assert _wait_for(lambda: not any(_running(pid) for pid in children), 5)
        finally:
            for pid in children:
                if _running(pid):
                    os.kill(pid, signal.SIGKILL)
    finally:
        parent.kill()
        parent.wait()


def test_worker_children_die_with_a_killed_worker(tmp_path: Path) -> None:
    """A worker killed by SIGKILL left its child reading on for minutes."""
    data = tmp_path / "data"
    environment = {
        **os.environ,
        "DOCMILL_DATA_DIR": str(data),
        "DOCMILL_EXTRACTOR_PLUGINS": '["docmill.testing"]',
    }
    asyncio.run(_queue_stall(data))
    worker = subprocess.Popen(
        [sys.executable, "-m", "docmill.cli", "worker", "-c", "1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=environment,
    )
    try:
        # The forkserver, then its child: the one reading the document.
        readers = _wait_for(
            lambda: [c for f in _children_of(worker.pid) for c in _children_of(f)], 30
        )
        time.sleep(1)
        worker.kill()
        worker.wait()
        try:
            assert _wait_for(lambda: not any(_running(pid) for pid in readers), 5)
        finally:
            for pid in readers:
                if _running(pid):
                    os.kill(pid, signal.SIGKILL)
    finally:
        worker.kill()
        worker.wait()


async def _queue_stall(data: Path) -> None:
    from docmill.api.app import build_services
    from docmill.db.migrate import upgrade
    from docmill.queue.store import NewDocument
    from docmill.settings import Settings
    from docmill.storage import put_bytes

    services = build_services(Settings(data_dir=data))
    await upgrade(services.engine)
    stored = await put_bytes(services.storage, b"DOCMILL-TEST-STALL 60\nlate", 1000)
    await services.store.create(
        NewDocument("stall", stored.sha256, stored.size_bytes, stored.key)
    )
    await services.engine.dispose()
