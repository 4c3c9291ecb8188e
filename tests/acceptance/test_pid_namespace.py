"""A worker in another PID namespace on the same host keeps its documents."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from docmill.api.app import build_services
from docmill.db.migrate import upgrade
from docmill.queue.store import NewDocument
from docmill.settings import Settings
from docmill.storage import put_bytes

pytestmark = pytest.mark.slow


def _unshare_works() -> bool:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return False
    probe = subprocess.run(
        ["unshare", "--pid", "--fork", "--mount-proc", "true"], capture_output=True
    )
    return probe.returncode == 0


def _free_pid() -> int:
    """A pid no process on the host has, near the top of the range."""
    top = int(Path("/proc/sys/kernel/pid_max").read_text())
    return next(p for p in range(top - 100, top) if not Path(f"/proc/{p}").exists())


@pytest.mark.skipif(not _unshare_works(), reason="needs root and unshare --pid")
def test_live_worker_in_another_namespace_is_not_recovered(tmp_path: Path) -> None:
    """
    Its pid, counted in its own namespace, was free on the host, so a worker
    starting on the host took its running document over and blamed it.
    """
    settings = Settings(data_dir=tmp_path / "data")
    document_id = asyncio.run(_queue(settings))
    pid = _free_pid()
    command = (
        f"echo {pid - 1} >/proc/sys/kernel/ns_last_pid; "
        f"{sys.executable} -m docmill.cli worker -c 1"
    )
    worker = subprocess.Popen(
        ["unshare", "--pid", "--fork", "--mount-proc", "sh", "-c", command],
        env=os.environ
        | {
            "DOCMILL_DATA_DIR": str(settings.data_dir),
            "DOCMILL_EXTRACTOR_PLUGINS": '["docmill.testing"]',
        },
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        holder = _wait_processing(settings, document_id)
        recovered, row = asyncio.run(_recover(settings, document_id))
    finally:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()

    assert holder.startswith(f"{socket.gethostname()}:{pid}:")
    assert not Path(f"/proc/{pid}").exists()  # what made it look dead
    assert (recovered, row.status, row.worker_id) == (0, "processing", holder)


async def _queue(settings: Settings) -> str:
    services = build_services(settings)
    await upgrade(services.engine)
    stored = await put_bytes(services.storage, b"DOCMILL-TEST-STALL 60\nbig", 1000)
    document_id = await services.store.create(
        NewDocument("big", stored.sha256, stored.size_bytes, stored.key)
    )
    await services.engine.dispose()
    await services.store.close()
    return document_id


def _wait_processing(settings: Settings, document_id: str) -> str:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        row = asyncio.run(_row(settings, document_id))
        if row.status == "processing":
            return str(row.worker_id)
        time.sleep(0.1)
    raise AssertionError("the namespaced worker never started the document")


async def _row(settings: Settings, document_id: str) -> Any:
    services = build_services(settings)
    row = await services.store.get(document_id)
    await services.engine.dispose()
    await services.store.close()
    return row


async def _recover(settings: Settings, document_id: str) -> tuple[int, Any]:
    services = build_services(settings)
    recovered = await services.store.reclaim_from_dead_workers(socket.gethostname())
    row = await services.store.get(document_id)
    await services.engine.dispose()
    await services.store.close()
    return recovered, row
