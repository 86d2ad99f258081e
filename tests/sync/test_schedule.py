"""The schedule: nightly slot within the window (DST too), intervals, offline backoff."""

from __future__ import annotations

import asyncio
import itertools
import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import pytest
import structlog
from hypothesis import given
from hypothesis import strategies as st

from config.loader import config_from_dict
from config.schema import Config
from ledger.clock import WARSAW, FakeClock
from sync.client import SyncClient
from sync.schedule import Syncer, SyncScheduler, Wait, nightly_slot, wrap

windows = st.sampled_from(["01:00-04:00", "02:00-03:00", "22:00-02:00", "00:00-23:59"])


def _window_bounds(window: str, day: date) -> tuple[datetime, datetime]:
    a, b = window.split("-")
    start = datetime.combine(day, time.fromisoformat(a), tzinfo=WARSAW)
    end_day = day if b > a else day + timedelta(days=1)
    end = datetime.combine(end_day, time.fromisoformat(b), tzinfo=WARSAW)
    return start.astimezone(UTC), end.astimezone(UTC)


@given(
    tid=st.text(min_size=1, max_size=20),
    window=windows,
    day=st.dates(min_value=date(2024, 1, 1), max_value=date(2035, 12, 31)),
    seed=st.integers(0, 2**32),
)
def test_slot_is_inside_the_window_and_reproducible(
    tid: str, window: str, day: date, seed: int
) -> None:
    slot = nightly_slot(tid, window, day, random.Random(seed))
    start, end = _window_bounds(window, day)
    assert slot.tzinfo is not None
    if end > start:
        assert start <= slot < end
    assert slot == nightly_slot(tid, window, day, random.Random(seed))


@pytest.mark.parametrize("day", [date(2026, 3, 29), date(2026, 10, 25)])
def test_dst_nights_stay_in_the_window(day: date) -> None:
    """On the spring night 02:00-03:00 does not exist; in autumn it happens twice."""
    start, end = _window_bounds("01:00-04:00", day)
    assert (end - start) == timedelta(hours=2 if day.month == 3 else 4)
    slots = [nightly_slot(f"T-{i:04d}", "01:00-04:00", day, random.Random(i)) for i in range(500)]
    assert all(start <= s < end for s in slots)


def test_fleet_is_spread_over_the_window() -> None:
    day = date(2026, 11, 18)
    start, _ = _window_bounds("01:00-04:00", day)
    hours = Counter(
        int(
            (
                nightly_slot(f"T-{i:05d}", "01:00-04:00", day, random.Random(0)) - start
            ).total_seconds()
            // 3600
        )
        for i in range(3000)
    )
    assert set(hours) == {0, 1, 2}
    assert all(800 < n < 1200 for n in hours.values())  # about a third each


def test_no_instant_gathers_tills_not_even_at_the_window_edges() -> None:
    """Each till jitters with its own generator; a jitter that crosses an end wraps round.

    Clamped to the ends instead, ~J/(4L) of the fleet (21 of 3,000) got the very first
    instant of the window and as many the last: a herd the fleet night measured."""
    day = date(2026, 11, 18)
    start, end = _window_bounds("01:00-04:00", day)
    slots = [
        nightly_slot(f"T-{i:05d}", "01:00-04:00", day, random.Random(f"jitter:{i}"))
        for i in range(3000)
    ]
    assert all(start <= s < end for s in slots)
    per_second = Counter(int((s - start).total_seconds()) for s in slots)
    # Uniform over 10,800 s is 0.28 a second; the busiest second holds a handful at most.
    assert max(per_second.values()) <= 5, per_second.most_common(3)
    first_minute = sum(1 for s in slots if s - start < timedelta(minutes=1))
    last_minute = sum(1 for s in slots if end - s <= timedelta(minutes=1))
    assert first_minute <= 40, first_minute  # 16.7 expected
    assert last_minute <= 40, last_minute


@pytest.mark.parametrize(
    ("offset", "expected"),
    [(-1e-17, 0.0), (-0.5, 10799.5), (0.0, 0.0), (10800.0, 0.0), (10800.25, 0.25), (7.0, 7.0)],
)
def test_wrap_keeps_offsets_inside_the_window(offset: float, expected: float) -> None:
    assert wrap(offset, 10800.0) == expected


def test_jitter_moves_the_slot_but_the_hash_anchors_it() -> None:
    day = date(2026, 11, 18)
    slots = {nightly_slot("T-0001", "01:00-04:00", day, random.Random(s)) for s in range(50)}
    assert len(slots) > 1
    assert max(slots) - min(slots) <= timedelta(seconds=600)


@dataclass
class _Outcome:
    ok: bool
    error: str | None = None


@dataclass
class FakeSyncer:
    clock: FakeClock
    upload_script: list[_Outcome] = field(default_factory=list)
    calls: list[tuple[str, float, datetime]] = field(default_factory=list)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    stop_after: int = 20
    last_upload: _Outcome = field(default_factory=lambda: _Outcome(True))
    cycled: asyncio.Event = field(default_factory=asyncio.Event)

    def _record(self, what: str) -> None:
        self.calls.append((what, self.clock.monotonic(), self.clock.now()))
        if len(self.calls) >= self.stop_after:
            self.done.set()

    async def upload(self) -> _Outcome:
        self._record("upload")
        self.last_upload = self.upload_script.pop(0) if self.upload_script else _Outcome(True)
        return self.last_upload

    async def refresh(self) -> _Outcome:
        self._record("refresh")
        return self.last_upload  # the same server: reachable for both or for neither

    async def cycle(self) -> _Outcome:
        self._record("cycle")
        self.cycled.set()
        return _Outcome(True)


