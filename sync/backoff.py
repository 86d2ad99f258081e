"""Exponential backoff with full jitter, honouring the server's Retry-After.

Randomness and sleeping are injected so tests run a whole retry sequence instantly and
reproducibly; nothing here reads the clock by itself.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import parsedate_to_datetime

Sleep = Callable[[float], Awaitable[None]]

# A server asking for more than this is either wrong or down for long: the scheduler's
# next cycle comes sooner than that anyway.
MAX_RETRY_AFTER_S = 900.0


@dataclass
class Backoff:
    """Delays base*2^n capped at ``cap``, each drawn uniformly from [0, delay] (full jitter)."""

    base_s: float = 1.0
    cap_s: float = 300.0
    rng: random.Random = field(default_factory=random.Random)
    attempt: int = 0

    def next_delay(self, retry_after_s: float | None = None) -> float:
        """The wait before the next attempt; at least what Retry-After asked for."""
        ceiling = min(self.cap_s, self.base_s * (2.0**self.attempt))
        self.attempt += 1
        delay = self.rng.uniform(0.0, ceiling)
        if retry_after_s is not None:
            delay = max(delay, min(retry_after_s, MAX_RETRY_AFTER_S))
        return delay

    def reset(self) -> None:
        self.attempt = 0


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Retry-After as seconds: delta-seconds or an HTTP date; None when absent or bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - now).total_seconds())


async def real_sleep(seconds: float) -> None:
    """asyncio.sleep, as the default Sleep."""
    await asyncio.sleep(seconds)
