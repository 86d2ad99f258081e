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


class OffsetFileClock:
    """The system clock shifted by the seconds written in a file (the chaos harness's knob).

    The file is re-read at most every 50 ms of monotonic time; a missing or unreadable
    file means no shift. Used only when ``KARTAPOS_CLOCK_OFFSET_FILE`` is set.
    """

    def __init__(self, path: str) -> None:
        self._path = path
        self._offset = 0.0
        self._checked = -1.0

    def _shift(self) -> float:
        now = time.monotonic()
        if now - self._checked >= 0.05:
            self._checked = now
            try:
                with open(self._path) as f:
                    self._offset = float(f.read().strip() or 0)
            except (OSError, ValueError):
                self._offset = 0.0
        return self._offset

    def now(self) -> datetime:
        return datetime.now(UTC) + timedelta(seconds=self._shift())

    def monotonic(self) -> float:
        return time.monotonic()


def clock_from_env(env: dict[str, str]) -> Clock:
    """The daemon's clock: the system's, or the harness's shifted one."""
    path = env.get("KARTAPOS_CLOCK_OFFSET_FILE")
    return OffsetFileClock(path) if path else SystemClock()


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
