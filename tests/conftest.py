"""Fixtures shared by every area's tests."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from ledger.clock import FakeClock

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def clock() -> FakeClock:
    """A wall clock frozen at a Warsaw weekday noon (CET), driven by the test."""
    return FakeClock(datetime(2026, 11, 18, 11, 0, 0, tzinfo=UTC))


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    d = tmp_path / "state"
    d.mkdir()
    return d
