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

OpKind = Literal["sale", "void", "reprint", "day_close", "sync", "swipe"]


@dataclass(frozen=True)
class Op:
    kind: OpKind
    card: int = 0  # index into the run's active cards
    amount_gr: int = 0
    benefit_pick: float = -1.0  # < 0: no benefit; else which available one
    redeem_pick: float = -1.0  # < 0: no redemption; else which tier
    target: float = 0.0  # void/reprint: which earlier sale


@dataclass(frozen=True)
class Fault:
    kind: FaultKind
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


def _fault(rng: random.Random, kind: FaultKind) -> Fault:
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
