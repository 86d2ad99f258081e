"""Years on one box: a daemon on 1,000,000 ledger entries of history beside one on an empty ledger.

A real `kartapos run` child process (as in bench_daemon), the reference city server
(CentralServer) and a loopback ESC/POS printer (FakePrinter) in this process. The same
run measures, side by side, a daemon whose ledger is empty and one whose ledger holds
``--n`` entries (default 1,000,000):

1. start -> READY=1 (sd_notify): the FIRST start on that state dir on its own line (the
   one after an upgrade: it rebuilds the usage book from every entry once), then, after
   the till's first sync, the median of 3 restarts (what a till that has run sees);
2. idle RSS of the last restart after ``POST /api/v1/sync`` and 2 s idle;
3. ``POST /api/v1/sales/quote`` p99 of 2,000 samples over varied cards;
4. ``POST /api/v1/sales`` -> receipt bytes at the loopback printer p99 of 300 samples;
5. RSS slope over 30,000 more sales through the API (32 clients, ``POST /api/v1/sync``
   every 5,000 sales, RSS read after each 10,000): MB per 10,000 sales between the 10k
   and the 30k marks.

About 20 % of the quotes and sales take a limited benefit that still has room for the
card today (the benchmark keeps the per-card counts of the history it wrote and of the
sales it makes); a refused request is counted apart and never as a sale or a sample.

Budgets (the issue): READY <= 1.5 s (the restarts; the first start is shown apart);
idle RSS <= 70 MB; quote p99 and sale p99 on the
big ledger within 10 % of the empty ledger's figure of the same run; RSS slope <= 1 MB
per 10,000 sales on the big ledger (the empty one's caches are still filling at the 10k
mark; its slope is shown beside). Exit status 0 only when every budget holds.

The history ("years of a busy till"): ~3,650 local days (Europe/Warsaw) ending
yesterday, ~274 entries a day between 08:00 and 20:00 local time, ts increasing; ~1 % of
the entries void an earlier sale of the same day (``plan_void``, sale_id ``void:<sale>``);
every day ends with a ``day_close`` entry whose summary is ``day_summary`` of the day;
~20 % of the sales carry one benefit of partner P-0001, whose rules have a benefit for
every period (1 a day, 2 a week, 4 a month, 10 a year, 1 ever), one with max_persons
100,000 and one without limits; no card ever goes over a limit. 50,000 cards
(``01-NNNNNC``, the demo's Luhn numbers), all active, are loaded with
``CentralDB.upsert_cards`` with the balances the history leaves them. The ledger is
built fast as bench_ledger_verify builds its own (entries sealed in Python, raw sqlite3
executemany in chunks of 50,000, synchronous=OFF, then wal_checkpoint(TRUNCATE)) into a
schema made by ``LedgerStore.open``; its build time is printed. The box printed those
receipts long ago, so its print queue (``print.sqlite``) is created with
``last_original_seq`` = the history's head: without it the first start would queue an
original receipt for every entry of the history before READY (a quick run showed it).

The city already holds that history: after ``enrol`` the benchmark sets the central's
head for T-0001 directly (``UPDATE terminals SET head_seq=?, head_hash=?``) and the
benefits' ``persons_used`` to the distinct cards of the history, so the daemon's first
sync uploads nothing old. Each side has its own city database. Everything lives in a
TemporaryDirectory under /tmp (~800 MB for 1,000,000 entries); nothing is cached. The
big ledger was just written, so its first start reads it from the page cache.

Run: .venv/bin/python -m benchmarks.bench_years [--n 1000000] [--quick]
(``--quick``: 20,000 entries, fewer samples and 3,000 sustained sales: a smoke run.)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import secrets
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import tty
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import aiohttp
import msgspec
import structlog

from benchmarks.bench_daemon import (
    KARTAPOS,
    Child,
    _luhn,
    api,
    free_port,
    pct,
    sale,
    wait_up,
    write_config,
)
from config.schema import CentralConfig, CentralSection, PrinterSection
from ledger.clock import SystemClock, format_ts, unix_ms
from ledger.domain import (
    Benefit,
    CardRecord,
    CardStatus,
    Cashier,
    EarnRule,
    Holder,
    Partner,
    Period,
    Program,
    Rules,
)
from ledger.entry import GENESIS_HASH, Draft, Entry, EntryKind, Head, body_bytes, seal
from ledger.ids import uuid7
from ledger.periods import local_day, local_midnight, window_dates
from ledger.pins import hash_pin
from ledger.rules import day_summary, plan_void, purchase_points
from ledger.store import LedgerStore, ledger_path
from ledger.usage import UsageBook
from printer.queue import PrintQueue, queue_path
from sync.central import CentralServer
from tests.printer.fake_printer import FakePrinter

TERMINAL: Final = "T-0001"
PARTNER: Final = "P-0001"
CASHIER: Final = "P-0001-K01"
RULES_VERSION: Final = "years-1"
N_CARDS: Final = 50_000
PER_DAY: Final = 274
MAX_DAYS: Final = 3650
BENEFIT_SHARE: Final = 0.20
VOID_SHARE: Final = 0.01
CHUNK: Final = 50_000
_INSERT: Final = "INSERT INTO entries (seq, prev_hash, hash, body) VALUES (?,?,?,?)"
EARN: Final = EarnRule(
    gr_per_point=100,
    rounding="floor",
    min_amount_gr=500,
    max_points_per_sale=500,
    program_multipliers={"senior": 2},
)
# benefit id -> (uses per period, period; None: over the card's whole history)
LIMITS: Final[dict[str, tuple[int, Period | None]]] = {
    "B-D1": (1, "day"),
    "B-W2": (2, "week"),
    "B-M4": (4, "month"),
    "B-Y10": (10, "year"),
    "B-L1": (1, None),
}
PERSONS_BENEFIT: Final = "B-P100K"
FREE_BENEFIT: Final = "B-FREE"
LIMITED: Final = (*LIMITS, PERSONS_BENEFIT)
ALL_BENEFITS: Final = (*LIMITED, FREE_BENEFIT)
POINTS: Final = {"B-D1": 5, "B-W2": 2, "B-M4": 0, "B-Y10": 3, "B-L1": 20, "B-P100K": 10}
NUMBERS: Final = [f"01-{s:05d}{_luhn(s)}" for s in range(1, N_CARDS + 1)]

BUDGET_READY_S: Final = 1.5
BUDGET_RSS_MB: Final = 70.0
BUDGET_P99_RATIO: Final = 1.10
BUDGET_SLOPE_MB: Final = 1.0


def is_senior(card: int) -> bool:
    return card % 5 == 0


def city_cards(today: date, balances: list[int]) -> list[CardRecord]:
    """The 50,000 cards: active, a valid resident package, every fifth also a senior one."""
    ahead, later = today + timedelta(days=400), today + timedelta(days=760)
    rng = random.Random(7)
    cards = []
    for i, number in enumerate(NUMBERS):
        programs = [Program(code="mieszkaniec", valid_to=ahead)]
        if is_senior(i):
            programs.append(Program(code="senior", valid_to=later))
        age = rng.randint(66, 90) if is_senior(i) else rng.randint(16, 64)
        born = date(today.year - age, rng.randint(1, 12), rng.randint(1, 28))
        cards.append(
            CardRecord(
                number=number,
                status=CardStatus.ACTIVE,
                holder=Holder(display_name=f"Mieszkaniec {i + 1}", birth_date=born),
                programs=tuple(programs),
                points=balances[i],
            )
        )
    return cards


def city_rules(persons_used: int) -> Rules:
    """P-0001's rules: the demo café's earn rule and a benefit for every kind of limit."""

    def limited(bid: str, name: str, limit: int, period: Period | None) -> Benefit:
        return Benefit(
            id=bid,
            name=name,
            label="-10%",
            limited=True,
            uses_per_period=limit,
            period=period,
            points=POINTS[bid],
        )

    return Rules(
        version=RULES_VERSION,
        earn=EARN,
        partner=Partner(
            name="Kawiarnia Pod Żółwiem",
            address="al. Najświętszej Maryi Panny 12, 42-200 Częstochowa",
            nip="5732846199",
        ),
        cashiers=(Cashier(id=CASHIER, name="Kasia", pin_hash=hash_pin("1234")),),
        benefits=(
            limited("B-D1", "Kawa dnia", 1, "day"),
            limited("B-W2", "Ciastko tygodnia", 2, "week"),
            limited("B-M4", "Obiad miesiąca", 4, "month"),
            limited("B-Y10", "Bilet roczny", 10, "year"),
            limited("B-L1", "Powitalny prezent", 1, None),
            Benefit(
                id=PERSONS_BENEFIT,
                name="Pula dla stu tysięcy",
                label="gratis",
                limited=True,
                max_persons=100_000,
                persons_used=persons_used,
                points=POINTS[PERSONS_BENEFIT],
            ),
            Benefit(id=FREE_BENEFIT, name="Woda gratis", label="0 zł", points=1),
        ),
    )


@dataclass
class Uses:
    """Per card and limited benefit: the window the count is in and the count.

    Voids do not give uses back here, so the counts can only be too high: what this
    says has room has room in the daemon's usage book too.
    """

    windows: dict[tuple[int, str], tuple[date, int]] = field(default_factory=dict)

    @staticmethod
    def _start(bid: str, day: date) -> date | None:
        limit = LIMITS.get(bid)
        if limit is None:
            return None
        period = limit[1]
        return window_dates(period, day)[0] if period is not None else date.min

    def room(self, card: int, bid: str, day: date) -> bool:
        start = self._start(bid, day)
        if start is None:
            return True
        held = self.windows.get((card, bid))
        used = held[1] if held is not None and held[0] == start else 0
        return used < LIMITS[bid][0]

    def take(self, card: int, bid: str, day: date) -> None:
        start = self._start(bid, day)
        if start is None:
            return
        held = self.windows.get((card, bid))
        used = held[1] if held is not None and held[0] == start else 0
        self.windows[(card, bid)] = (start, used + 1)


@dataclass
class History:
    """What writing the ledger left: its head and the state the city must agree with."""

    head: Head = field(default_factory=Head.genesis)
    uses: Uses = field(default_factory=Uses)
    balances: list[int] = field(default_factory=lambda: [0] * N_CARDS)
    persons: set[int] = field(default_factory=set)
    entries: int = 0
    sales: int = 0
    voids: int = 0
    with_benefit: int = 0
    days: int = 0
    first_day: date | None = None
    seconds: float = 0.0
    size_mb: float = 0.0


def _ts(ms: int) -> str:
    return format_ts(datetime.fromtimestamp(ms // 1000, UTC).replace(microsecond=ms % 1000 * 1000))


def _fill(path: Path, n: int, today: date, seed: int) -> History:
    """Write ``n`` entries of history into the (empty) ledger at ``path``."""
    h = History()
    rng = random.Random(seed)
    book = UsageBook()  # never fed: plan_void only asks it whether a sale was voided
    days = max(1, min(MAX_DAYS, round(n / PER_DAY)))
    first = today - timedelta(days=days)
    h.days, h.first_day = days, first
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA synchronous=OFF")
    db.execute("BEGIN")
    rows: list[tuple[int, str, str, bytes]] = []
    prev, seq = GENESIS_HASH, 0
    span_ms = 12 * 3600 * 1000

    def add(d: Draft, ms: int) -> Entry:
        nonlocal prev, seq
        seq += 1
        e = seal(
            d, seq=seq, entry_id=uuid7(ms, rng.randbytes(10)), terminal=TERMINAL, prev_hash=prev
        )
        rows.append((seq, prev, e.hash, body_bytes(e)))
        prev = e.hash
        if len(rows) >= CHUNK:
            db.executemany(_INSERT, rows)
            rows.clear()
        return e

    for di in range(days):
        day = first + timedelta(days=di)
        iso = day.isoformat()
        k = n * (di + 1) // days - n * di // days  # entries of this day, day_close included
        if k <= 0:
            continue
        start_ms = unix_ms(local_midnight(day)) + 8 * 3600 * 1000  # 08:00 local
        step = span_ms // k
        day_entries: list[Entry] = []
        open_sales: list[Entry] = []
        for j in range(k - 1):
            ms = start_ms + j * span_ms // k + rng.randrange(max(1, step - 1))
            ts = _ts(ms)
            if open_sales and rng.random() < VOID_SHARE:
                original = open_sales.pop(rng.randrange(len(open_sales)))
                assert original.card is not None
                assert original.sale_id is not None
                c = int(original.card[3:8]) - 1
                plan = plan_void(original, book, reason="pomyłka kasjera")
                h.balances[c] += plan.points_earned - plan.points_redeemed
                draft = msgspec.structs.replace(
                    plan.to_draft(
                        ts=ts, local_date=iso, cashier=CASHIER, sale_id=f"void:{original.sale_id}"
                    ),
                    balance_after=h.balances[c],
                )
                day_entries.append(add(draft, ms))
                h.voids += 1
                continue
            c = rng.randrange(N_CARDS)
            amount = rng.randint(300, 20_000)
            benefits: tuple[str, ...] = ()
            if rng.random() < BENEFIT_SHARE:
                bid = rng.choice(ALL_BENEFITS)
                if h.uses.room(c, bid, day):
                    h.uses.take(c, bid, day)
                    benefits = (bid,)
                    h.with_benefit += 1
                    if bid == PERSONS_BENEFIT:
                        h.persons.add(c)
            bpoints = {b: POINTS.get(b, 1) for b in benefits}
            earned = purchase_points(amount, EARN, 2 if is_senior(c) else 1)
            earned += sum(bpoints.values())
            h.balances[c] += earned
            e = add(
                Draft(
                    ts=ts,
                    local_date=iso,
                    kind=EntryKind.SALE,
                    card=NUMBERS[c],
                    amount_gr=amount,
                    points_earned=earned,
                    benefits=benefits,
                    benefit_quantities=dict.fromkeys(benefits, 1),
                    benefit_points=bpoints,
                    rules_version=RULES_VERSION,
                    cashier=CASHIER,
                    sale_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                    balance_after=h.balances[c],
                ),
                ms,
            )
            day_entries.append(e)
            open_sales.append(e)
            h.sales += 1
        close_ms = start_ms + span_ms + 60_000  # 20:01 local, still the same local day
        assert local_day(datetime.fromtimestamp(start_ms / 1000, UTC)) == day
        assert local_day(datetime.fromtimestamp(close_ms / 1000, UTC)) == day
        add(
            Draft(
                ts=_ts(close_ms),
                local_date=iso,
                kind=EntryKind.DAY_CLOSE,
                card=None,
                rules_version=RULES_VERSION,
                cashier=CASHIER,
                summary=day_summary(day_entries, iso),
            ),
            close_ms,
        )
    if rows:
        db.executemany(_INSERT, rows)
    db.execute("COMMIT")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    h.head, h.entries = Head(seq=seq, hash=prev), seq
    return h


async def build_history(state: Path, n: int, today: date, seed: int) -> History:
    """The daemon's ledger with ``n`` entries of history; seconds taken in ``seconds``."""
    t0 = time.perf_counter()
    path = ledger_path(state)
    store = await LedgerStore.open(path, terminal=TERMINAL)
    await store.close()
    h = await asyncio.to_thread(_fill, path, n, today, seed)
    # The box printed those receipts long ago: its print queue says so, or the first
    # start would queue an original receipt for every entry of the history.
    queue = await PrintQueue.open(
        queue_path(state), transport=None, printer=PrinterSection(), clock=SystemClock()
    )
    await queue.close()
    with contextlib.closing(sqlite3.connect(queue_path(state))) as db, db:
        db.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('last_original_seq', ?)",
            (h.head.seq,),
        )
    h.seconds = time.perf_counter() - t0
    h.size_mb = path.stat().st_size / 1e6
    return h


