"""Fixtures shared by every area's tests."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from ledger.clock import FakeClock

if TYPE_CHECKING:
    from tests.pgserver import PostgresServer

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def clock() -> FakeClock:
    """A wall clock frozen at a Warsaw weekday noon (CET), driven by the test."""
    return FakeClock(datetime(2026, 11, 18, 11, 0, 0, tzinfo=UTC))


# --- the city server on both engines (docs/architecture.md §11) ---------------------
# A test that asks for ``central_engine`` (the ``central`` fixture does, and the modules
# of the city server's tests name it in ``pytestmark``) runs once on SQLite and once on
# PostgreSQL; ``tests.pgserver.central_database`` then makes that engine's databases.
# ``@pytest.mark.sqlite_only`` marks a test about the SQLite file itself.


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "central_engine" in metafunc.fixturenames:
        from tests.pgserver import CENTRAL_ENGINES

        only = metafunc.definition.get_closest_marker("sqlite_only") is not None
        engines = ("sqlite",) if only else CENTRAL_ENGINES
        metafunc.parametrize("central_engine", engines, indirect=True)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the whole session (started when a test first needs it)."""
    from tests.pgserver import running_postgres

    with running_postgres() as server:
        yield server


@pytest.fixture
def central_engine(request: pytest.FixtureRequest) -> Iterator[str]:
    from tests.pgserver import central_engine

    kind = str(request.param)
    server = request.getfixturevalue("postgres") if kind == "postgresql" else None
    with central_engine(kind, server):
        yield kind


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
