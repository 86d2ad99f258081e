"""Fleet simulation: 300 terminals upload a night of entries to ONE reference server.

Every terminal is the real thing minus the process boundary: its own ``LedgerStore``
and ``Catalog`` in its own state dir, its own Ed25519 key and token, and the real
``SyncClient`` talking HTTP over loopback to the real reference server
(``CentralServer``), all in one process and one event loop.

Time is compressed. The configured nightly window (``SyncSection.nightly_window``,
default 01:00-04:00 Europe/Warsaw, 10,800 s) is mapped onto ``window_real_s`` seconds of
real time; each terminal starts its upload at its ``nightly_slot()`` (the hash of its id
plus the scheduler's jitter) scaled the same way, and every wait the client makes
(backoff, ``Retry-After``) is scaled too, so the server sees the night's shape.

The bound on concurrent uploads. An aiohttp middleware on the server counts the POST
/v1/terminals/{tid}/entries requests in flight. With N terminals whose starts are spread
uniformly over a window W and an upload keeping the server busy for d seconds (the sum of
its POSTs' durations), Little's law gives the expected concurrency E = N*d/W. Uniformly
spread starts are close to Poisson arrivals, whose peak over a night of N*P POSTs stays
within a few times the mean plus a few: the run must keep

    max <= 4*E + 3 + (N*P/W) * s_stall

d is the mean measured in that very night (so E is the night's time-averaged
concurrency); d measured with terminals uploading one at a time is printed beside it.
The last term is the price of compressing time: the server and 300 clients share one
event loop on a small, shared machine, and a stall of s_stall = 0.2 s there (a GC pass,
the process descheduled; 50-190 ms were seen at load 8 on 2 cores) lets the POSTs that
arrive meanwhile pile up -- in a real night that stall would be 0.2 s against 10,800.
At the real scale (W = 10,800 s, d of a few ms) E is ~0.0002 and the bound is 3.
The same fleet starting all at once (the control run) must exceed the bound severalfold,
so the assertion is not vacuous.

Faults: a seeded share of the terminals gets, on one of its POSTs, a 503 with
``Retry-After`` (nothing committed), the batch committed and then the connection dropped,
or the batch committed and then a 500. Every entry must still land exactly once.

``benchmarks/bench_fleet.py`` runs the same with more entries and prints the figures.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import random
import secrets
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, MutableMapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import structlog
import structlog.testing
from aiohttp import web

from config.loader import config_from_dict
from config.schema import SyncSection
from ledger.clock import WARSAW, FakeClock, format_ts, local_date
from ledger.entry import Draft
from ledger.store import LedgerStore
from sync.catalog import Catalog
from sync.client import SyncClient, UploadResult
from sync.keys import TerminalKey, load_or_create_key
from sync.schedule import nightly_slot, parse_window
from tests.sync.central_harness import PARTNER, CentralHarness

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
FaultKind = Literal["retry_after", "drop_after_commit", "500_after_commit"]
FAULT_KINDS: tuple[FaultKind, ...] = ("retry_after", "drop_after_commit", "500_after_commit")

SALES_DAY = date(2026, 11, 20)  # the day the sales were made (Warsaw)
NIGHT = SALES_DAY + timedelta(days=1)  # the day the nightly window (01:00-04:00) falls on
RETRY_AFTER_S = 120  # night seconds the "busy" server asks for


@dataclass(frozen=True)
class FleetParams:
    terminals: int = 300
    entries: int = 20  # sales per terminal in the night
    batch_size: int = 8  # small batches: several POSTs per terminal
    window_real_s: float = 20.0  # the nightly window compressed to this
    fault_share: float = 0.05  # share of terminals hit, per fault kind
    calibration: int = 8  # extra terminals uploading one at a time to measure d
    seed: int = 8
    window: str = SyncSection().nightly_window  # the configured default, 01:00-04:00
    bound_factor: float = 4.0
    bound_extra: float = 3.0
    stall_s: float = 0.2  # event-loop stall the bound tolerates (see the module docstring)


# --- the server-side meter ----------------------------------------------------------------


@dataclass
class UploadMeter:
    """Counts in-flight entry uploads and applies the planned faults (a server middleware)."""

    plan: dict[tuple[str, int], FaultKind] = field(default_factory=dict)  # (tid, nth POST)
    in_flight: int = 0
    max_in_flight: int = 0
    spans: list[tuple[str, float, float]] = field(default_factory=list)  # tid, start, end
    posts: Counter[str] = field(default_factory=Counter)
    injected: Counter[str] = field(default_factory=Counter)

    def reset(self) -> None:
        self.in_flight = self.max_in_flight = 0
        self.spans.clear()
        self.posts.clear()
        self.injected.clear()

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method != "POST" or not request.path.endswith("/entries"):
            return await handler(request)
        tid = request.match_info.get("tid", "")
        self.posts[tid] += 1
        fault = self.plan.get((tid, self.posts[tid]))
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        start = time.monotonic()
        try:
            if fault == "retry_after":
                await request.read()
                self.injected[fault] += 1
                return web.json_response(
                    {"error": "busy", "message": "injected"},
                    status=503,
                    headers={"Retry-After": str(RETRY_AFTER_S)},
                )
            resp = await handler(request)
            if fault == "drop_after_commit" and resp.status == 200:
                self.injected[fault] += 1
                assert request.transport is not None
                request.transport.abort()
            elif fault == "500_after_commit" and resp.status == 200:
                self.injected[fault] += 1
                return web.json_response({"error": "internal", "message": "injected"}, status=500)
            return resp
        finally:
            self.in_flight -= 1
            self.spans.append((tid, start, time.monotonic()))

    def busy_by_terminal(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for tid, a, b in self.spans:
            out[tid] = out.get(tid, 0.0) + (b - a)
        return out


def fault_plan(
    tids: list[str], posts_per_terminal: int, share: float, seed: int
) -> dict[tuple[str, int], FaultKind]:
    """Which terminal's which POST fails how: at most one fault per terminal, seeded."""
    rng = random.Random(seed)
    per_kind = max(1, round(share * len(tids)))
    hit = rng.sample(tids, min(len(tids), per_kind * len(FAULT_KINDS)))
    plan: dict[tuple[str, int], FaultKind] = {}
    for i, tid in enumerate(hit):
        plan[(tid, rng.randint(1, posts_per_terminal))] = FAULT_KINDS[i % len(FAULT_KINDS)]
    return plan