class PatientChild(Child):
    """bench_daemon's Child whose wait for READY=1 is long enough for a big ledger."""

    def __init__(self, root: Path, cfg: Path, ready_timeout_s: float) -> None:
        super().__init__(root, cfg)
        self.ready_timeout_s = ready_timeout_s

    def start(self) -> float:
        """Start it and return seconds until READY=1."""
        self.notify_path.unlink(missing_ok=True)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(str(self.notify_path))
        sock.settimeout(self.ready_timeout_s)
        env = {**os.environ, "NOTIFY_SOCKET": str(self.notify_path)}
        env["ESCPOS_CAPABILITIES_PICKLE_DIR"] = str(self.root / "escpos-cache")
        t0 = time.perf_counter()
        with (self.root / "daemon.log").open("ab") as log:
            self.proc = subprocess.Popen(
                [KARTAPOS, "run", "-c", str(self.cfg)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
            )
        try:
            while True:
                msg = sock.recv(4096).decode()
                if "READY=1" in msg.split("\n"):
                    return time.perf_counter() - t0
                if self.proc.poll() is not None:
                    raise TimeoutError
        except TimeoutError:
            tail = (self.root / "daemon.log").read_text(errors="replace")[-3000:]
            raise RuntimeError(f"the daemon did not become ready:\n{tail}") from None
        finally:
            sock.close()


class Planner:
    """Request bodies over varied cards; ~20 % take a limited benefit with room today."""

    def __init__(self, uses: Uses, today: date, seed: int) -> None:
        self.uses, self.today = uses, today
        self.rng = random.Random(seed)

    def body(self, *, take: bool) -> dict[str, Any]:
        rng = self.rng
        card = rng.randrange(N_CARDS)
        amount = rng.randint(300, 20_000)
        if rng.random() < BENEFIT_SHARE:
            for _ in range(20):
                bid = rng.choice(LIMITED)
                if self.uses.room(card, bid, self.today):
                    if take:
                        self.uses.take(card, bid, self.today)
                    return {**sale(NUMBERS[card], amount), "benefit_ids": [bid]}
                card = rng.randrange(N_CARDS)
        return sale(NUMBERS[card], amount)


@dataclass
class Figures:
    name: str
    first_start_s: float = 0.0
    warm_start_s: float = 0.0
    warm_starts: list[float] = field(default_factory=list)
    idle_rss_mb: float = 0.0
    quote_ms: list[float] = field(default_factory=list)
    quote_refused: int = 0
    sale_ms: list[float] = field(default_factory=list)
    sale_refused: int = 0
    rss_marks: list[tuple[int, float]] = field(default_factory=list)
    sustained: int = 0
    sustained_refused: int = 0
    sustained_s: float = 0.0
    slope_mb: float = 0.0
    head_seq: int = 0
    first_sync_s: float = 0.0
    first_sync_sent: int = 0


async def sell(
    http: aiohttp.ClientSession,
    url: str,
    token: str,
    planner: Planner,
    count: int,
    concurrency: int,
) -> tuple[int, int]:
    """Make ``count`` sales (201) with ``concurrency`` clients; (sales, refused)."""
    done = refused = claimed = 0

    async def worker() -> None:
        nonlocal done, refused, claimed
        while claimed < count:
            claimed += 1
            st, b = await api(http, url, token, "POST", "/api/v1/sales", planner.body(take=True))
            if st == 201:
                done += 1
            else:
                claimed -= 1
                refused += 1
                if refused > count:
                    raise RuntimeError(f"more refusals than sales: last answer {st} {b}")

    while done < count:
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done, refused


async def sync(http: aiohttp.ClientSession, url: str, token: str) -> dict[str, Any]:
    """POST /api/v1/sync; its answer, which must say the whole ledger is on the server."""
    st, body = await api(http, url, token, "POST", "/api/v1/sync")
    if st != 200 or not body.get("ok"):
        raise RuntimeError(f"sync failed: {st} {body}")
    answer: dict[str, Any] = body
    return answer


async def run_side(
    root: Path,
    name: str,
    history: History | None,
    *,
    reader: str,
    token: str,
    today: date,
    args: argparse.Namespace,
) -> Figures:
    """One daemon on one state dir with its own city server; every figure of one side."""
    fig = Figures(name=name)
    h = history or History()
    ccfg = CentralConfig(
        central=CentralSection(
            database=str(root / f"{name}-central.sqlite"), trust_on_first_use=True
        )
    )
    async with CentralServer(ccfg, port=0) as central, FakePrinter() as printer:
        await central.db.upsert_cards(
            city_cards(today, h.balances), points_given=frozenset(NUMBERS)
        )
        await central.db.load_rules(PARTNER, city_rules(len(h.persons)))
        await central.db.enrol(TERMINAL, PARTNER, token, None)
        if h.head.seq:
            with contextlib.closing(sqlite3.connect(central.db.path, timeout=30)) as db, db:
                db.execute(
                    "UPDATE terminals SET head_seq=?, head_hash=? WHERE id=?",
                    (h.head.seq, h.head.hash, TERMINAL),
                )
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        cfg = write_config(
            root,
            port=port,
            central=central.url,
            printer_port=printer.port,
            reader=reader,
            state=name,
        )
        child = PatientChild(root, cfg, ready_timeout_s=args.ready_timeout)
        try:
            # The first start on this state is the one after an upgrade: the usage book is
            # rebuilt from every entry once. The till then syncs (the city's card list says
            # which entries its balances hold), as any till does within a minute.
            fig.first_start_s = await asyncio.to_thread(child.start)
            conn = aiohttp.TCPConnector(limit=args.concurrency)
            async with aiohttp.ClientSession(connector=conn) as http:
                tok = (root / name / "api-token").read_text().strip()
                await wait_up(http, url, tok)
                t0 = time.perf_counter()
                first = await sync(http, url, tok)
                fig.first_sync_s = time.perf_counter() - t0
                fig.first_sync_sent = int(first["upload"]["sent"])
            # Restarts of a till that has run: what READY and memory look like for years.
            for _ in range(args.warm):
                await asyncio.to_thread(child.stop)
                fig.warm_starts.append(await asyncio.to_thread(child.start))
            fig.warm_start_s = statistics.median(fig.warm_starts or [fig.first_start_s])
            conn = aiohttp.TCPConnector(limit=args.concurrency)
            async with aiohttp.ClientSession(connector=conn) as http:
                await wait_up(http, url, tok)
                await sync(http, url, tok)
                await asyncio.sleep(2.0)
                fig.idle_rss_mb = child.rss_mb()
                planner = Planner(h.uses, today, args.seed + 1)
                for _ in range(args.quotes):
                    body = planner.body(take=False)
                    t0 = time.perf_counter()
                    st, _b = await api(http, url, tok, "POST", "/api/v1/sales/quote", body)
                    if st == 200:
                        fig.quote_ms.append((time.perf_counter() - t0) * 1000)
                    else:
                        fig.quote_refused += 1
                for _ in range(args.sales):
                    n = len(printer.jobs)
                    body = planner.body(take=True)
                    t0 = time.perf_counter()
                    st, _b = await api(http, url, tok, "POST", "/api/v1/sales", body)
                    if st != 201:
                        fig.sale_refused += 1
                        continue
                    await printer.wait_jobs(n + 1, within=5)
                    fig.sale_ms.append((time.perf_counter() - t0) * 1000)
                # --- RSS over more sales: a sync every sixth, RSS after every third
                step = args.sustained // 6
                t0 = time.perf_counter()
                for i in range(6):
                    done, refused = await sell(http, url, tok, planner, step, args.concurrency)
                    fig.sustained += done
                    fig.sustained_refused += refused
                    await sync(http, url, tok)
                    if i % 2 == 1:
                        fig.rss_marks.append((fig.sustained, child.rss_mb()))
                fig.sustained_s = time.perf_counter() - t0
                (n1, r1), (n3, r3) = fig.rss_marks[0], fig.rss_marks[-1]
                fig.slope_mb = (r3 - r1) / (n3 - n1) * 10_000
                st, health = await api(http, url, tok, "GET", "/api/v1/health")
                fig.head_seq = int(health["ledger"]["head_seq"]) if st == 200 else -1
        finally:
            await asyncio.to_thread(child.stop)
    return fig


def row(what: str, empty: str, full: str, budget: str, ok: bool | None) -> None:
    """One figure of both sides; ``ok`` None: information, no verdict."""
    verdict = "" if ok is None else "OK" if ok else "OVER BUDGET"
    print(f"{what:<46} {empty:>14} {full:>20}   {budget:<20} {verdict}".rstrip())


def report(e: Figures, f: Figures, h: History, args: argparse.Namespace) -> bool:
    ok_all = True

    def check(what: str, ev: str, fv: str, budget: str, ok: bool) -> None:
        nonlocal ok_all
        ok_all &= ok
        row(what, ev, fv, budget, ok)

    print(f"daemon on years of history ({os.cpu_count()} cores)")
    print(
        f"built {h.entries:,} entries ({h.size_mb:.0f} MB; {h.days} days from {h.first_day}"
        f" to yesterday; {h.sales:,} sales, {h.voids:,} voids, {h.with_benefit:,} with a"
        f" benefit) in {h.seconds:.1f} s"
    )
    big = f"{h.entries:,} entries"
    row("figure", "empty ledger", big, "budget", None)
    # The first start on a ledger without a checkpoint (the one after an upgrade from a
    # version without one) rebuilds the usage book from every entry once: shown, and
    # not what a till of years sees at each start.
    row(
        "start -> READY=1, first start (one-off rebuild)",
        f"{e.first_start_s * 1000:.0f} ms",
        f"{f.first_start_s * 1000:.0f} ms",
        "information",
        None,
    )
    check(
        f"start -> READY=1, median of {args.warm} restarts",
        f"{e.warm_start_s * 1000:.0f} ms",
        f"{f.warm_start_s * 1000:.0f} ms",
        f"<= {BUDGET_READY_S * 1000:.0f} ms",
        e.warm_start_s <= BUDGET_READY_S and f.warm_start_s <= BUDGET_READY_S,
    )
    check(
        "idle RSS after sync + 2 s",
        f"{e.idle_rss_mb:.1f} MB",
        f"{f.idle_rss_mb:.1f} MB",
        f"<= {BUDGET_RSS_MB:.0f} MB",
        e.idle_rss_mb <= BUDGET_RSS_MB and f.idle_rss_mb <= BUDGET_RSS_MB,
    )
    for what, ex, fx in (
        (f"quote p99 of {len(f.quote_ms)}", e.quote_ms, f.quote_ms),
        (f"sale -> receipt bytes p99 of {len(f.sale_ms)}", e.sale_ms, f.sale_ms),
    ):
        ep, fp = pct(ex, 99), pct(fx, 99)
        check(
            what,
            f"{ep:.2f} ms",
            f"{fp:.2f} ms ({fp / ep * 100 - 100:+.0f} %)",
            f"<= empty + {BUDGET_P99_RATIO * 100 - 100:.0f} %",
            fp <= ep * BUDGET_P99_RATIO,
        )
    check(
        f"RSS slope, MB per 10,000 sales ({e.rss_marks[0][0]:,} -> {e.rss_marks[-1][0]:,})",
        f"{e.slope_mb:+.2f} MB",
        f"{f.slope_mb:+.2f} MB",
        f"<= {BUDGET_SLOPE_MB:.0f} MB (years)",
        f.slope_mb <= BUDGET_SLOPE_MB,
    )
    print("information:")
    row(
        "  quote p50",
        f"{pct(e.quote_ms, 50):.2f} ms",
        f"{pct(f.quote_ms, 50):.2f} ms",
        "",
        None,
    )
    row(
        "  sale -> receipt p50",
        f"{pct(e.sale_ms, 50):.2f} ms",
        f"{pct(f.sale_ms, 50):.2f} ms",
        "",
        None,
    )
    for x in (e, f):
        marks = ", ".join(f"{n:,}: {r:.1f} MB" for n, r in x.rss_marks)
        print(
            f"  {x.name}: warm starts {', '.join(f'{s * 1000:.0f}' for s in x.warm_starts)} ms;"
            f" RSS after {marks}; {x.sustained:,} sustained sales in {x.sustained_s:.1f} s"
            f" ({x.sustained / x.sustained_s:.0f}/s); refused: {x.quote_refused} quotes,"
            f" {x.sale_refused} samples, {x.sustained_refused} sustained; head seq {x.head_seq:,};"
            f" first sync {x.first_sync_s * 1000:.0f} ms, {x.first_sync_sent} entries uploaded"
        )
    print("OK" if ok_all else "BUDGET MISSED")
    return ok_all


async def main(args: argparse.Namespace) -> int:
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(40), cache_logger_on_first_use=True
    )
    today = local_day(datetime.now(UTC))
    token = secrets.token_urlsafe(24)
    master, slave = os.openpty()
    tty.setraw(slave)
    try:
        with tempfile.TemporaryDirectory(prefix="kp-bench-years-", dir="/tmp") as tmp:
            root = Path(tmp)
            (root / "token").write_text(token)
            reader = os.ttyname(slave)
            empty = await run_side(
                root, "empty", None, reader=reader, token=token, today=today, args=args
            )
            print(f"empty ledger measured; building {args.n:,} entries ...", flush=True)
            state = root / "years"
            state.mkdir(mode=0o700)
            history = await build_history(state, args.n, today, args.seed)
            print(f"built in {history.seconds:.1f} s; measuring ...", flush=True)
            full = await run_side(
                root, "years", history, reader=reader, token=token, today=today, args=args
            )
    finally:
        os.close(master)
        os.close(slave)
    return 0 if report(empty, full, history, args) else 1


def cli() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--n", type=int, default=None, help="entries of history (1,000,000)")
    p.add_argument("--quick", action="store_true", help="smoke run: 20,000 entries, fewer samples")
    p.add_argument("--quotes", type=int, default=None)
    p.add_argument("--sales", type=int, default=None)
    p.add_argument("--sustained", type=int, default=None, help="sales of the RSS slope (30,000)")
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--warm", type=int, default=3, help="warm starts")
    p.add_argument("--seed", type=int, default=20261118)
    p.add_argument("--ready-timeout", type=float, default=900.0, help="seconds to wait for READY")
    args = p.parse_args()
    quick = args.quick
    args.n = args.n if args.n is not None else (20_000 if quick else 1_000_000)
    args.quotes = args.quotes if args.quotes is not None else (100 if quick else 2000)
    args.sales = args.sales if args.sales is not None else (60 if quick else 300)
    args.sustained = args.sustained if args.sustained is not None else (3_000 if quick else 30_000)
    if args.sustained < 6 * args.concurrency:
        p.error("--sustained must be at least six times --concurrency")
    return asyncio.run(main(args))


if __name__ == "__main__":
    sys.exit(cli())
