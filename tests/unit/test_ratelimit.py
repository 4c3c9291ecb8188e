"""The in-memory rate limit: fixed windows that open at a caller's first request."""

from __future__ import annotations

import pytest

from docmill.api import ratelimit
from docmill.api.ratelimit import RateLimiter

pytestmark = pytest.mark.anyio


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    now = [1000.0]
    monkeypatch.setattr(ratelimit.time, "time", lambda: now[0])
    return now


async def test_requests_past_the_limit_are_refused(clock: list[float]) -> None:
    limiter = RateLimiter("2/minute")

    verdicts = [await limiter.hit("ip:a") for _ in range(3)]

    assert [v.allowed for v in verdicts] == [True, True, False]
    assert verdicts[2].headers == {
        "RateLimit-Limit": "2",
        "RateLimit-Remaining": "0",
        "RateLimit-Reset": "60",
    }


async def test_window_ends_a_period_after_its_first_request(
    clock: list[float],
) -> None:
    limiter = RateLimiter("1/minute")
    await limiter.hit("ip:a")
    clock[0] += 45
    refused = await limiter.hit("ip:a")
    clock[0] += 15

    assert (refused.allowed, refused.retry_after) == (False, 15)
    assert (await limiter.hit("ip:a")).allowed


async def test_callers_have_their_own_windows(clock: list[float]) -> None:
    limiter = RateLimiter("1/minute")

    verdicts = [await limiter.hit(who) for who in ("key:a", "key:b", "key:a")]

    assert [v.allowed for v in verdicts] == [True, True, False]


async def test_ended_windows_are_dropped_once_there_are_many(
    clock: list[float], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ratelimit, "SWEEP_AFTER_IDENTITIES", 3)
    limiter = RateLimiter("5/second")
    for who in ("a", "b", "c"):
        await limiter.hit(who)
    clock[0] += 2
    await limiter.hit("d")

    assert list(limiter._windows) == ["d"]


async def test_empty_spec_allows_everything() -> None:
    verdict = await RateLimiter("").hit("ip:a")

    assert (verdict.allowed, verdict.headers) == (True, {})
