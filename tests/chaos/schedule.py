"""The seeded schedule of a chaos run: the workload and the faults, all drawn up front.

Every random choice is made here from the seed, so re-running a seed replays the same
schedule; what depends on the daemon's answers (which benefit is available) is picked at
run time from a number drawn here.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

FaultKind = Literal[
    "kill9",  # SIGKILL the daemon while sales are in flight
    "fault_points",  # restart with named fault points armed (it kills itself there)
    "printer_offline",  # the printer refuses connections
    "printer_paper_out",  # the printer answers "paper out"
    "printer_silent",  # the printer answers no status query
    "server_500_after_commit",  # the city server commits a batch, then answers 500
    "server_drop_after_commit",  # ... then drops the connection
    "server_timeout",  # ... then never answers
    "server_retry_after",  # the server is busy: 503 with Retry-After, nothing committed
    "server_down",  # nothing listens at the server's address
    "reader_unplug",  # the serial reader's pty goes away; a new one comes back later
    "clock_back",  # the wall clock steps an hour back
    "clock_forward",  # ... three days forward (the card list looks stale)
    "clock_1970",  # ... to 1970 (dead RTC battery)
    "disk_full",  # the state dir's filesystem is full
    "second_instance",  # a second daemon is started on the same state dir
]
FAULT_KINDS: tuple[FaultKind, ...] = FaultKind.__args__  # type: ignore[attr-defined]

# Multi-till runs (tests/chaos/tills.py) add one kind: the line between one till and the
# city is cut (every request of that till's token fails at the transport), then healed.
TillFaultKind = Literal[FaultKind, "partition"]
TILL_FAULT_KINDS: tuple[TillFaultKind, ...] = (*FAULT_KINDS, "partition")
# The limited benefits of the demo partner P-0001 the multi-till workload asks for by
# name: once a day (balance > 200), a persons limit (2 of 50 persons left), 4 hours a
# month (age 16-26).
LIMITED_BENEFITS: tuple[str, ...] = ("B-104", "B-105", "B-106")

OpKind = Literal["sale", "void", "reprint", "day_close", "sync", "swipe"]


@dataclass(frozen=True)
class Op:
    kind: OpKind
    card: int = 0  # index into the run's active cards
    amount_gr: int = 0
    benefit_pick: float = -1.0  # < 0: no benefit; else which available one
    redeem_pick: float = -1.0  # < 0: no redemption; else which tier
    target: float = 0.0  # void/reprint: which earlier sale
    benefit: str = ""  # multi-till: ask for this limited benefit by name ("" : none)
    qty: int = 1  # ... in this quantity (its unit: pieces, hours)


@dataclass(frozen=True)
class Fault:
    kind: TillFaultKind  # a FaultKind; "partition" only in multi-till schedules
    lasts: int  # workload ops until the fault is undone
    delay_ms: int = 0  # kill9: how long after the sales went out
    odds: float = 0.0  # fault_points: probability at each armed point


@dataclass
class Schedule:
    seed: int
    sales: int
    steps: list[Op | Fault] = field(default_factory=list)

    def faults(self) -> list[Fault]:
        return [s for s in self.steps if isinstance(s, Fault)]

    def describe(self) -> dict[str, Any]:
        counts: dict[str, int] = {}
        for f in self.faults():
            counts[f.kind] = counts.get(f.kind, 0) + 1
        ops: dict[str, int] = {}
        for s in self.steps:
            if isinstance(s, Op):
                ops[s.kind] = ops.get(s.kind, 0) + 1
        return {"seed": self.seed, "sales": self.sales, "faults": counts, "ops": ops}

    def as_list(self) -> list[dict[str, Any]]:
        return [{"step": type(s).__name__, **asdict(s)} for s in self.steps]


def _op(rng: random.Random) -> Op:
    r = rng.random()
    kind: OpKind
    if r < 0.08:
        kind = "void"
    elif r < 0.12:
        kind = "reprint"
    elif r < 0.14:
        kind = "day_close"
    elif r < 0.19:
        kind = "sync"
    elif r < 0.26:
        kind = "swipe"
    else:
        return Op(
            kind="sale",
            card=rng.randrange(1000),
            amount_gr=rng.choice([rng.randrange(1, 2000), rng.randrange(100, 50_000)]),
            benefit_pick=rng.random() if rng.random() < 0.3 else -1.0,
            redeem_pick=rng.random() if rng.random() < 0.15 else -1.0,
        )
    return Op(kind=kind, card=rng.randrange(1000), target=rng.random())


def _fault(rng: random.Random, kind: TillFaultKind) -> Fault:
    return Fault(
        kind=kind,
        lasts=rng.randrange(3, 12),
        delay_ms=rng.randrange(0, 40),
        odds=rng.choice([0.05, 0.1, 0.2]),
    )


def make_schedule(seed: int, sales: int) -> Schedule:
    """``sales`` sale operations (plus voids, reprints, closes, syncs, swipes) and faults.

    Every fault kind appears at least once, once more per 200 sales; their order and
    places are drawn from the seed.
    """
    rng = random.Random(seed)
    rounds = max(1, sales // 200)
    kinds = [k for _ in range(rounds) for k in FAULT_KINDS]
    rng.shuffle(kinds)
    at = sorted(rng.sample(range(5, max(sales, len(kinds) + 6)), len(kinds)))
    sched = Schedule(seed=seed, sales=sales)
    made = 0
    k = 0
    while made < sales:
        op = _op(rng)
        sched.steps.append(op)
        if op.kind == "sale":
            while k < len(at) and at[k] <= made:
                sched.steps.append(_fault(rng, kinds[k]))
                k += 1
            made += 1
    for kind in kinds[k:]:
        sched.steps.append(_fault(rng, kind))
    return sched


def _till_op(rng: random.Random) -> Op:
    """An op of a multi-till schedule: 40 % of the sales name a limited benefit."""
    op = _op(rng)
    if op.kind != "sale" or rng.random() >= 0.4:
        return op
    benefit = rng.choices(LIMITED_BENEFITS, weights=(4, 3, 3))[0]
    return Op(
        kind="sale",
        card=op.card,
        amount_gr=op.amount_gr,
        benefit=benefit,
        qty=rng.randint(1, 3) if benefit == "B-106" else 1,
    )


def make_till_schedules(seed: int, tills: int, sales: int) -> list[Schedule]:
    """One schedule per till T-0001..T-000N of a multi-till run, ``sales`` sales each.

    Each till's ops are drawn from ``(seed, till)``. Every till is partitioned from the
    city at least twice (once more per 50 sales). With 200 sales or more a till gets
    every single-till fault kind (once more per 200 sales); with fewer the kinds are
    dealt over the tills, so the run as a whole has every kind once (a shorter run).
    """
    deal = random.Random(f"tills:{seed}:{tills}")
    rounds = sales // 200
    kinds: list[list[TillFaultKind]] = []
    if rounds:
        kinds = [[k for _ in range(rounds) for k in FAULT_KINDS] for _ in range(tills)]
    else:
        dealt = list(FAULT_KINDS)
        deal.shuffle(dealt)
        kinds = [list(dealt[i::tills]) for i in range(tills)]
    out = []
    for i in range(tills):
        rng = random.Random(f"{seed}:{i + 1}")
        mine = kinds[i] + ["partition"] * max(2, sales // 50)
        rng.shuffle(mine)
        at = sorted(rng.sample(range(3, max(sales, len(mine) + 4)), len(mine)))
        sched = Schedule(seed=seed, sales=sales)
        made = k = 0
        while made < sales:
            op = _till_op(rng)
            sched.steps.append(op)
            if op.kind == "sale":
                while k < len(at) and at[k] <= made:
                    sched.steps.append(_fault(rng, mine[k]))
                    k += 1
                made += 1
        for kind in mine[k:]:
            sched.steps.append(_fault(rng, kind))
        out.append(sched)
    return out
