"""When a submission recounts the pending documents for back-pressure."""

from __future__ import annotations

import asyncio

import pytest

from docmill.api import submit
from docmill.api.submit import PendingGauge


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    now = [1000.0]
    monkeypatch.setattr(submit.time, "monotonic", lambda: now[0])
    return now


def test_first_submission_counts(clock: list[float]) -> None:
    assert PendingGauge().needs_count(100)


def test_fresh_count_far_from_the_limit_is_reused(clock: list[float]) -> None:
    gauge = PendingGauge()
    gauge.count(10)
    for _ in range(79):
        gauge.queued()

    assert not gauge.needs_count(100)


def test_near_the_limit_every_submission_counts(clock: list[float]) -> None:
    gauge = PendingGauge()
    gauge.count(10)
    for _ in range(80):
        gauge.queued()

    assert gauge.needs_count(100)


def test_count_older_than_a_second_is_taken_again(clock: list[float]) -> None:
    gauge = PendingGauge()
    gauge.count(0)
    clock[0] += PendingGauge.RECOUNT_SECONDS

    assert gauge.needs_count(100)


def test_limit_of_one_counts_after_each_submission(clock: list[float]) -> None:
    gauge = PendingGauge()
    gauge.count(0)
    assert not gauge.needs_count(1)
    gauge.queued()

    assert gauge.needs_count(1)


@pytest.mark.anyio
async def test_concurrent_recounts_share_one_count() -> None:
    gauge = PendingGauge()
    started = 0
    release = asyncio.Event()

    async def count() -> int:
        nonlocal started
        started += 1
        await release.wait()
        return 7

    waiting = [asyncio.create_task(gauge.shared_count(count)) for _ in range(5)]
    await asyncio.sleep(0)
    release.set()

    assert await asyncio.gather(*waiting) == [7] * 5
    assert started == 1
    assert (gauge.counted, gauge.recount) == (7, None)
    assert not gauge.needs_count(100)


@pytest.mark.anyio
async def test_a_caller_going_away_leaves_the_count_to_the_others() -> None:
    gauge = PendingGauge()
    release = asyncio.Event()

    async def count() -> int:
        await release.wait()
        return 3

    first = asyncio.create_task(gauge.shared_count(count))
    second = asyncio.create_task(gauge.shared_count(count))
    await asyncio.sleep(0)
    first.cancel()
    release.set()

    assert await second == 3
    assert first.cancelled()


@pytest.mark.anyio
async def test_a_failed_count_reaches_every_caller_and_is_tried_again() -> None:
    gauge = PendingGauge()
    calls = 0

    async def count() -> int:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("database away")
        return 2

    outcomes = await asyncio.gather(
        gauge.shared_count(count), gauge.shared_count(count), return_exceptions=True
    )

    assert [type(o) for o in outcomes] == [ConnectionError, ConnectionError]
    assert await gauge.shared_count(count) == 2


def test_a_small_limit_is_always_in_reach() -> None:
    gauge = PendingGauge()
    gauge.count(0)

    assert gauge.within_reach(5)
    assert gauge.within_reach(PendingGauge.REACH_MARGIN)


def test_a_large_limit_is_in_reach_within_a_tenth() -> None:
    gauge = PendingGauge()
    gauge.count(50_000)
    assert not gauge.within_reach(100_000)
    gauge.count(89_999)
    assert not gauge.within_reach(100_000)
    gauge.queued()

    assert gauge.within_reach(100_000)
