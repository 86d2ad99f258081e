"""Calendar periods, local dates and ages in the programme's time zone (Europe/Warsaw).

Periods are calendar windows of local dates, not rolling spans: a day, an ISO week
starting on Monday, a calendar month, a calendar year. A window is the half-open range
``[start, end)`` of local dates; as instants it runs from local midnight of ``start`` to
local midnight of ``end``, so a DST day is 23 or 25 hours long and every instant lies in
exactly one window.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from ledger.clock import WARSAW

PeriodUnit = Literal["day", "week", "month", "year"]


def local_day(at: datetime, tz: ZoneInfo = WARSAW) -> date:
    """The programme's calendar date of an aware instant."""
    if at.tzinfo is None:
        raise ValueError("naive datetime: pass an aware instant")
    return at.astimezone(tz).date()


def window_dates(period: PeriodUnit, on: date) -> tuple[date, date]:
    """The period window ``[start, end)`` of local dates that contains ``on``."""
    if period == "day":
        return on, on + timedelta(days=1)
    if period == "week":
        start = on - timedelta(days=on.weekday())  # Monday
        return start, start + timedelta(days=7)
    if period == "month":
        start = on.replace(day=1)
        end = date(on.year + 1, 1, 1) if on.month == 12 else date(on.year, on.month + 1, 1)
        return start, end
    if period == "year":
        return date(on.year, 1, 1), date(on.year + 1, 1, 1)
    raise ValueError(f"unknown period unit {period!r}")


def local_midnight(day: date, tz: ZoneInfo = WARSAW) -> datetime:
    """The UTC instant at which the local ``day`` begins."""
    # Warsaw's DST steps happen at 02:00/03:00, never at midnight; a zone that skips
    # midnight gets the first existing instant of the day from the fold-0 reading.
    return datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)


def window_instants(
    period: PeriodUnit, at: datetime, tz: ZoneInfo = WARSAW
) -> tuple[datetime, datetime]:
    """The period window containing ``at`` as UTC instants ``[start, end)``."""
    start, end = window_dates(period, local_day(at, tz))
    return local_midnight(start, tz), local_midnight(end, tz)


def age_on(birth: date, on: date) -> int:
    """Completed years on ``on``; someone born on 29 February has the birthday on 1 March
    in common years (the (month, day) comparison gives exactly that)."""
    before_birthday = (on.month, on.day) < (birth.month, birth.day)
    return on.year - birth.year - (1 if before_birthday else 0)
