"""POST /v1/terminals/{tid}/leases: persons leases never exceed max_persons.

The contract: docs/architecture.md §5.8.

The guarantee, checked after every step: over the partner's tills, the sum of
max(granted, admitted) plus the persons of other channels (the rules document's
``persons_used`` as loaded) is at most ``max_persons``; a grant is never below what its
till admitted and is lowered only when the till asks.
"""

from __future__ import annotations

import asyncio
import random
import tempfile
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from structlog.testing import capture_logs

from ledger.clock import FakeClock
from ledger.domain import Benefit, Rules
from sync.central import CentralDB
from sync.central.db import LeaseRefused
from sync.wire import LeaseGrant, decode_error, decode_lease_grant, leases_path
from tests.pgserver import central_database
from tests.sync.central_harness import PARTNER, TERMINAL, CentralHarness

pytestmark = pytest.mark.usefixtures("central_engine")  # on SQLite and PostgreSQL

LIMITED = "B-LIM"
MAX_PERSONS, BASE = 9, 2  # 2 persons came through the city's other channels
TILLS = ("T-A", "T-B", "T-C")


def rules(max_persons: int = MAX_PERSONS, base: int = BASE) -> Rules:
    return Rules(
        version="lease-test",
        benefits=(
            Benefit(id=LIMITED, name="Pula osób", limited=True, max_persons=max_persons,
                    persons_used=base),
            Benefit(id="B-FREE", name="Bez limitu osób", uses_per_period=1, period="day"),
        ),
    )  # fmt: skip


def check_guarantee(leases: dict[str, tuple[int, int]], max_persons: int, base: int) -> None:
    assert sum(max(g, a) for g, a in leases.values()) + base <= max_persons, leases
    for g, a in leases.values():
        assert g >= a, leases


# --- the database: a state machine over request / admit / void / release ---------------


class Leases(RuleBasedStateMachine):
    """Three tills of one partner, each admitting only within its grant (as a till does)."""

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.tmp = tempfile.TemporaryDirectory()
        clock = FakeClock(datetime(2026, 11, 18, 11, 0, tzinfo=UTC))
        self.db = self.run(CentralDB.open(central_database(Path(self.tmp.name), "c.sqlite"), clock))
        self.run(self.db.load_rules(PARTNER, rules()))
        for tid in TILLS:
            self.run(self.db.enrol(tid, PARTNER, f"token-{tid}", None))
        self.granted = dict.fromkeys(TILLS, 0)  # what each till was last told
        self.admitted = dict.fromkeys(TILLS, 0)  # each till's own count
        self.reported = dict.fromkeys(TILLS, 0)  # the count the city last heard

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def teardown(self) -> None:
        self.run(self.db.close())
        self.loop.close()
        self.tmp.cleanup()

    def ask(self, tid: str, want: int) -> None:
        held, admitted = self.granted[tid], self.admitted[tid]
        out = self.run(self.db.lease(tid, LIMITED, admitted, want))
        assert out.granted >= admitted
        if want >= held:
            assert out.granted >= held  # lowered only when asked
            assert out.granted <= max(want, held)
        else:
            assert out.granted == max(admitted, want)  # released down to what it asked
        self.granted[tid], self.reported[tid] = out.granted, admitted
        assert out.persons_used == BASE + sum(self.reported.values())

    @rule(tid=st.sampled_from(TILLS), want=st.integers(0, MAX_PERSONS + 3))
    def request(self, tid: str, want: int) -> None:
        self.ask(tid, want)

    @rule(tid=st.sampled_from(TILLS), extra=st.integers(1, 4))
    def top_up(self, tid: str, extra: int) -> None:
        self.ask(tid, self.granted[tid] + extra)

    @rule(tid=st.sampled_from(TILLS))
    def release(self, tid: str) -> None:
        """Day close: keep only what is admitted."""
        self.ask(tid, self.admitted[tid])

    @rule(tid=st.sampled_from(TILLS), n=st.integers(1, 3))
    def admit(self, tid: str, n: int) -> None:
        """New persons admitted offline: never beyond the till's grant."""
        self.admitted[tid] = min(self.granted[tid], self.admitted[tid] + n)

    @precondition(lambda self: any(self.admitted.values()))
    @rule(data=st.data())
    def void(self, data: st.DataObject) -> None:
        tid = data.draw(st.sampled_from([t for t in TILLS if self.admitted[t]]))
        self.admitted[tid] -= 1

    @rule(tid=st.sampled_from(TILLS))
    def sync(self, tid: str) -> None:
        """A sync cycle reports the count and asks to keep what it holds."""
        self.ask(tid, self.granted[tid])

    @invariant()
    def never_over_the_limit(self) -> None:
        held = self.run(self.db.leases(PARTNER, LIMITED))
        check_guarantee(held, MAX_PERSONS, BASE)
        # The sum also holds for what the tills may still admit offline.
        assert sum(max(self.granted[t], self.admitted[t]) for t in TILLS) + BASE <= MAX_PERSONS
        assert held == {t: (self.granted[t], self.reported[t]) for t in held}


