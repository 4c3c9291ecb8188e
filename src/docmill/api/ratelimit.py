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
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import FixedWindowRateLimiter


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    headers: dict[str, str]
    retry_after: int = 0


class RateLimiter:
    """
    A fixed-window limit such as ``100/minute``; empty ``spec`` allows all.

    Args:
        spec: the limit, in the notation of the ``limits`` library.
        redis_url: ``redis://host:port/db`` to share counters, or None.
    """

    def __init__(self, spec: str, redis_url: str | None = None) -> None:
        self.item: RateLimitItem | None = parse(spec) if spec.strip() else None
        storage: Storage
        if redis_url:
            storage = RedisStorage(
                "async+" + redis_url,
                implementation="redispy",
                key_prefix="docmill",
            )
        else:
            storage = MemoryStorage()
        self.storage = storage
        self.limiter = FixedWindowRateLimiter(storage)

    async def hit(self, identity: str) -> Verdict:
        if self.item is None:
            return Verdict(True, {})
        allowed = await self.limiter.hit(self.item, identity)
        stats = await self.limiter.get_window_stats(self.item, identity)
        reset = max(0, math.ceil(stats.reset_time - time.time()))
        headers = {
            "RateLimit-Limit": str(self.item.amount),
            "RateLimit-Remaining": str(stats.remaining),
            "RateLimit-Reset": str(reset),
        }
        return Verdict(allowed, headers, retry_after=max(1, reset))
