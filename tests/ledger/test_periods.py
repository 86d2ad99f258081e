"""Period windows, local dates and ages in Europe/Warsaw, DST and 29 February included."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import get_args

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.clock import WARSAW
from ledger.periods import (
    PeriodUnit,
    age_on,
    local_day,
    local_midnight,
    window_dates,
    window_instants,
)

PERIODS: tuple[PeriodUnit, ...] = get_args(PeriodUnit)


def dst_changes(first_year: int, last_year: int) -> list[datetime]:
    """Every UTC instant at which Warsaw's UTC offset changes, found by scanning hours."""
    changes: list[datetime] = []
    t = datetime(first_year, 1, 1, tzinfo=UTC)
    end = datetime(last_year + 1, 1, 1, tzinfo=UTC)
    prev = t.astimezone(WARSAW).utcoffset()
    while t < end:
        t += timedelta(hours=1)
        off = t.astimezone(WARSAW).utcoffset()
        if off != prev:
            changes.append(t)
            prev = off
    return changes


DST_CHANGES = dst_changes(2020, 2035)


def test_the_scan_finds_two_changes_a_year() -> None:
    assert len(DST_CHANGES) == 32
    # last Sunday of March at 01:00 UTC, last Sunday of October at 01:00 UTC
    assert DST_CHANGES[0] == datetime(2020, 3, 29, 1, tzinfo=UTC)
    assert DST_CHANGES[1] == datetime(2020, 10, 25, 1, tzinfo=UTC)
    assert all(c.weekday() == 6 and c.hour == 1 for c in DST_CHANGES)


@given(
    change=st.sampled_from(DST_CHANGES),
    offset_s=st.integers(min_value=-3 * 86400, max_value=3 * 86400),
    period=st.sampled_from(PERIODS),
)
def test_each_instant_lies_in_exactly_one_window(
    change: datetime, offset_s: int, period: PeriodUnit
) -> None:
    at = change + timedelta(seconds=offset_s)
    start, end = window_instants(period, at)
    assert start <= at < end
    # the neighbouring windows touch this one and do not contain the instant
    prev_start, prev_end = window_instants(period, start - timedelta(microseconds=1))
    next_start, next_end = window_instants(period, end)
    assert prev_end == start
    assert next_start == end
    assert not prev_start <= at < prev_end
    assert not next_start <= at < next_end
    # window edges are local midnights
    for edge in (start, end):
        local = edge.astimezone(WARSAW)
        assert (local.hour, local.minute, local.second) == (0, 0, 0)


@pytest.mark.parametrize("change", DST_CHANGES[:2])
def test_dst_days_are_23_and_25_hours(change: datetime) -> None:
    start, end = window_instants("day", change)
    hours = (end - start) / timedelta(hours=1)
    assert hours == (23 if change.month == 3 else 25)


@given(
    day=st.dates(min_value=date(2020, 1, 1), max_value=date(2035, 12, 31)),
    period=st.sampled_from(PERIODS),
)
def test_window_dates_contain_the_day_and_start_where_declared(
    day: date, period: PeriodUnit
) -> None:
    start, end = window_dates(period, day)
    assert start <= day < end
    if period == "day":
        assert (end - start).days == 1
    elif period == "week":
        assert start.weekday() == 0  # ISO week: Monday
        assert (end - start).days == 7
        assert start.isocalendar()[:2] == day.isocalendar()[:2]
    elif period == "month":
        assert (start.year, start.month, start.day) == (day.year, day.month, 1)
        assert end.day == 1
        assert (end - timedelta(days=1)).month == day.month
    else:
        assert (start, end) == (date(day.year, 1, 1), date(day.year + 1, 1, 1))


@pytest.mark.parametrize(
    ("utc", "local"),
    [
        ("2026-03-28T23:00:00+00:00", date(2026, 3, 29)),  # CET midnight
        ("2026-03-29T22:00:00+00:00", date(2026, 3, 30)),  # CEST midnight
        ("2026-03-29T21:59:59+00:00", date(2026, 3, 29)),
        ("2026-10-25T00:59:59+00:00", date(2026, 10, 25)),  # 02:59:59 CEST
        ("2026-12-31T23:00:00+00:00", date(2027, 1, 1)),
    ],
)
def test_local_day(utc: str, local: date) -> None:
    assert local_day(datetime.fromisoformat(utc)) == local


def test_local_day_refuses_a_naive_instant() -> None:
    with pytest.raises(ValueError, match="naive"):
        local_day(datetime(2026, 1, 1))  # noqa: DTZ001 - the point of the test


def test_local_midnight_across_both_changes() -> None:
    assert local_midnight(date(2026, 3, 29)) == datetime(2026, 3, 28, 23, tzinfo=UTC)
    assert local_midnight(date(2026, 3, 30)) == datetime(2026, 3, 29, 22, tzinfo=UTC)
    assert local_midnight(date(2026, 10, 25)) == datetime(2026, 10, 24, 22, tzinfo=UTC)
    assert local_midnight(date(2026, 10, 26)) == datetime(2026, 10, 25, 23, tzinfo=UTC)


@pytest.mark.parametrize(
    ("birth", "on", "age"),
    [
        (date(2000, 5, 17), date(2026, 5, 16), 25),
        (date(2000, 5, 17), date(2026, 5, 17), 26),
        (date(2000, 2, 29), date(2026, 2, 28), 25),  # common year: not yet
        (date(2000, 2, 29), date(2026, 3, 1), 26),  # birthday is 1 March
        (date(2000, 2, 29), date(2028, 2, 28), 27),
        (date(2000, 2, 29), date(2028, 2, 29), 28),  # leap year: on the day
        (date(2000, 3, 1), date(2026, 2, 28), 25),
        (date(2026, 11, 18), date(2026, 11, 18), 0),
    ],
)
def test_age_on(birth: date, on: date, age: int) -> None:
    assert age_on(birth, on) == age


@given(
    birth=st.dates(min_value=date(1900, 1, 1), max_value=date(2030, 12, 31)),
    on=st.dates(min_value=date(1900, 1, 1), max_value=date(2035, 12, 31)),
)
def test_age_counts_completed_years(birth: date, on: date) -> None:
    age = age_on(birth, on)

    # the age-th birthday (1 March for a leapling in a common year) is on or before `on`,
    # the next one after it
    def birthday(years: int) -> date:
        y = birth.year + years
        try:
            return birth.replace(year=y)
        except ValueError:
            return date(y, 3, 1)

    if on >= birth:
        assert birthday(age) <= on < birthday(age + 1)
