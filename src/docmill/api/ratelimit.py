"""
Request rate limits per API key (per client address without auth).

Counters live in memory for a single API process, or in Redis when
``DOCMILL_REDIS_URL`` is set, so several API processes share one budget.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from limits import RateLimitItem, parse
from limits.aio.storage import RedisStorage

# Past this many callers in memory, windows that have ended are dropped.
SWEEP_AFTER_IDENTITIES = 10_000
# The ASGI scope key of a request's rate-limit headers: a list the
# middleware puts there and ``auth.admit`` fills, so an error answered
# outside the endpoint (an exception handler, the 500) carries them as the
# endpoint's own answer does. A list, not the headers: a route that copies
# the scope (a rewritten path) still fills the middleware's.
SCOPE_KEY = "docmill.rate_limit_headers"


# Not frozen: a frozen dataclass sets each field through object.__setattr__,
# which doubled the cost of making the verdict every request gets.
@dataclass(slots=True)
class Verdict:
    allowed: bool
    headers: dict[str, str]
    retry_after: int = 0

    def raw_headers(self) -> list[tuple[bytes, bytes]]:
        return [(k.lower().encode(), v.encode()) for k, v in self.headers.items()]


ALLOW_ALL = Verdict(True, {})


class RateLimiter:
    """
    A fixed-window limit such as ``100/minute``; empty ``spec`` allows all.

    A window opens at a caller's first request and lasts the limit's period,
    as in the ``limits`` library, whose Redis storage keeps the shared
    counters. In memory, the counters are a dictionary here: the library's
    memory storage (locks, an expiry task, two awaited calls) cost about
    20 µs a request, more than all the rest of admitting one.

    Args:
        spec: the limit, in the notation of the ``limits`` library.
        redis_url: ``redis://host:port/db`` to share counters, or None.
    """

    def __init__(self, spec: str, redis_url: str | None = None) -> None:
        self.item: RateLimitItem | None = parse(spec) if spec.strip() else None
        self.redis: RedisStorage | None = None
        if redis_url:
            self.redis = RedisStorage(
                "async+" + redis_url,
                implementation="redispy",
                key_prefix="docmill",
            )
        # identity -> [requests in the window, when the window ends (epoch s)]
        self._windows: dict[str, list[float]] = {}

    async def hit(self, identity: str) -> Verdict:
        item = self.item
        if item is None:
            return ALLOW_ALL
        if self.redis is None:
            count, reset_at = self._count(identity, item)
        else:
            # What ``FixedWindowRateLimiter.hit`` and ``get_window_stats`` do,
            # in two storage calls instead of three (three round trips to
            # Redis): the count after this hit gives the verdict and what
            # remains.
            key = item.key_for(identity)
            count = await self.redis.incr(key, item.get_expiry())
            reset_at = await self.redis.get_expiry(key)
        reset = max(0, math.ceil(reset_at - time.time()))
        headers = {
            "RateLimit-Limit": str(item.amount),
            "RateLimit-Remaining": str(max(0, item.amount - count)),
            "RateLimit-Reset": str(reset),
        }
        return Verdict(count <= item.amount, headers, retry_after=max(1, reset))

    def _count(self, identity: str, item: RateLimitItem) -> tuple[int, float]:
        now = time.time()
        window = self._windows.get(identity)
        if window is None or window[1] <= now:
            if len(self._windows) >= SWEEP_AFTER_IDENTITIES:
                self._sweep(now)
            window = self._windows[identity] = [0, now + item.get_expiry()]
        window[0] += 1
        return int(window[0]), window[1]

    def _sweep(self, now: float) -> None:
        ended = [key for key, (_, ends) in self._windows.items() if ends <= now]
        for key in ended:
            del self._windows[key]
