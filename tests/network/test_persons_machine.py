"""Distinct persons never exceed max_persons: many tills, grants, sales, voids, partitions.

A Hypothesis state machine drives three tills (the real rules engine, usage book and
checkpoint) against the reference server's real lease table (CentralDB on SQLite):
tills sell to residents new and known, void, upload what they sold (the city's usage
feed then knows those residents), top up and release their leases, lose and regain the
line to the city, and restart from their checkpoint. After every step, across every
till's ledger, the residents with a use of the benefit number at most ``max_persons``
(docs/architecture.md §5.8).
"""

from __future__ import annotations

import asyncio
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from ledger.clock import FakeClock
from ledger.domain import Benefit, Rules
from ledger.entry import EntryKind
from ledger.refusals import Refusal
from ledger.rules import SaleRequest
from ledger.usage import Network, UsageBook
from sync.central import CentralDB
from tests.ledger.test_rules_support import Till, make_card, make_rules, warsaw
from tests.pgserver import central_database

pytestmark = pytest.mark.usefixtures("central_engine")  # on SQLite and PostgreSQL

PARTNER = "P-0001"
BENEFIT = "b-degustacja"
MAX_PERSONS = 3
BASE = 0  # persons through other channels
TILLS = ("T-1", "T-2", "T-3")
CARDS = [make_card(number=f"01-00{i:04d}", holder_id=f"H-{i}") for i in range(8)]
RULES = make_rules(Benefit(id=BENEFIT, name="Degustacja", limited=True, max_persons=MAX_PERSONS))
NOON = warsaw(2026, 11, 18)
SALE = SaleRequest(amount_gr=1000, benefit_ids=(BENEFIT,))


class Node:
    """One till: its ledger and book, its grant, whether it reaches the city."""

    def __init__(self, tid: str) -> None:
        self.tid = tid
        self.till = Till(terminal=tid)
        self.grant: int | None = None
        self.online = True
        self.uploaded = 0  # entries the city holds


