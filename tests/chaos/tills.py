"""Multi-till chaos: N real daemons of partner P-0001 against one reference city server.

`make chaos TILLS=3` (env ``CHAOS_TILLS``). Each till T-0001..T-000N is a
:class:`TillRun`: the single-till :class:`~tests.chaos.harness.ChaosRun` machinery (its own
child process, state dir on a tmpfs, pty reader, loopback printer, clock file, armable
fault points) with its own seeded schedule (`schedule.make_till_schedules`), all of them
talking to ONE in-process :class:`City`. The run interleaves the tills' steps one at a
time in a seeded order.

Faults, per till:
- every single-till kind applies to the till whose schedule holds it: kill -9, fault
  points, the printer's three modes, reader unplug, the three clock steps, disk full and
  a second instance are that till's own; the four upload faults
  (``server_500_after_commit``, ``server_drop_after_commit``, ``server_timeout``,
  ``server_retry_after``) hit that till's next uploads only (the city's middleware keys
  them by the bearer token);
- ``server_down`` cannot be one till's: it stops the city for every till (the city is
  down while any till's ``server_down`` lasts);
- ``partition`` (multi-till only): the line between that till and the city is cut — every
  request with its token has its transport aborted — for ``lasts`` of its ops, then healed.

The workload mixes ordinary sales with sales asking by name for the partner's limited
benefits (B-104 once a day with a balance above 200, B-105 a persons limit with 2 of 50
persons left, B-106 four hours a month at age 16-26), for small pools of residents shared
by every till, so the same people shop at several tills. The network rules it holds the
tills to: docs/architecture.md §5.8.

At the end every fault is undone, every partition healed, every till drained and synced
twice in turn (so usage feeds propagate), and it checks:
- persons: distinct holders with a non-voided sale of a persons-limited benefit across all
  tills, and the persons the tills admitted (``persons_new``, voided or not), within
  ``max_persons - persons_used``: strictly, under every partition;
- limits: for every holder and period-limited benefit, the quantity in each open window
  across all tills' ledgers (non-voided sales) within the limit, except uses the selling
  till could not know about: a use is a violation only if what the till knew (its own
  earlier uses, and another till's use acknowledged before a clean sync of that till
  followed by a clean sync of the selling till, both before the sale) already left no
  room for it;
- balances: every till shows, for every active card, the city's balance plus that till's
  entries the city does not hold (after the final syncs: the city's balance);
- per till, everything the single-till run checks (nothing lost, nothing doubled, the
  city holds exactly its entries, receipts, balances from its ledger, SIGTERM, ledger
  verify, integrity, logs).
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from config.schema import CentralConfig, CentralSection
from ledger.domain import Benefit, Rules
from ledger.periods import age_on, local_day, window_dates
from sync.central import CentralServer
from sync.central.demo_data import seed_demo_into
from tests.chaos.harness import PARTNER, ChaosRun, Handler, Pty, Report, SaleRecord, free_port
from tests.chaos.schedule import Fault, Op, Schedule

FOREVER = 2**62  # a tick after every other


def clean_sync(data: Any) -> bool:
    """Whether a POST /api/v1/sync answer says: all uploaded, and the usage feed applied."""
    if not isinstance(data, dict) or data.get("ok") is not True:
        return False
    refresh = data.get("refresh")
    usage = refresh.get("usage") if isinstance(refresh, dict) else None
    return isinstance(usage, dict) and usage.get("accepted") is True


class City:
    """The one reference city server of a multi-till run, and each till's line to it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.central: CentralServer | None = None
        self.tills: dict[str, TillRun] = {}  # by terminal token
        self.cut: dict[str, int] = {}  # token -> partitions in force
        self.cut_requests = 0  # requests whose transport a partition aborted
        self.downs = 0  # server_down faults in force (of any till)
        self._tick = 0

    def tick(self) -> int:
        """The run's logical clock: every till's steps happen one after another."""
        self._tick += 1
        return self._tick

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if self.cut.get(token):
            self.cut_requests += 1
            if request.transport is not None:
                request.transport.abort()  # as if the line to the city were cut
            raise web.HTTPServiceUnavailable()
        till = self.tills.get(token)
        if till is None:
            return await handler(request)
        return await till.server_faults.middleware(request, handler)

    async def start(self) -> None:
        cfg = CentralConfig(
            central=CentralSection(
                listen=f"127.0.0.1:{self.port}",
                database=str(self.root / "central.sqlite"),
                trust_on_first_use=True,
            )
        )
        self.central = CentralServer(cfg, middlewares=[self.middleware])
        await self.central.start()
        for t in self.tills.values():
            t.central = self.central

    async def stop(self) -> None:
        if self.central is None:
            return
        for t in self.tills.values():
            t.server_faults.release.set()
        await self.central.stop()
        self.central = None
        for t in self.tills.values():
            t.central = None
            t.server_faults.release = asyncio.Event()

    async def down(self) -> None:
        """One till's ``server_down``: the city stops for every till."""
        self.downs += 1
        if self.downs == 1:
            await self.stop()

    async def up(self) -> None:
        self.downs = max(0, self.downs - 1)
        if self.downs == 0 and self.central is None:
            await self.start()