# --- the terminals --------------------------------------------------------------------------


@dataclass
class Terminal:
    """A simulated till. Its ledger and catalogue are open only around its upload (as
    each real till is its own process): thousands of them open at once would take more
    file descriptors than one process may hold (about 9 each)."""

    tid: str
    state: Path
    key: TerminalKey
    token: str
    clock: FakeClock
    head_seq: int = 0  # the ledger's head after the day's sales (the night adds none)
    store: LedgerStore | None = None
    catalog: Catalog | None = None

    @contextlib.asynccontextmanager
    async def opened(self) -> AsyncIterator[tuple[LedgerStore, Catalog]]:
        """The till's ledger and catalogue, open for the block (reentrant: the opener
        closes)."""
        if self.store is not None and self.catalog is not None:
            yield self.store, self.catalog
            return
        store = await LedgerStore.open(self.state / "ledger.sqlite", terminal=self.tid)
        try:
            catalog = await Catalog.open(self.state / "catalog.sqlite", self.clock)
            self.store, self.catalog = store, catalog
            try:
                yield store, catalog
            finally:
                self.store = self.catalog = None
                await catalog.close()
        finally:
            await store.close()


async def open_terminal(root: Path, tid: str, clock: FakeClock, entries: int) -> Terminal:
    """A terminal's state dir with its key, token, catalogue and a day of sales."""
    state = root / tid
    state.mkdir(parents=True)
    key = await asyncio.to_thread(load_or_create_key, state)
    token = secrets.token_urlsafe(24)
    (state / "token").write_text(token + "\n", encoding="utf-8")
    term = Terminal(tid, state, key, token, clock)
    # The day's sales (shop hours, before the window), appended through the store.
    opening = datetime.combine(SALES_DAY, datetime.min.time(), tzinfo=WARSAW) + timedelta(hours=9)
    drafts = []
    for i in range(entries):
        ts = opening + timedelta(minutes=25 * i, seconds=7 * i % 60)
        drafts.append(
            Draft(
                ts=format_ts(ts.astimezone(UTC)),
                local_date=local_date(ts).isoformat(),
                kind="sale",
                card=f"01-{100000 + i:06d}",
                amount_gr=500 + 37 * i,
                points_earned=5 + i % 7,
                rules_version="2026.11-1",
                cashier=f"{PARTNER}-K01",
                sale_id=f"{tid}-{i}",
            )
        )
    async with term.opened() as (store, _catalog):
        await asyncio.gather(*(store.append(d) for d in drafts))
        term.head_seq = store.head.seq
    return term


