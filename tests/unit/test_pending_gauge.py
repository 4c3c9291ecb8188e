"""When a submission recounts the pending documents for back-pressure."""

from __future__ import annotations

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
