"""The killable extraction child: timeouts, crashes and memory caps stay contained."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from docmill.exceptions import ExtractionTimeout, LimitExceeded, WorkerCrash
from docmill.extract.base import Limits
from docmill.extract.child import ExtractionChild

pytestmark = pytest.mark.anyio


@pytest.fixture
def child() -> ExtractionChild:
    child = ExtractionChild(Limits(), memory_mb=512, plugins=["docmill.testing"])
    yield child
    child.close()


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


async def test_slow_extraction_times_out_and_child_is_replaced(
    child: ExtractionChild, tmp_path: Path
) -> None:
    slow = write(tmp_path, "slow", b"DOCMILL-TEST-SLEEP 30\nnever")
    quick = write(tmp_path, "quick", b"DOCMILL-TEST-SLEEP 0\nafter")

    with pytest.raises(ExtractionTimeout):
        await child.extract(slow, None, timeout_seconds=0.5)
    payload = await child.extract(quick, None, timeout_seconds=10)

    assert payload["text"] == "after"


async def test_crashing_extraction_is_reported_as_worker_crash(
    child: ExtractionChild, tmp_path: Path
) -> None:
    crash = write(tmp_path, "crash", b"DOCMILL-TEST-CRASH")

    with pytest.raises(WorkerCrash, match="SIGKILL"):
        await child.extract(crash, None, timeout_seconds=10)


async def test_memory_hog_stops_at_the_cap(
    child: ExtractionChild, tmp_path: Path
) -> None:
    hog = write(tmp_path, "hog", b"DOCMILL-TEST-HOG")

    with pytest.raises(LimitExceeded):
        await child.extract(hog, None, timeout_seconds=30)


async def test_progress_reaches_the_parent(
    child: ExtractionChild, tmp_path: Path
) -> None:
    slow = write(tmp_path, "slow", b"DOCMILL-TEST-SLEEP 0.6\ndone")
    seen: list[dict[str, object]] = []

    await child.extract(slow, None, timeout_seconds=10, on_progress=seen.append)

    assert seen[-1] == {"done": 6, "total": 6, "unit": "steps"}


def test_large_result_arrives_whole_under_uvloop(tmp_path: Path) -> None:
    """uvloop leaves a watched pipe non-blocking; a big result must still arrive."""
    uvloop = pytest.importorskip("uvloop")
    big = write(tmp_path, "big.txt", ("word " * 200_000).encode())
    child = ExtractionChild(Limits(), memory_mb=1024)

    async def extract_twice() -> list[int]:
        try:
            return [
                (await child.extract(big, None, timeout_seconds=60))["word_count"]
                for _ in range(2)
            ]
        finally:
            child.close()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        counts = runner.run(extract_twice())

    assert counts == [200_000, 200_000]
