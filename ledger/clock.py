"""The one clock: wall time (UTC) and monotonic time, injectable so tests drive it."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

WARSAW = ZoneInfo("Europe/Warsaw")


class Clock(Protocol):
    def now(self) -> datetime:
        """Aware UTC wall time."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never jumps."""
        ...


class SystemClock:
    """The machine's clocks."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()


@dataclass
class FakeClock:
    """A clock tests set and advance; wall and monotonic move independently."""

    wall: datetime
    mono: float = 1000.0

    def now(self) -> datetime:
        return self.wall

    def monotonic(self) -> float:
        return self.mono

    def advance(self, seconds: float) -> None:
        self.wall += timedelta(seconds=seconds)
        self.mono += seconds

    def set_wall(self, wall: datetime) -> None:
        """Jump the wall clock (an NTP step, a dead RTC battery); monotonic stays."""
        if wall.tzinfo is None:
            raise ValueError("wall time must be timezone-aware")
        self.wall = wall


def format_ts(at: datetime) -> str:
    """RFC 3339 UTC with milliseconds: 2026-11-22T02:11:54.123Z."""
    utc = at.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def parse_ts(text: str) -> datetime:
    """Parse an RFC 3339 timestamp into an aware UTC datetime."""
    dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if dt.tzinfo is None:
        raise ValueError(f"timestamp without offset: {text!r}")
    return dt.astimezone(UTC)


def local_date(at: datetime, tz: ZoneInfo = WARSAW) -> date:
    """The programme's calendar date of an instant."""
    if at.tzinfo is None:
        raise ValueError("naive datetime")
    return at.astimezone(tz).date()


def unix_ms(at: datetime) -> int:
    """Milliseconds since the epoch of an aware datetime."""
    return int(at.timestamp() * 1000)
