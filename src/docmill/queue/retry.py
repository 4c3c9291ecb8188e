"""When a failed attempt is tried again."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    """
    Exponential backoff with full jitter.

    Attempt ``n`` (1-based) that failed in a retryable way waits a random time
    between half of and the whole of ``base_seconds * 2 ** (n - 1)``, capped at
    ``max_seconds``. The jitter keeps a crowd of documents that failed together
    (a database blip, a dead worker) from all retrying in the same instant.
    """

    max_attempts: int = 3
    base_seconds: float = 2.0
    max_seconds: float = 300.0

    def delay_seconds(self, attempts: int) -> float:
        ceiling = min(self.max_seconds, self.base_seconds * 2 ** max(attempts - 1, 0))
        return random.uniform(ceiling / 2, ceiling)