def test_leases_state_machine(central_engine: str) -> None:
    run_state_machine_as_test(
        Leases,
        settings=settings(
            max_examples=40,
            stateful_step_count=25,
            deadline=None,
            derandomize=True,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )


# --- deterministic cases on the database ------------------------------------------------


@pytest.fixture
async def db(tmp_path: Path, clock: FakeClock) -> AsyncIterator[CentralDB]:
    async with await CentralDB.open(central_database(tmp_path, "c.sqlite"), clock) as d:
        await d.load_rules(PARTNER, rules())
        for tid in TILLS:
            await d.enrol(tid, PARTNER, f"token-{tid}", None)
        yield d


async def test_grants_fill_the_room_and_release_gives_it_to_another_till(db: CentralDB) -> None:
    a = await db.lease("T-A", LIMITED, 0, 5)
    assert (a.granted, a.persons_used) == (5, 2)
    b = await db.lease("T-B", LIMITED, 0, 5)
    assert b.granted == 2  # 9 - 2 base - 5 held by T-A
    assert (await db.lease("T-C", LIMITED, 0, 3)).granted == 0
    released = await db.lease("T-A", LIMITED, 1, 1)  # day close: keep only the admitted one
    assert (released.granted, released.persons_used) == (1, 3)
    assert (await db.lease("T-C", LIMITED, 0, 3)).granted == 3
    check_guarantee(await db.leases(PARTNER, LIMITED), MAX_PERSONS, BASE)


async def test_a_grant_is_never_below_admitted_and_kept_when_not_asked_lower(
    db: CentralDB,
) -> None:
    assert (await db.lease("T-A", LIMITED, 0, 4)).granted == 4
    assert (await db.lease("T-A", LIMITED, 3, 0)).granted == 3  # release: down to admitted
    assert (await db.lease("T-A", LIMITED, 3, 3)).granted == 3
    assert (await db.lease("T-B", LIMITED, 0, 100)).granted == 4
    # The limit is lowered: nothing more is given, and no grant is taken back unasked.
    await db.load_rules(PARTNER, rules(max_persons=5))
    assert (await db.lease("T-C", LIMITED, 0, 2)).granted == 0
    assert (await db.lease("T-B", LIMITED, 1, 4)).granted == 4
    assert (await db.lease("T-B", LIMITED, 1, 2)).granted == 2  # asked: lowered


async def test_other_channels_count_as_loaded_not_as_served(db: CentralDB) -> None:
    # persons_used of the rules as served counts residents seen in uploads on top of the
    # base; the leases count the base only (those residents are some till's admitted).
    out = await db.lease("T-A", LIMITED, 0, 100)
    assert (out.granted, out.persons_used) == (MAX_PERSONS - BASE, BASE)
    await db.load_rules(PARTNER, rules(base=8))
    assert (await db.lease("T-B", LIMITED, 0, 1)).granted == 0


async def test_admitted_beyond_the_grant_is_recorded_with_a_warning(db: CentralDB) -> None:
    with capture_logs() as logs:
        out = await db.lease("T-A", LIMITED, 3, 0)
    assert out.granted == 3  # never below what the till admitted
    assert out.persons_used == BASE + 3
    events = {e["event"]: e for e in logs}
    assert events["lease_admitted_beyond_grant"]["log_level"] == "warning"
    assert events["lease_admitted_beyond_grant"]["admitted"] == 3


async def test_no_lease_for_an_unknown_benefit_or_one_without_max_persons(
    db: CentralDB,
) -> None:
    with pytest.raises(LeaseRefused, match="no benefit B-NONE"):
        await db.lease("T-A", "B-NONE", 0, 1)
    with pytest.raises(LeaseRefused, match="no persons limit"):
        await db.lease("T-A", "B-FREE", 0, 1)
    await db.enrol("T-Z", "P-NONE", "token-z", None)
    with pytest.raises(LeaseRefused, match="no rules"):
        await db.lease("T-Z", LIMITED, 0, 1)
    assert await db.leases(PARTNER, LIMITED) == {}


async def test_leases_of_another_partner_do_not_count(db: CentralDB) -> None:
    await db.load_rules("P-0002", rules())
    await db.enrol("T-P2", "P-0002", "token-p2", None)
    assert (await db.lease("T-P2", LIMITED, 0, 100)).granted == MAX_PERSONS - BASE
    assert (await db.lease("T-A", LIMITED, 0, 100)).granted == MAX_PERSONS - BASE


# --- through HTTP ------------------------------------------------------------------------


@pytest.fixture
async def h(tmp_path: Path, clock: FakeClock) -> AsyncIterator[CentralHarness]:
    async with CentralHarness.start(tmp_path, clock=clock) as harness:
        await harness.db.load_rules(PARTNER, rules())
        for tid in ("T-0002", "T-0003"):
            await harness.enrol(tid, PARTNER)
        await harness.enrol("T-0099", "P-0002")
        yield harness


async def post_lease(
    h: CentralHarness,
    body: bytes | dict[str, Any],
    *,
    terminal: str = TERMINAL,
    path_terminal: str | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, bytes]:
    kw: dict[str, Any] = {"data": body} if isinstance(body, bytes) else {"json": body}
    async with (
        h.session(h.tokens[terminal]) as http,
        http.post(leases_path(path_terminal or terminal), headers=headers, **kw) as r,
    ):
        return r.status, await r.read()


async def lease(h: CentralHarness, terminal: str, admitted: int, want: int) -> LeaseGrant:
    status, body = await post_lease(
        h, {"benefit": LIMITED, "admitted": admitted, "want": want}, terminal=terminal
    )
    assert status == 200, body
    return decode_lease_grant(body)


async def test_three_tills_in_random_order_over_http_never_exceed_the_limit(
    h: CentralHarness,
) -> None:
    tills = (TERMINAL, "T-0002", "T-0003")
    granted = dict.fromkeys(tills, 0)
    admitted = dict.fromkeys(tills, 0)
    rng = random.Random(20261118)
    for _ in range(60):
        tid = rng.choice(tills)
        step = rng.choice(("top_up", "release", "admit", "void", "request"))
        if step == "admit":
            admitted[tid] = min(granted[tid], admitted[tid] + rng.randint(1, 2))
        elif step == "void" and admitted[tid]:
            admitted[tid] -= 1
        want = {
            "top_up": granted[tid] + rng.randint(1, 4),
            "release": admitted[tid],
            "request": rng.randint(0, MAX_PERSONS + 2),
        }.get(step, granted[tid])
        got = await lease(h, tid, admitted[tid], want)
        assert got.benefit == LIMITED
        assert got.granted >= admitted[tid]
        if want >= granted[tid]:
            assert got.granted >= granted[tid]
        granted[tid] = got.granted
        assert got.persons_used == BASE + sum(admitted.values())
        check_guarantee(await h.db.leases(PARTNER, LIMITED), MAX_PERSONS, BASE)
        assert sum(max(granted[t], admitted[t]) for t in tills) + BASE <= MAX_PERSONS
    assert sum(granted.values()) > 0


async def test_the_reply_is_a_lease_grant(h: CentralHarness) -> None:
    status, body = await post_lease(h, {"benefit": LIMITED, "admitted": 0, "want": 4})
    assert status == 200
    assert decode_lease_grant(body) == LeaseGrant(benefit=LIMITED, granted=4, persons_used=BASE)
    # Fields a newer till adds are ignored.
    status, body = await post_lease(
        h, {"benefit": LIMITED, "admitted": 1, "want": 4, "note": "x"}, terminal="T-0002"
    )
    assert (status, decode_lease_grant(body).granted) == (200, 3)


async def test_another_terminals_path_is_403(h: CentralHarness) -> None:
    status, body = await post_lease(
        h, {"benefit": LIMITED, "admitted": 0, "want": 1}, path_terminal="T-0002"
    )
    assert (status, decode_error(body).error) == (403, "forbidden")
    async with (
        aiohttp.ClientSession(base_url=h.url) as http,
        http.post(leases_path(TERMINAL), json={"benefit": LIMITED, "admitted": 0, "want": 1}) as r,
    ):
        assert r.status == 401
    assert await h.db.leases(PARTNER, LIMITED) == {}


@pytest.mark.parametrize("benefit", ["B-NONE", "B-FREE"])
async def test_an_unknown_or_unlimited_benefit_is_404(h: CentralHarness, benefit: str) -> None:
    status, body = await post_lease(h, {"benefit": benefit, "admitted": 0, "want": 1})
    err = decode_error(body)
    assert (status, err.error) == (404, "not_found")
    assert benefit in err.message


async def test_a_partner_whose_rules_lack_the_benefit_is_404(h: CentralHarness) -> None:
    status, body = await post_lease(
        h, {"benefit": LIMITED, "admitted": 0, "want": 1}, terminal="T-0099"
    )
    assert (status, decode_error(body).error) == (404, "not_found")


@pytest.mark.parametrize(
    "body",
    [
        b'{"benefit": "B-LIM", "admitted": 1.0, "want": 2}',
        b'{"benefit": "B-LIM", "admitted": 1, "want": 2.5}',
        b'{"benefit": "B-LIM", "admitted": true, "want": 2}',
        b'{"benefit": "B-LIM", "admitted": 0, "want": false}',
        b'{"benefit": "B-LIM", "admitted": "1", "want": 2}',
        b'{"benefit": "B-LIM", "admitted": -1, "want": 2}',
        b'{"benefit": "B-LIM", "admitted": 0, "want": -2}',
        b'{"benefit": "B-LIM", "admitted": 0, "want": 9007199254740992}',
        b'{"benefit": "B-LIM", "admitted": 0, "want": 99999999999999999999999}',
        b'{"benefit": "B-LIM", "admitted": 0}',
        b'{"benefit": "", "admitted": 0, "want": 1}',
        b'{"benefit": 5, "admitted": 0, "want": 1}',
        b'{"benefit": "B-LIM", "admitted": 0, "want": 1',  # cut
        b"[1, 2, 3]",
        b"",
        b"not json",
        b"[" * 5000 + b"]" * 5000,
    ],
)
async def test_a_malformed_request_is_400_and_changes_nothing(
    h: CentralHarness, body: bytes
) -> None:
    status, reply = await post_lease(h, body, headers={"Content-Type": "application/json"})
    assert (status, decode_error(reply).error) == (400, "bad_request"), reply
    assert await h.db.leases(PARTNER, LIMITED) == {}


async def test_a_query_or_an_oversized_body_is_refused(h: CentralHarness) -> None:
    async with (
        h.session() as http,
        http.post(
            leases_path(TERMINAL) + "?x=1", json={"benefit": LIMITED, "admitted": 0, "want": 1}
        ) as r,
    ):
        assert r.status == 400
    big = b'{"benefit": "B-LIM", "admitted": 0, "want": 1, "pad": "' + b"x" * 20000 + b'"}'
    status, reply = await post_lease(h, big)
    assert (status, decode_error(reply).error) == (413, "too_large")