def make_client(
    term: Terminal, url: str, params: FleetParams, clock: FakeClock, scale: float
) -> SyncClient:
    """The till's sync client; inside ``term.opened()``."""
    assert term.store is not None, "open the terminal first"
    assert term.catalog is not None, "open the terminal first"
    cfg = config_from_dict(
        {
            "terminal": {"id": term.tid, "partner_id": PARTNER, "state_dir": str(term.state)},
            "sync": {
                "url": url,
                "token_file": str(term.state / "token"),
                "batch_size": params.batch_size,
                "nightly_window": params.window,
            },
        },
        base=term.state,
    )

    async def compressed_sleep(seconds: float) -> None:
        await asyncio.sleep(seconds / scale)

    return SyncClient(
        cfg,
        term.store,
        term.catalog,
        term.key,
        clock,
        rng=random.Random(f"{params.seed}:{term.tid}"),
        sleep=compressed_sleep,
    )


# --- the night ------------------------------------------------------------------------------


def window_bounds(window: str, day: date) -> tuple[datetime, datetime]:
    """The window's start and end (aware UTC) on ``day`` (a window past midnight ends later)."""
    a, b = parse_window(window)
    start = datetime.combine(day, a, tzinfo=WARSAW).astimezone(UTC)
    end_day = day if b > a else day + timedelta(days=1)
    end = datetime.combine(end_day, b, tzinfo=WARSAW).astimezone(UTC)
    return start, end


def compressed_starts(tids: list[str], window: str, params: FleetParams) -> dict[str, float]:
    """Each terminal's nightly slot (with jitter), as seconds of real time into the run."""
    start, end = window_bounds(window, NIGHT)
    length = (end - start).total_seconds()
    out: dict[str, float] = {}
    for tid in tids:
        # Seeded per terminal, as each terminal's scheduler has its own generator.
        slot = nightly_slot(tid, window, NIGHT, random.Random(f"{params.seed}:slot:{tid}"))
        assert start <= slot < end
        out[tid] = (slot - start).total_seconds() / length * params.window_real_s
    return out


@dataclass(frozen=True)
class NightFigures:
    terminals: int
    entries: int
    posts: int
    max_in_flight: int
    busy_s: float  # sum of the POSTs' durations
    span_s: float  # first POST start to last POST end
    wall_s: float  # first start to last upload done
    injected: dict[str, int]
    loop_lag_s: float = 0.0  # the longest the event loop was late for a 10 ms timer

    @property
    def entries_per_s(self) -> float:
        return self.entries / self.wall_s if self.wall_s > 0 else math.inf


async def run_night(
    terms: list[Terminal],
    url: str,
    meter: UploadMeter,
    params: FleetParams,
    clock: FakeClock,
    starts: dict[str, float],
    scale: float,
) -> tuple[NightFigures, dict[str, UploadResult]]:
    """Every terminal uploads at its start offset (real seconds from now); the figures.

    A till's databases are opened a moment before its slot and closed after its upload."""
    results: dict[str, UploadResult] = {}
    loop = asyncio.get_running_loop()
    t0 = loop.time() + 1.5  # every task is waiting before the first slot comes
    opening = asyncio.Semaphore(16)  # tills whose slots coincide open a few at a time

    async def one(term: Terminal) -> None:
        # Opened a second ahead: a till late from waiting to open would fire with others
        # once they are open, bunching arrivals the slots had spread.
        delay = t0 + starts[term.tid] - loop.time() - 1.0
        if delay > 0:
            await asyncio.sleep(delay)  # until just before the (compressed) nightly slot
        async with contextlib.AsyncExitStack() as stack:
            async with opening:
                await stack.enter_async_context(term.opened())
            client = make_client(term, url, params, clock, scale)
            stack.push_async_callback(client.close)
            delay = t0 + starts[term.tid] - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)  # the slot itself
            results[term.tid] = await client.upload()

    lag = [0.0]

    async def watch_lag() -> None:
        # How long the one loop the server and every client share was stalled (a GC
        # pass, the process descheduled): POSTs arriving meanwhile pile up (the bound's
        # stall term, module docstring).
        while True:
            before = loop.time()
            await asyncio.sleep(0.01)
            lag[0] = max(lag[0], loop.time() - before - 0.01)

    meter.reset()
    began = time.monotonic() + max(0.0, t0 - loop.time())
    watcher = asyncio.create_task(watch_lag())
    try:
        async with asyncio.TaskGroup() as tg:
            for term in terms:
                tg.create_task(one(term))
    finally:
        watcher.cancel()
    done = time.monotonic()
    first = min(a for _, a, _ in meter.spans)
    last = max(b for _, _, b in meter.spans)
    busy = sum(b - a for _, a, b in meter.spans)
    fig = NightFigures(
        terminals=len(terms),
        entries=sum(t.head_seq for t in terms),
        posts=len(meter.spans),
        max_in_flight=meter.max_in_flight,
        busy_s=busy,
        span_s=last - first,
        wall_s=done - began,
        injected=dict(meter.injected),
        loop_lag_s=lag[0],
    )
    return fig, results