class TillRun(ChaosRun):
    """One till of a multi-till run: a ChaosRun whose city is shared."""

    def __init__(self, root: Path, schedule: Schedule, city: City, terminal: str) -> None:
        super().__init__(root, schedule, terminal=terminal)
        self.tag = f"{terminal} "
        self.city = city
        self.rng = random.Random(f"run:{schedule.seed}:{terminal}")  # own sale ids
        self.central_port = city.port
        self.pools: dict[str, list[str]] = {}  # limited benefit -> the residents asking
        self.sent_at: dict[str, int] = {}  # sale id -> tick of its first request
        self.acked_at: dict[str, int] = {}  # sale id -> tick of its first acknowledgement
        self.syncs: list[tuple[int, int]] = []  # (start, end) ticks of clean sync cycles
        self.cuts: list[tuple[int, int]] = []  # (start, end) ticks of partitions
        self._cut_since: list[int] = []
        self.benefit_refusals: dict[str, int] = {}  # "B-104:period_limit_reached" -> n
        self.benefits_acked: dict[str, int] = {}
        self._last: Any = None
        city.tills[self.terminal_token] = self

    # --- the city is shared --------------------------------------------------------

    async def _start_central(self) -> None:
        await self.city.up()

    async def _stop_central(self) -> None:
        await self.city.down()

    # --- set-up (what ChaosRun.run does for one till, minus the city) -----------------

    async def prepare(self, http: aiohttp.ClientSession) -> None:
        (self.root / "escpos-cache").mkdir(parents=True, exist_ok=True)
        (self.root / "token").write_text(self.terminal_token)
        self.clock_file.write_text("0")
        self._mount()
        await self.printer.start()
        assert self.city.central is not None
        await self.city.central.db.enrol(self.terminal, PARTNER, self.terminal_token, None)
        self.pty = Pty(self.reader_link)
        self._write_config()
        self.http = http
        await self.start_daemon()
        await self._load_cards()
        # A second cycle: the first one's lease top-up is in; every till must hold a
        # grant (0 is one) before the faults start, else it would judge without leases.
        st, data = await self.api("POST", "/api/v1/sync")
        if st != 200 or not clean_sync(data) or not data.get("leases"):
            raise RuntimeError(f"chaos: {self.terminal}: no lease after two syncs: {data}")

    async def close(self) -> None:
        self.kill9()
        if self.pty is not None:
            self.pty.close()
        await self.printer.stop()
        self._unmount()

    # --- bookkeeping around the daemon's answers -------------------------------------

    async def api(self, method: str, path: str, body: Any = None) -> tuple[int | None, Any]:
        start = self.city.tick()
        status, data = await super().api(method, path, body)
        if path == "/api/v1/sync" and status == 200 and clean_sync(data):
            self.syncs.append((start, self.city.tick()))
        self._last = data
        return status, data

    async def _sale_body(self, op: Op) -> dict[str, Any]:
        if not op.benefit:
            return await super()._sale_body(op)
        pool = self.pools[op.benefit]
        return {
            "id": str(uuid.UUID(int=self.rng.getrandbits(128), version=4)),
            "card": pool[op.card % len(pool)],
            "amount_gr": op.amount_gr,
            "benefit_ids": [op.benefit],
            "benefit_quantities": {op.benefit: op.qty},
        }

    async def send_sale(self, rec: SaleRecord) -> None:
        sid = rec.body["id"]
        before = rec.outcome
        self.sent_at.setdefault(sid, self.city.tick())
        await super().send_sale(rec)
        named = rec.body.get("benefit_ids") or []
        if rec.outcome == "acked" and sid not in self.acked_at:
            self.acked_at[sid] = self.city.tick()
            for b in named:
                self.benefits_acked[b] = self.benefits_acked.get(b, 0) + 1
        elif rec.outcome == "refused" and before != "refused":
            err = self._last.get("error", {}) if isinstance(self._last, dict) else {}
            if err.get("code") == "benefit_unavailable":
                key = f"{err.get('benefit')}:{err.get('reason')}"
                self.benefit_refusals[key] = self.benefit_refusals.get(key, 0) + 1

    # --- the partition ---------------------------------------------------------------

    async def apply(self, f: Fault) -> None:
        if f.kind == "partition":
            tok = self.terminal_token
            self.city.cut[tok] = self.city.cut.get(tok, 0) + 1
            self._cut_since.append(self.city.tick())
        await super().apply(f)

    async def revert(self, f: Fault) -> None:
        if f.kind == "partition":
            tok = self.terminal_token
            self.city.cut[tok] = max(0, self.city.cut.get(tok, 0) - 1)
            self.cuts.append((self._cut_since.pop(0), self.city.tick()))
        await super().revert(f)

    def partitioned_between(self, a: int, b: int) -> bool:
        return any(s < b and a < e for s, e in self.cuts)


