"""The one Backoff: the readers' exact reconnect sequence, the sync's full jitter, Retry-After."""

from __future__ import annotations

import random
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from config.backoff import MAX_RETRY_AFTER_S, Backoff, parse_retry_after


def test_default_is_the_readers_reconnect_sequence_without_jitter() -> None:
    b = Backoff()
    assert [b.next_delay() for _ in range(8)] == [0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0, 5.0]
    b.reset()
    assert [b.next_delay() for _ in range(2)] == [0.2, 0.4]


def test_a_reader_unplugged_for_days_keeps_retrying_at_the_cap() -> None:
    """Every 5 s for a week: the doubling must neither overflow nor leave the cap."""
    b = Backoff(0.2, 5.0)
    delays = [b.next_delay() for _ in range(7 * 24 * 3600 // 5)]
    assert delays[-1] == 5.0
    j = Backoff(30.0, 1800.0, jitter=True, rng=random.Random(1))
    assert all(0.0 <= j.next_delay() <= 1800.0 for _ in range(5000))


def test_without_jitter_retry_after_is_still_a_floor() -> None:
    b = Backoff(0.2, 5.0)
    assert b.next_delay(30.0) == 30.0
    assert b.next_delay(0.1) == 0.4
    assert b.next_delay(10**6) == MAX_RETRY_AFTER_S


@given(
    seed=st.integers(0, 2**32),
    base=st.floats(0.01, 10),
    cap=st.floats(1, 1000),
    retry_after=st.one_of(st.none(), st.floats(0, 5000)),
)
def test_delays_stay_under_the_growing_ceiling(
    seed: int, base: float, cap: float, retry_after: float | None
) -> None:
    b = Backoff(first_s=base, cap_s=cap, jitter=True, rng=random.Random(seed))
    for n in range(12):
        d = b.next_delay(retry_after)
        ceiling = min(cap, base * 2**n)
        floor = 0.0 if retry_after is None else min(retry_after, MAX_RETRY_AFTER_S)
        assert floor <= d <= max(ceiling, floor)
    b.reset()
    assert b.attempt == 0


def test_full_jitter_spreads_a_fleet() -> None:
    """Terminals retrying after the same outage must not come back in lockstep."""
    delays = [
        Backoff(first_s=1, cap_s=60, jitter=True, rng=random.Random(i), attempt=6).next_delay()
        for i in range(1000)
    ]
    assert min(delays) < 6
    assert max(delays) > 54
    assert len({round(d, 3) for d in delays}) > 900


def test_retry_after_forms() -> None:
    now = datetime(2026, 11, 18, 11, 0, tzinfo=UTC)
    assert parse_retry_after("120", now) == 120.0
    assert parse_retry_after(" 7 ", now) == 7.0
    assert parse_retry_after("Wed, 18 Nov 2026 11:01:30 GMT", now) == 90.0
    assert parse_retry_after("Wed, 18 Nov 2026 10:00:00 GMT", now) == 0.0  # in the past
    assert parse_retry_after(None, now) is None
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after("-5", now) is None