async def calibrate(
    terms: list[Terminal],
    url: str,
    meter: UploadMeter,
    params: FleetParams,
    clock: FakeClock,
) -> float:
    """d: the server's busy time for one terminal's upload, terminals one at a time."""
    meter.reset()
    for term in terms:
        async with term.opened():
            client = make_client(term, url, params, clock, 1.0)
            try:
                res = await client.upload()
            finally:
                await client.close()
        assert res.ok, res
    busy = meter.busy_by_terminal()
    return statistics.median(busy[t.tid] for t in terms)


async def assert_each_entry_once(city: CentralHarness, terms: list[Terminal]) -> None:
    """The server holds exactly every terminal's ledger: same heads, counts and hashes."""
    heads = {row.id: row.head for row in await city.db.heads()}
    for term in terms:
        async with term.opened() as (store, _catalog):
            local = [e async for e in store.iter_after(0)]
            mine = store.head
        head = heads[term.tid]
        assert (head.seq, head.hash) == (mine.seq, mine.hash), term.tid
        assert await city.db.entry_count(term.tid) == len(local), term.tid
        held = [(int(e["seq"]), str(e["hash"])) for e in await city.db.entries(term.tid)]
        assert held == [(e.seq, e.hash) for e in local], term.tid


# --- building the fleet ---------------------------------------------------------------------


@dataclass
class Fleet:
    params: FleetParams
    clock: FakeClock
    terms: list[Terminal]  # the fleet
    calib: list[Terminal]  # extra terminals that measure d

    @property
    def everyone(self) -> list[Terminal]:
        return self.terms + self.calib

    @property
    def scale(self) -> float:
        """Night seconds per real second."""
        return window_length(self.params.window) / self.params.window_real_s

    async def enrol_all(self, city: CentralHarness) -> None:
        for term in self.everyone:
            await city.db.enrol(term.tid, PARTNER, term.token, term.key.public_key_b64)

    def starts(self) -> dict[str, float]:
        return compressed_starts([t.tid for t in self.terms], self.params.window, self.params)


def window_length(window: str) -> float:
    start, end = window_bounds(window, NIGHT)
    return (end - start).total_seconds()


@contextlib.asynccontextmanager
async def open_fleet(root: Path, params: FleetParams, clock: FakeClock) -> AsyncIterator[Fleet]:
    """N terminals plus the calibration ones, each with a day of sales; closed at the end."""
    tids = [f"T-{1000 + i}" for i in range(params.terminals)]
    ctids = [f"T-CAL-{i:02d}" for i in range(params.calibration)]
    opened: dict[str, Terminal] = {}
    gate = asyncio.Semaphore(16)  # a bounded number of stores created at once

    async def make(tid: str) -> None:
        async with gate:
            opened[tid] = await open_terminal(root, tid, clock, params.entries)

    async with asyncio.TaskGroup() as tg:
        for tid in tids + ctids:
            tg.create_task(make(tid))
    yield Fleet(params, clock, [opened[t] for t in tids], [opened[t] for t in ctids])


async def control_night(
    root: Path,
    fleet: Fleet,
    params: FleetParams,
    clock: FakeClock,
    *,
    database: str | None = None,
    check: bool = True,
) -> tuple[NightFigures, dict[str, UploadResult]]:
    """The same fleet starting all at once on a fresh server (no slots, no faults).

    The baseline the spread night is compared with; with ``check`` every entry must have
    landed exactly once (AssertionError otherwise). ``database``: an empty one to use
    (default SQLite).
    """
    control = UploadMeter()
    async with CentralHarness.start(
        root / "city-control", database=database, middlewares=[control.middleware], seed=False
    ) as city:
        await fleet.enrol_all(city)
        starts = dict.fromkeys((t.tid for t in fleet.terms), 0.0)
        herd, results = await run_night(
            fleet.terms, city.url, control, params, clock, starts, fleet.scale
        )
        if check:
            await assert_each_entry_once(city, fleet.terms)
    return herd, results


