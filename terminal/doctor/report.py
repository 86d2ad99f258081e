"""The doctor's report: one line per check (OK, WARN or FAIL), and the exit code."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

EXIT_FAILED = 1


class Level(StrEnum):
    OK = "OK"
    WARN = "WARN"
    FAIL = "FAIL"


@dataclass(frozen=True)
class Check:
    """One line of the report."""

    level: Level
    what: str
    detail: str
    fix: str | None = None

    def line(self) -> str:
        text = f"{self.level.value:<4}  {self.what}: {self.detail}"
        return f"{text}; fix: {self.fix}" if self.fix else text


def ok(what: str, detail: str) -> Check:
    return Check(Level.OK, what, detail)


def warn(what: str, detail: str, fix: str | None = None) -> Check:
    return Check(Level.WARN, what, detail, fix)


def fail(what: str, detail: str, fix: str | None = None) -> Check:
    return Check(Level.FAIL, what, detail, fix)


def exit_code(checks: list[Check]) -> int:
    """1 when any check failed, else 0 (warnings allowed)."""
    return EXIT_FAILED if any(c.level is Level.FAIL for c in checks) else 0
