"""When the terminal talks to the city: frequent small syncs when online, a nightly full one.

Fleet load is spread: each terminal's nightly slot is a hash of its id within the
window (Europe/Warsaw, DST included, measured in real elapsed time) plus jitter.
While the server is unreachable, attempts back off exponentially with full jitter.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import random
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, time, timedelta
from typing import Protocol

import structlog

from config.backoff import Backoff
from config.schema import Config
from ledger.clock import WARSAW, Clock, local_date

log = structlog.get_logger()

NIGHTLY_JITTER_S = 300.0
# Never sleep longer than this in one go: a stepped wall clock is noticed within it.
MAX_WAIT_S = 60.0
OFFLINE_BACKOFF_CAP_S = 1800.0
# Outcomes no retry soon can fix: wait for the normal interval, not a tight backoff.
_FINAL_ERRORS = frozenset({"fork", "unauthorized", "rejected", "token", "ledger"})


class _Result(Protocol):
    @property
    def ok(self) -> bool: ...


class _UploadOutcome(_Result, Protocol):
    @property
    def error(self) -> str | None: ...


class Syncer(Protocol):
    """What the scheduler drives (sync.client.SyncClient)."""

    async def upload(self) -> _UploadOutcome: ...
    async def refresh(self) -> _UploadOutcome: ...
    async def cycle(self) -> _Result: ...


Wait = Callable[[float], Awaitable[None]]


def parse_window(window: str) -> tuple[time, time]:
    """'01:00-04:00' -> (01:00, 04:00)."""
    a, b = window.split("-")
    return time.fromisoformat(a), time.fromisoformat(b)


def nightly_slot(
    terminal_id: str,
    window: str,
    day: date,
    rng: random.Random,
    *,
    jitter_s: float = NIGHTLY_JITTER_S,
) -> datetime:
    """This terminal's nightly sync instant (aware UTC) in the window starting on ``day``.

    The position in the window is a stable hash of the terminal id; the jitter moves it
    by up to ``jitter_s`` either way and wraps around the window's ends, so the slots
    stay uniform over the window. (Clamping at the ends instead put every till whose
    jitter crossed one at the same instant: ~J/(4L) of the fleet, 21 of 3,000 tills at
    01:00:00 sharp.) A window whose end is before its start runs past midnight.
    """
    start_t, end_t = parse_window(window)
    start = datetime.combine(day, start_t, tzinfo=WARSAW).astimezone(UTC)
    end_day = day if end_t > start_t else day + timedelta(days=1)
    end = datetime.combine(end_day, end_t, tzinfo=WARSAW).astimezone(UTC)
    length = (end - start).total_seconds()
    if length <= 0:  # a window that DST swallowed whole: its start is the slot
        return start
    digest = hashlib.sha256(terminal_id.encode("utf-8")).digest()
    offset = float(int.from_bytes(digest[:8], "big") % int(length))
    return start + timedelta(seconds=wrap(offset + rng.uniform(-jitter_s, jitter_s), length))


def wrap(offset: float, length: float) -> float:
    """``offset`` brought into [0, length) round the ends (a circular window)."""
    out = offset % length
    return 0.0 if out >= length else out  # a tiny negative float wraps to exactly length


class SyncScheduler:
    """Runs uploads, catalogue refreshes and the nightly cycle until cancelled."""

    def __init__(
        self,
        client: Syncer,
        cfg: Config,
        clock: Clock,
        *,
        rng: random.Random | None = None,
        wait: Wait | None = None,
    ) -> None:
        self._client = client
        self._cfg = cfg
        self._clock = clock
        self._rng = rng or random.Random()
        self._wake = asyncio.Event()
        self._wait: Wait = wait or self._wait_or_wake
        s = cfg.sync
        self._upload_every = float(s.upload_interval_s)
        self._refresh_every = float(s.catalog_refresh_s)
        self._upload_backoff = Backoff(
            min(30.0, self._upload_every), OFFLINE_BACKOFF_CAP_S, jitter=True, rng=self._rng
        )
        self._refresh_backoff = Backoff(
            min(30.0, self._refresh_every), OFFLINE_BACKOFF_CAP_S, jitter=True, rng=self._rng
        )
        self.online: bool | None = None
        now_m = clock.monotonic()
        self._next_upload = now_m
        self._next_refresh = now_m
        self._next_nightly = self._slot_after(clock.now())

    def trigger(self) -> None:
        """Upload now and end the current wait (the scheduler's tests; no caller yet).

        New entries are uploaded on the ``sync.upload_interval_s`` beat; an operator's sync
        (``POST /api/v1/sync``, ``kartapos sync``) runs a whole cycle instead.
        """
        self._next_upload = self._clock.monotonic()
        self._wake.set()

    @property
    def next_nightly(self) -> datetime:
        return self._next_nightly

    def _slot_after(self, now: datetime) -> datetime:
        day = local_date(now, WARSAW) - timedelta(days=1)
        for _ in range(3):
            slot = nightly_slot(
                self._cfg.terminal.id, self._cfg.sync.nightly_window, day, self._rng
            )
            if slot > now:
                return slot
            day += timedelta(days=1)
        return slot  # pragma: no cover - three consecutive days always hold a later slot

    async def _wait_or_wake(self, seconds: float) -> None:
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=seconds)

    async def run(self) -> None:
        """Loop forever (the daemon's TaskGroup cancels it at shutdown)."""
        while True:
            await self.step()
            now_m, now_w = self._clock.monotonic(), self._clock.now()
            delay = min(
                self._next_upload - now_m,
                self._next_refresh - now_m,
                (self._next_nightly - now_w).total_seconds(),
                MAX_WAIT_S,
            )
            if delay > 0:
                await self._wait(delay)

    async def step(self) -> None:
        """Do whatever is due now."""
        now_w = self._clock.now()
        if now_w >= self._next_nightly:
            log.info("sync_nightly_start", slot=self._next_nightly.isoformat())
            res = await self._client.cycle()
            self._set_online(res.ok)
            self._next_nightly = self._slot_after(self._clock.now())
            now_m = self._clock.monotonic()
            self._next_upload = max(self._next_upload, now_m + self._upload_every)
            self._next_refresh = max(self._next_refresh, now_m + self._refresh_every)
            return
        if self._clock.monotonic() >= self._next_upload:
            up = await self._client.upload()
            self._next_upload = self._clock.monotonic() + self._after(
                up, self._upload_backoff, self._upload_every
            )
        if self._clock.monotonic() >= self._next_refresh:
            ref = await self._client.refresh()
            self._next_refresh = self._clock.monotonic() + self._after(
                ref, self._refresh_backoff, self._refresh_every
            )

    def _after(self, res: _UploadOutcome, backoff: Backoff, interval: float) -> float:
        if res.ok or res.error in _FINAL_ERRORS:
            backoff.reset()
            self._set_online(True if res.ok else self.online)
            return interval
        self._set_online(False)
        return max(1.0, backoff.next_delay())

    def _set_online(self, online: bool | None) -> None:
        if online is None or online == self.online:
            return
        if not online:
            log.warning("sync_server_offline")
        elif self.online is not None:
            log.info("sync_server_back_online")
        self.online = online