@dataclass(frozen=True)
class Bound:
    """The stated bound on concurrent uploads for one night (module docstring)."""

    d_solo_s: float  # server busy time per upload, terminals one at a time
    d_night_s: float  # the same, averaged over the night's uploads
    expected: float  # E = N*d/W with d = d_night
    stall_term: float  # (N*P/W) * s_stall
    limit: float  # factor*E + extra + stall_term

    @classmethod
    def of(cls, fig: NightFigures, d_solo_s: float, params: FleetParams) -> Bound:
        w = params.window_real_s
        d_night = fig.busy_s / fig.terminals
        expected = fig.terminals * d_night / w
        stall = fig.posts / w * params.stall_s
        limit = params.bound_factor * expected + params.bound_extra + stall
        return cls(d_solo_s, d_night, expected, stall, limit)


def report(label: str, fig: NightFigures, bound: Bound | None = None) -> str:
    line = (
        f"{label}: {fig.terminals} terminals, {fig.entries} entries, {fig.posts} POSTs, "
        f"max in flight {fig.max_in_flight}, mean {fig.busy_s / fig.span_s:.2f} "
        f"over its {fig.span_s:.2f} s, wall {fig.wall_s:.2f} s, "
        f"{fig.entries_per_s:,.0f} entries/s, faults {fig.injected or 'none'}"
    )
    if bound is not None:
        line += (
            f"; d alone {bound.d_solo_s * 1000:.1f} ms, d in the night "
            f"{bound.d_night_s * 1000:.1f} ms, expected E = N*d/W = {bound.expected:.2f}, "
            f"bound 4E+3+stall({bound.stall_term:.1f}) = {bound.limit:.1f}"
        )
    return line


# --- the test -------------------------------------------------------------------------------


@contextlib.contextmanager
def fast_root(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs dir when there is one: disk flushes of other jobs must not pose as load."""
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        with tempfile.TemporaryDirectory(prefix="kartapos-fleet-", dir=shm) as d:
            yield Path(d)
    else:
        yield tmp_path


async def test_fleet_night_every_entry_once_and_slots_spread_the_load(
    tmp_path: Path, clock: FakeClock
) -> None:
    params = FleetParams()
    print(f"fleet seed {params.seed} (fault plan and slot jitter)")
    with fast_root(tmp_path) as root, structlog.testing.capture_logs() as logs:
        async with open_fleet(root / "terminals", params, clock) as fleet:
            tids = [t.tid for t in fleet.terms]
            posts_each = math.ceil(params.entries / params.batch_size)

            meter = UploadMeter()
            async with CentralHarness.start(
                root / "city", middlewares=[meter.middleware], seed=False
            ) as city:
                await fleet.enrol_all(city)
                d_solo = await calibrate(fleet.calib, city.url, meter, params, clock)
                meter.plan = fault_plan(tids, posts_each, params.fault_share, params.seed)
                replays_before = _count(logs, "upload_replay")
                night, results = await run_night(
                    fleet.terms, city.url, meter, params, clock, fleet.starts(), fleet.scale
                )
                replays = _count(logs, "upload_replay") - replays_before
                bound = Bound.of(night, d_solo, params)
                print(report("spread over the window", night, bound))
                failed = {tid: r for tid, r in results.items() if not r.ok}
                assert not failed
                await assert_each_entry_once(city, fleet.terms)

            herd, results = await control_night(root, fleet, params, clock)
            print(report("control, all at once", herd))
            assert all(r.ok for r in results.values())

    # Every planned fault happened, and each commit-then-fail was answered by a replay.
    planned = Counter(meter.plan.values())
    assert night.injected == dict(planned)
    assert replays == planned["drop_after_commit"] + planned["500_after_commit"]
    assert night.max_in_flight <= bound.limit, report("spread", night, bound)
    # Not vacuous: the same fleet without the slots exceeds the bound severalfold.
    assert herd.max_in_flight > 3 * bound.limit, report("control", herd, bound)


def _count(logs: list[MutableMapping[str, Any]], event: str) -> int:
    return sum(1 for e in logs if e.get("event") == event)
