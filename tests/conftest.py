"""Fixtures shared by every area's tests."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

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


# In CI every tool a test needs is installed by the project's own files (.ci/sysdeps.sh),
# so a skip there means an install step is missing: report it as a failure. Only skips
# whose reason starts with NOT_APPLICABLE (a kernel or OS version that cannot have the
# feature) stay skips.
NOT_APPLICABLE = "not applicable here:"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    outcome = yield
    report = outcome.get_result()
    if not os.environ.get("CI") or not report.skipped:
        return
    reason = str(report.longrepr[-1]) if isinstance(report.longrepr, tuple) else ""
    if reason.removeprefix("Skipped: ").startswith(NOT_APPLICABLE):
        return
    report.outcome = "failed"
    report.longrepr = f"skipped in CI (install what it needs in .ci/sysdeps.sh): {reason}"