@dataclass
class Use:
    """One non-voided sale's quantity of one limited benefit, as the ledgers hold it."""

    till: TillRun
    seq: int
    holder: str
    benefit: str
    day: date
    qty: int
    sent: int  # tick of the sale's first request (when it was judged at the latest)
    acked: int  # tick of its first acknowledgement (it was committed by then)


@dataclass
class TillsReport:
    seed: int
    tills: int
    sales_per_till: int
    violations: list[str] = field(default_factory=list)
    per_till: dict[str, Report] = field(default_factory=dict)
    pools: dict[str, list[str]] = field(default_factory=dict)
    benefits_acked: dict[str, int] = field(default_factory=dict)
    benefit_refusals: dict[str, int] = field(default_factory=dict)
    persons: dict[str, int] = field(default_factory=dict)  # benefit -> distinct holders
    persons_admitted: dict[str, int] = field(default_factory=dict)  # Σ persons_new
    over_limit_excused: list[str] = field(default_factory=list)
    partitions: int = 0
    cut_requests: int = 0
    clean_syncs: int = 0
    seconds: float = 0.0

    def faults_done(self) -> set[str]:
        return {k for r in self.per_till.values() for k in r.faults_done}


class TillsRun:
    """N tills, one city: set up, interleave the schedules, settle, check."""

    def __init__(self, root: Path, schedules: list[Schedule]) -> None:
        self.root = root
        self.seed = schedules[0].seed
        self.city = City(root / "city")
        self.tills = [
            TillRun(root / f"till-{i}", s, self.city, f"T-{i:04d}")
            for i, s in enumerate(schedules, start=1)
        ]
        self.rules: Rules | None = None
        self.report = TillsReport(
            seed=self.seed, tills=len(schedules), sales_per_till=schedules[0].sales
        )

    async def run(self) -> TillsReport:
        t0 = time.monotonic()
        self.city.root.mkdir(parents=True, exist_ok=True)
        for t in self.tills:
            t.root.mkdir(parents=True, exist_ok=True)
        try:
            await self.city.start()
            assert self.city.central is not None
            await seed_demo_into(self.city.central.db)
            # as loaded, before any till admits anyone: the served rules' persons_used
            # counts the tills' admissions too (the base is the other channels')
            self.rules = await self.city.central.db.rules(PARTNER)
            async with aiohttp.ClientSession() as http:
                for t in self.tills:
                    await t.prepare(http)
                await self._pools()
                await self._interleave()
                for t in self.tills:
                    await t._undo_due(force=True)
                if self.city.central is None:  # every server_down is undone by now
                    await self.city.start()
                for t in self.tills:
                    await t.drain()
                await self._final_syncs()
                await self.check()
        finally:
            for t in self.tills:
                await t.close()
            await self.city.stop()
            self.report.seconds = round(time.monotonic() - t0, 1)
        return self.report

    async def _pools(self) -> None:
        """Small pools of residents per limited benefit, the same for every till."""
        central = self.city.central
        assert central is not None
        cards = self.tills[0].cards
        today = local_day(datetime.now(UTC))
        recs = {c: await central.db.card(c) for c in cards}
        rich = [c for c in cards if (r := recs[c]) is not None and r.points >= 250][:4]
        young = [
            c
            for c in cards
            if (r := recs[c]) is not None
            and r.holder.birth_date is not None
            and 16 <= age_on(r.holder.birth_date, today) <= 26
        ][:4]
        rng = random.Random(f"pools:{self.seed}")
        others = [c for c in cards if c not in rich and c not in young]
        persons = sorted({*rich[:2], *young[:2], *rng.sample(others, min(4, len(others)))})
        pools = {"B-104": rich, "B-105": persons, "B-106": young}
        assert all(pools.values()), pools
        self.report.pools = {b: [c[:3] + "…" for c in p] for b, p in pools.items()}
        for t in self.tills:
            t.pools = pools

    async def _interleave(self) -> None:
        rng = random.Random(f"interleave:{self.seed}")
        pos = [0] * len(self.tills)
        while True:
            live = [i for i, t in enumerate(self.tills) if pos[i] < len(t.sched.steps)]
            if not live:
                return
            i = rng.choice(live)
            t = self.tills[i]
            step = t.sched.steps[pos[i]]
            pos[i] += 1
            if isinstance(step, Fault):
                print(f"chaos: {t.terminal} op {t.op_index}: {step.kind}", flush=True)
                await t.apply(step)
            else:
                await t.do_op(step)
                t.op_index += 1
                await t._undo_due()

    async def _final_syncs(self) -> None:
        """Each till syncs, in turn, twice: every upload reaches every other till."""
        for n in (1, 2):
            for t in self.tills:
                st, data = await t.api("POST", "/api/v1/sync")
                if st != 200 or not clean_sync(data):
                    self.report.violations.append(
                        f"{t.terminal}: final sync {n} not clean: {st} {str(data)[:300]}"
                    )

    # --- what must hold across the tills -----------------------------------------------

    async def check(self) -> None:
        central = self.city.central
        assert central is not None
        ledgers = [await t.ledger_entries() for t in self.tills]
        rules = self.rules
        assert rules is not None
        holders: dict[str, str] = {}
        uses: list[Use] = []
        admitted: dict[str, int] = {}
        for t, entries in zip(self.tills, ledgers, strict=True):
            voided = {e["ref"] for e in entries if e["kind"] == "void" and e["ref"] is not None}
            for e in entries:
                if e["kind"] != "sale" or not e["card"]:
                    continue
                for b in e.get("persons_new") or ():
                    admitted[b] = admitted.get(b, 0) + 1
                if e["seq"] in voided or not e["benefits"]:
                    continue
                holder = e.get("holder") or await self._holder(e["card"], holders)
                sid = e["sale_id"]
                for b in dict.fromkeys(e["benefits"]):
                    uses.append(
                        Use(
                            till=t,
                            seq=e["seq"],
                            holder=holder,
                            benefit=b,
                            day=date.fromisoformat(e["local_date"]),
                            qty=int(e["benefit_quantities"].get(b, 1)),
                            sent=t.sent_at.get(sid, 0),
                            acked=t.acked_at.get(sid, FOREVER),
                        )
                    )
        self._check_persons(rules.benefits, uses, admitted)
        self._check_limits(rules.benefits, uses)
        await self._check_balances(ledgers)
        r = self.report
        for t in self.tills:
            r.benefits_acked = _add(r.benefits_acked, t.benefits_acked)
            r.benefit_refusals = _add(r.benefit_refusals, t.benefit_refusals)
            r.partitions += len(t.cuts)
            r.clean_syncs += len(t.syncs)
        r.cut_requests = self.city.cut_requests
        # per till, what the single-till run checks (it stops the daemon at the end)
        for t in self.tills:
            await t.check()
            r.per_till[t.terminal] = t.report
            r.violations += [f"{t.terminal}: {v}" for v in t.report.violations]

    async def _holder(self, card: str, cache: dict[str, str]) -> str:
        if card not in cache:
            assert self.city.central is not None
            rec = await self.city.central.db.card(card)
            cache[card] = rec.holder_key if rec is not None else card
        return cache[card]

    def _check_persons(
        self, benefits: Sequence[Benefit], uses: list[Use], admitted: dict[str, int]
    ) -> None:
        for b in benefits:
            if b.max_persons is None:
                continue
            left = max(b.max_persons - max(b.persons_used, 0), 0)
            people = {u.holder for u in uses if u.benefit == b.id}
            self.report.persons[b.id] = len(people)
            self.report.persons_admitted[b.id] = admitted.get(b.id, 0)
            if len(people) > left:
                by = sorted({f"{u.till.terminal}:{u.holder}" for u in uses if u.benefit == b.id})
                self.report.violations.append(
                    f"persons: {len(people)} residents hold a sale of {b.id}, "
                    f"{left} of {b.max_persons} were left: {by}"
                )
            if admitted.get(b.id, 0) > left:
                self.report.violations.append(
                    f"persons: the tills admitted {admitted[b.id]} new persons to {b.id}, "
                    f"{left} were left"
                )

    def _knew(self, u: Use, p: Use) -> bool:
        """Whether the till selling ``u`` knew of the earlier use ``p`` when it judged."""
        if p.till is u.till:
            return p.seq < u.seq
        return any(
            a1 > p.acked and any(a2 > b1 and b2 < u.sent for a2, b2 in u.till.syncs)
            for a1, b1 in p.till.syncs
        )

    def _check_limits(self, benefits: Sequence[Benefit], uses: list[Use]) -> None:
        today = local_day(datetime.now(UTC))
        limited = {b.id: b for b in benefits if b.uses_per_period is not None}
        windows: dict[tuple[str, str, date], list[Use]] = {}
        for u in uses:
            b = limited.get(u.benefit)
            if b is None:
                continue
            if b.period is None:
                start = date.min
            else:
                start = window_dates(b.period, u.day)[0]
                if start < window_dates(b.period, today)[0]:
                    continue  # a closed window: the city's feed no longer carries it
            windows.setdefault((u.holder, u.benefit, start), []).append(u)
        for (holder, bid, start), us in sorted(windows.items(), key=lambda kv: kv[0]):
            limit = limited[bid].uses_per_period
            assert limit is not None
            if sum(u.qty for u in us) <= limit:
                continue
            for u in sorted(us, key=lambda x: x.sent):
                earlier = [p for p in us if p is not u and p.sent < u.sent]
                known = sum(p.qty for p in us if p is not u and self._knew(u, p))
                where = f"{holder} {bid} window {start}: {u.till.terminal} seq {u.seq}"
                if known + u.qty > limit:
                    self.report.violations.append(
                        f"limits: {where} sold {u.qty} knowing {known} of {limit} used"
                    )
                elif sum(p.qty for p in earlier) + u.qty > limit:
                    # which till of the pair was cut off between the earlier use and this one
                    cut = {
                        t.terminal
                        for p in earlier
                        if p.till is not u.till
                        for t in (u.till, p.till)
                        if t.partitioned_between(p.sent, u.sent)
                    }
                    why = f"partitioned: {sorted(cut)}" if cut else "not synced between"
                    self.report.over_limit_excused.append(
                        f"{where} ({u.qty}, {known} known of {limit}; {why})"
                    )

    async def _check_balances(self, ledgers: list[list[dict[str, Any]]]) -> None:
        central = self.city.central
        assert central is not None
        cards = sorted({c for t in self.tills for c in t.cards})
        city = {c: await central.db.card(c) for c in cards}
        for t, entries in zip(self.tills, ledgers, strict=True):
            row = await central.db.terminal(t.terminal)
            held = row.head.seq if row is not None else 0
            pending: dict[str, int] = {}
            for e in entries:
                if e["seq"] > held and e["card"]:
                    d = e["points_earned"] - e["points_redeemed"]
                    pending[e["card"]] = pending.get(e["card"], 0) + d
            wrong = []
            for c in cards:
                rec = city[c]
                if rec is None:
                    continue
                st, view = await t.api("POST", "/api/v1/cards/resolve", {"input": c})
                expect = rec.points + pending.get(c, 0)
                if st != 200:
                    wrong.append(f"{c[:3]}…: resolve answered {st}")
                elif view["balance"]["points"] != expect:
                    wrong.append(
                        f"{c[:3]}…: shows {view['balance']['points']}, city {rec.points}"
                        f" + {pending.get(c, 0)} not held = {expect}"
                    )
            if wrong:
                self.report.violations.append(f"{t.terminal}: balances: {wrong[:10]}")


def _add(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
    out = dict(a)
    for k, n in b.items():
        out[k] = out.get(k, 0) + n
    return out
