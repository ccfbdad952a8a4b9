"""Pacing requests: a requests-per-minute limiter and the retry delay."""

from __future__ import annotations

import asyncio
import random


class RateLimiter:
    """Spaces requests evenly so that at most `rpm` start in any minute."""

    def __init__(self, rpm: int | None):
        self.interval = 60.0 / rpm if rpm else 0.0
        self._next = 0.0
        self._lock = asyncio.Lock()

    def reserve(self, now: float) -> float:
        """Take the next free slot at or after `now`; the seconds to wait for it."""
        slot = max(now, self._next)
        self._next = slot + self.interval
        return slot - now

    async def wait(self) -> None:
        if not self.interval:
            return
        async with self._lock:
            delay = self.reserve(asyncio.get_running_loop().time())
        await asyncio.sleep(delay)


def retry_delay(attempt: int, initial: float, maximum: float, retry_after: float | None, rng: random.Random) -> float:
    """Exponential backoff with full jitter, but never sooner than the server's Retry-After."""
    backoff = min(maximum, initial * 2 ** (attempt - 1))
    jittered = backoff * (0.5 + rng.random() / 2)
    return max(jittered, retry_after or 0.0)
