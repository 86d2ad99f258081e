"""Time checks: the clock is not in the past, and the terminal's zone gives local time."""

from __future__ import annotations

import os
from zoneinfo import ZoneInfo

from config.schema import Config
from ledger.clock import Clock
from terminal.doctor.report import Check, fail, ok

EARLIEST_SANE_YEAR = 2024


def _system_zone() -> str:
    try:
        link = os.readlink("/etc/localtime")
    except OSError:
        return os.environ.get("TZ") or "unknown"
    marker = "zoneinfo/"
    return link.split(marker, 1)[1] if marker in link else link


def check_timezone(cfg: Config, clock: Clock) -> Check:
    zone = ZoneInfo(cfg.terminal.timezone)
    local = clock.now().astimezone(zone)
    return ok(
        "time zone",
        f"{cfg.terminal.timezone}: local time {local:%Y-%m-%d %H:%M %Z} "
        f"(the box's own zone: {_system_zone()}, not used for receipts)",
    )


def check_clock(clock: Clock) -> Check:
    now = clock.now()
    if now.year < EARLIEST_SANE_YEAR:
        return fail(
            "clock",
            f"the clock says {now:%Y-%m-%d %H:%M} UTC: sales would carry that date",
            "set the time and keep it synchronised: timedatectl set-ntp true (replace the "
            "RTC battery if it resets at power loss)",
        )
    return ok("clock", f"{now:%Y-%m-%d %H:%M:%S} UTC")
