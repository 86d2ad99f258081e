"""Capped exponential backoff: the readers' reconnect delays and the sync retries.

One class for both. Without jitter (the readers) the delays are exactly 0.2, 0.4, 0.8 …
capped at 5 s, back to the first after :meth:`Backoff.reset`. With full jitter (the
sync client and scheduler, docs/architecture.md §7) each delay is drawn uniformly from [0,
that ceiling], so a fleet coming back after one outage does not retry in lockstep,
and the server's ``Retry-After`` is a floor.

Pure: randomness is injected, nothing here sleeps or reads the clock by itself.
"""

from __future__ import annotations

import random
from dataclasses import KW_ONLY, dataclass, field
from datetime import datetime
from email.utils import parsedate_to_datetime

# A server asking for more than this is either wrong or down for long: the scheduler's
# next cycle comes sooner than that anyway.
MAX_RETRY_AFTER_S = 900.0
# 2.0 ** 1024 overflows; every cap is reached long before this many doublings.
_MAX_DOUBLINGS = 1000


@dataclass
class Backoff:
    """Delays ``first_s * 2**n`` capped at ``cap_s``; with ``jitter``, drawn from [0, delay]."""

    first_s: float = 0.2
    cap_s: float = 5.0
    _: KW_ONLY
    jitter: bool = False
    rng: random.Random = field(default_factory=random.Random)
    attempt: int = 0

    def next_delay(self, retry_after_s: float | None = None) -> float:
        """The wait before the next attempt; at least what Retry-After asked for."""
        ceiling = min(self.cap_s, self.first_s * 2.0 ** min(self.attempt, _MAX_DOUBLINGS))
        self.attempt += 1
        delay = self.rng.uniform(0.0, ceiling) if self.jitter else ceiling
        if retry_after_s is not None:
            delay = max(delay, min(retry_after_s, MAX_RETRY_AFTER_S))
        return delay

    def reset(self) -> None:
        """After a success: the next delay is the first one again."""
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
