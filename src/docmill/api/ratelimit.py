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

    async def hit(self, identity: str) -> Verdict:
        item = self.item
        if item is None:
            return Verdict(True, {})
        # What ``FixedWindowRateLimiter.hit`` and ``get_window_stats`` do, in
        # two storage calls instead of three (three round trips to Redis):
        # the count after this hit gives both the verdict and what remains.
        key = item.key_for(identity)
        count = await self.storage.incr(key, item.get_expiry())
        reset_at = await self.storage.get_expiry(key)
        reset = max(0, math.ceil(reset_at - time.time()))
        headers = {
            "RateLimit-Limit": str(item.amount),
            "RateLimit-Remaining": str(max(0, item.amount - count)),
            "RateLimit-Reset": str(reset),
        }
        return Verdict(count <= item.amount, headers, retry_after=max(1, reset))