def _cfg(tmp_path: Path, **sync: object) -> Config:
    return config_from_dict(
        {"terminal": {"id": "T-0001", "partner_id": "P-0001"}, "sync": sync}, base=tmp_path
    )


async def _run(sched: SyncScheduler, fake: FakeSyncer) -> None:
    task = asyncio.create_task(sched.run())
    try:
        await asyncio.wait_for(fake.done.wait(), 10)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


def _advancing_wait(clock: FakeClock, waits: list[float]) -> Wait:
    async def wait(seconds: float) -> None:
        waits.append(seconds)
        clock.advance(seconds)
        await asyncio.sleep(0)

    return wait


async def test_online_intervals(tmp_path: Path) -> None:
    clock = FakeClock(datetime(2026, 11, 18, 11, 0, tzinfo=UTC))  # noon: no nightly slot near
    fake = FakeSyncer(clock, stop_after=14)
    waits: list[float] = []
    cfg = _cfg(tmp_path, upload_interval_s=60, catalog_refresh_s=300)
    sched = SyncScheduler(fake, cfg, clock, wait=_advancing_wait(clock, waits))
    await _run(sched, fake)
    t0 = fake.calls[0][1]
    uploads = [m - t0 for what, m, _ in fake.calls if what == "upload"]
    refreshes = [m - t0 for what, m, _ in fake.calls if what == "refresh"]
    assert uploads[:6] == [0, 60, 120, 180, 240, 300]
    assert refreshes[:2] == [0, 300]
    assert max(waits) <= 60


async def test_offline_backs_off_then_returns_to_the_interval(tmp_path: Path) -> None:
    clock = FakeClock(datetime(2026, 11, 18, 11, 0, tzinfo=UTC))
    script = [_Outcome(False, "unreachable")] * 6 + [_Outcome(True)]
    fake = FakeSyncer(clock, upload_script=list(script), stop_after=40)
    cfg = _cfg(tmp_path, upload_interval_s=60, catalog_refresh_s=100_000)
    sched = SyncScheduler(fake, cfg, clock, rng=random.Random(3), wait=_advancing_wait(clock, []))
    with structlog.testing.capture_logs() as logs:
        await _run(sched, fake)
    ups = [m for what, m, _ in fake.calls if what == "upload"]
    gaps = [b - a for a, b in itertools.pairwise(ups)]
    # Full jitter: each wait within [1, 30 * 2^n]; overall the ceiling grows.
    for n, g in enumerate(gaps[:6]):
        assert 1.0 <= g <= 30.0 * 2**n + 1e-6
    assert gaps[6:9] == [60, 60, 60]  # back online: the normal interval
    events = [e["event"] for e in logs]
    assert events.count("sync_server_offline") == 1  # logged once, not per attempt
    assert events.count("sync_server_back_online") == 1


async def test_nightly_cycle_runs_at_the_slot(tmp_path: Path) -> None:
    clock = FakeClock(datetime(2026, 11, 17, 23, 0, tzinfo=UTC))  # 00:00 in Warsaw
    fake = FakeSyncer(clock, stop_after=200)
    cfg = _cfg(tmp_path, upload_interval_s=3600, catalog_refresh_s=3600)
    sched = SyncScheduler(fake, cfg, clock, rng=random.Random(1), wait=_advancing_wait(clock, []))
    slot = sched.next_nightly
    start, end = _window_bounds("01:00-04:00", date(2026, 11, 18))
    assert start <= slot < end

    async def until_cycle() -> None:
        await fake.cycled.wait()
        fake.done.set()

    async with asyncio.TaskGroup() as tg:
        tg.create_task(until_cycle())
        await _run(sched, fake)
    cycles = [w for what, _, w in fake.calls if what == "cycle"]
    assert cycles[0] == slot
    assert sched.next_nightly > slot + timedelta(hours=20)  # tomorrow's slot


async def test_trigger_ends_the_wait(tmp_path: Path, clock: FakeClock) -> None:
    fake = FakeSyncer(clock, stop_after=2)
    cfg = _cfg(tmp_path, upload_interval_s=3600, catalog_refresh_s=3600)
    sched = SyncScheduler(fake, cfg, clock)  # the real wait: an Event with a timeout
    task = asyncio.create_task(sched.run())
    try:
        await asyncio.wait_for(fake.done.wait(), 5)
        fake.done.clear()
        fake.stop_after = 3
        sched.trigger()
        await asyncio.wait_for(fake.done.wait(), 5)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert [c[0] for c in fake.calls] == ["upload", "refresh", "upload"]


def _sync_client_is_a_syncer(client: SyncClient) -> Syncer:
    return client  # mypy checks the daemon can hand the real client to the scheduler