class PersonsLimit(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.tmp = tempfile.TemporaryDirectory()
        self.db = self.loop.run_until_complete(
            CentralDB.open(
                central_database(Path(self.tmp.name), "city.sqlite"), FakeClock(datetime.now(UTC))
            )
        )
        self.loop.run_until_complete(
            self.db.load_rules(
                PARTNER,
                Rules(
                    version="r1",
                    benefits=(
                        Benefit(
                            id=BENEFIT,
                            name="Degustacja",
                            limited=True,
                            max_persons=MAX_PERSONS,
                            persons_used=BASE,
                        ),
                    ),
                ),
            )
        )
        for tid in TILLS:
            self.loop.run_until_complete(self.db.enrol(tid, PARTNER, f"token-{tid}", None))
        self.nodes = [Node(t) for t in TILLS]
        # What each till's last usage feed said: holder -> uses through the partner.
        self.feeds: list[set[str]] = [set() for _ in TILLS]

    def teardown(self) -> None:
        self.loop.run_until_complete(self.db.close())
        self.loop.close()
        self.tmp.cleanup()

    # --- what the city knows ----------------------------------------------------------

    def city_known(self) -> set[str]:
        """Residents with a use the city holds (the usage feed's lines), voids subtracted."""
        uses: dict[str, int] = {}
        for n in self.nodes:
            for e in n.till.entries[: n.uploaded]:
                if BENEFIT in e.benefits and e.holder_key is not None:
                    step = 1 if e.kind == EntryKind.SALE else -1
                    uses[e.holder_key] = uses.get(e.holder_key, 0) + step
        return {h for h, n in uses.items() if n > 0}

    # --- steps ------------------------------------------------------------------------

    @rule(i=st.integers(0, 2), c=st.integers(0, len(CARDS) - 1))
    def sell(self, i: int, c: int) -> None:
        n = self.nodes[i]
        card = CARDS[c]
        grants = {} if n.grant is None else {BENEFIT: n.grant}
        # The feed knows residents as lines of this holder: give the engine the holder's.
        known = card.holder_key in self.feeds[i]
        lines: dict[str, tuple[tuple[int, int], ...]] = (
            {BENEFIT: ((NOON.date().toordinal(), 1),)} if known else {}
        )
        # The city has the lease service: a till that holds no grant yet has 0 slots.
        net = Network(terminal_seq=None, lines=lines, grants=grants or {BENEFIT: 0})
        reason = None
        try:
            n.till.sell(card, RULES, SALE, NOON, network=net)
        except Refusal as r:
            reason = r.reason
        assert reason in (None, "persons_limit_reached")

    @rule(i=st.integers(0, 2), pick=st.integers(0, 50))
    def void(self, i: int, pick: int) -> None:
        n = self.nodes[i]
        sales = [
            e
            for e in n.till.entries
            if e.kind == EntryKind.SALE and n.till.voided_by(e.seq) is None
        ]
        if sales:
            n.till.void(sales[pick % len(sales)].seq, NOON)

    @rule(i=st.integers(0, 2))
    def upload_and_refresh(self, i: int) -> None:
        n = self.nodes[i]
        if n.online:
            n.uploaded = len(n.till.entries)
            self.feeds[i] = self.city_known()

    @rule(i=st.integers(0, 2), slots=st.integers(0, 3))
    def top_up(self, i: int, slots: int) -> None:
        n = self.nodes[i]
        if not n.online:
            return
        admitted = n.till.usage.admitted(BENEFIT)
        out = self.loop.run_until_complete(
            self.db.lease(n.tid, BENEFIT, admitted, admitted + slots)
        )
        assert out.granted >= admitted
        n.grant = out.granted

    @rule(i=st.integers(0, 2))
    def release(self, i: int) -> None:
        n = self.nodes[i]
        if n.online:
            admitted = n.till.usage.admitted(BENEFIT)
            n.grant = self.loop.run_until_complete(
                self.db.lease(n.tid, BENEFIT, admitted, admitted)
            ).granted

    @rule(i=st.integers(0, 2))
    def partition(self, i: int) -> None:
        self.nodes[i].online = not self.nodes[i].online

    @rule(i=st.integers(0, 2))
    def restart(self, i: int) -> None:
        n = self.nodes[i]
        n.till.usage = UsageBook.restore(n.till.usage.snapshot())

    # --- what must hold ---------------------------------------------------------------

    @invariant()
    def distinct_persons_never_exceed_the_limit(self) -> None:
        persons: set[str] = set()
        for n in self.nodes:
            for e in n.till.entries:
                if (
                    e.kind == EntryKind.SALE
                    and BENEFIT in e.benefits
                    and n.till.voided_by(e.seq) is None
                    and e.holder_key is not None
                ):
                    persons.add(e.holder_key)
        assert len(persons) <= MAX_PERSONS - BASE, persons

    @invariant()
    def no_till_admits_beyond_its_grant(self) -> None:
        for n in self.nodes:
            assert n.till.usage.admitted(BENEFIT) <= (n.grant or 0)


def test_persons_limit_across_tills(central_engine: str) -> None:
    run_state_machine_as_test(
        PersonsLimit,
        settings=settings(
            max_examples=120,
            stateful_step_count=40,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )


def test_a_void_does_not_reopen_a_slot_another_till_relied_on() -> None:
    """Max 1 person: P is admitted at A; B, seeing P in the feed, sells to P as a known
    person; A voids its sale. If that gave A's slot back, A would admit Q: two persons."""
    rules = make_rules(Benefit(id=BENEFIT, name="Degustacja", limited=True, max_persons=1))
    a, b = Till("T-1"), Till("T-2")
    p, q = CARDS[0], CARDS[1]
    lease = Network(grants={BENEFIT: 1})
    first = a.sell(p, rules, SALE, NOON, network=lease)
    p_known = Network(grants={BENEFIT: 0}, lines={BENEFIT: ((NOON.date().toordinal(), 1),)})
    b.sell(p, rules, SALE, NOON, network=p_known)  # not a new person at B
    a.void(first.seq, NOON)
    reason = None
    try:
        a.sell(q, rules, SALE, NOON, network=lease)
    except Refusal as r:
        reason = r.reason
    assert reason == "persons_limit_reached"
