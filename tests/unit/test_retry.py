"""Backoff delays grow and stay jittered within their bounds."""

from __future__ import annotations

import pytest

from docmill.queue.retry import RetryPolicy


@pytest.mark.parametrize(("attempt", "ceiling"), [(1, 2.0), (2, 4.0), (3, 8.0)])
def test_delay_is_between_half_and_whole_ceiling(attempt: int, ceiling: float) -> None:
    delays = [RetryPolicy(base_seconds=2.0).delay_seconds(attempt) for _ in range(200)]

    assert ceiling / 2 <= min(delays) and max(delays) <= ceiling


def test_delay_is_capped() -> None:
    policy = RetryPolicy(base_seconds=2.0, max_seconds=10.0)

    assert policy.delay_seconds(30) <= 10.0
