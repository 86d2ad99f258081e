"""The real reference city server on a free loopback port, for tests of every area.

Usage in a test module::

    from tests.sync.central_harness import CentralHarness, central  # noqa: F401 (fixture)

    async def test_x(central: CentralHarness) -> None:
        async with central.session() as http:   # Authorization: Bearer <T-0001's token>
            ...

``central`` starts a server with the demo data seeded, terminal ``T-0001`` enrolled for
partner ``P-0001`` with a fresh token and ``central.key`` (an Ed25519 key) enrolled.
``CentralHarness.start(tmp_path, ...)`` builds other set-ups (trust-on-first-use, a
small body limit, extra middlewares to inject faults).

Every test that uses ``central`` runs on both engines, SQLite and PostgreSQL (the
``central_engine`` fixture of tests/conftest.py); ``start`` makes a new database of the
current engine unless ``database`` names one (a restart on the same database).
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import aiohttp
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from config.schema import CentralConfig, CentralSection
from ledger.clock import Clock, SystemClock, local_date
from ledger.domain import DEFAULT_REDEEM_TIERS
from ledger.entry import GENESIS_HASH, Draft, Entry, seal
from ledger.rules import best_multiplier, purchase_points
from sync.central import CentralDB, CentralServer, Middleware
from sync.central.demo_data import demo_cards, demo_rules, seed_demo_into
from sync.wire import UploadBatch, encode, public_key_b64, sign_batch
from tests.pgserver import central_database

TERMINAL = "T-0001"
PARTNER = "P-0001"


@dataclass
class CentralHarness:
    server: CentralServer
    token: str
    key: Ed25519PrivateKey
    terminal: str = TERMINAL
    partner: str = PARTNER
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def db(self) -> CentralDB:
        return self.server.db

    @property
    def public_key(self) -> str:
        return public_key_b64(self.key)

    def headers(self, token: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {token or self.token}"}

    @contextlib.asynccontextmanager
    async def session(self, token: str | None = None) -> AsyncIterator[aiohttp.ClientSession]:
        async with aiohttp.ClientSession(
            base_url=self.url,
            headers=self.headers(token),
            timeout=aiohttp.ClientTimeout(total=30),
        ) as s:
            yield s

    async def enrol(
        self, terminal: str, partner: str = PARTNER, public_key: str | None = None
    ) -> str:
        """Enrol another terminal; returns its fresh token."""
        token = secrets.token_urlsafe(24)
        await self.db.enrol(terminal, partner, token, public_key)
        self.tokens[terminal] = token
        return token

    def batch_body(
        self,
        entries: Sequence[Entry],
        *,
        key: Ed25519PrivateKey | None = None,
        terminal: str | None = None,
    ) -> bytes:
        """A signed upload body for ``entries``."""
        sig, pub = sign_batch(key or self.key, terminal or self.terminal, list(entries))
        return encode(UploadBatch(entries=list(entries), signature=sig, public_key=pub))

    @classmethod
    @contextlib.asynccontextmanager
    async def start(
        cls,
        tmp_path: Path,
        *,
        database: str | None = None,
        trust_on_first_use: bool = False,
        max_body_bytes: int = 64 * 1024 * 1024,
        middlewares: Sequence[Middleware] = (),
        enrol_key: bool = True,
        seed: bool = True,
        clock: Clock | None = None,
        # The fleet's control night measures a herd the server lets in: no gate by
        # default here (the shipped default is 8; test_central_hostile.py tests it).
        max_concurrent_uploads: int = 1024,
        # Tests read the full list many times; the shipped limit (6/h) has its own test.
        full_feeds_per_hour: int = 0,
    ) -> AsyncIterator[CentralHarness]:
        cfg = CentralConfig(
            central=CentralSection(
                listen="127.0.0.1:8765",  # the port is overridden: any free one
                database=database or central_database(tmp_path),
                max_body_bytes=max_body_bytes,
                trust_on_first_use=trust_on_first_use,
                max_concurrent_uploads=max_concurrent_uploads,
                full_feeds_per_hour=full_feeds_per_hour,
            )
        )
        key = Ed25519PrivateKey.generate()
        token = secrets.token_urlsafe(24)
        async with CentralServer(cfg, middlewares=middlewares, port=0, clock=clock) as server:
            if seed:
                await seed_demo_into(server.db)
            await server.db.enrol(
                TERMINAL, PARTNER, token, public_key_b64(key) if enrol_key else None
            )
            yield cls(server=server, token=token, key=key, tokens={TERMINAL: token})


@pytest.fixture
async def central(tmp_path: Path, central_engine: str) -> AsyncIterator[CentralHarness]:
    """The reference server with demo data, T-0001 enrolled with token and key, on each
    engine in turn."""
    async with CentralHarness.start(tmp_path) as h:
        yield h


# Noon (UTC) of the day the demo data is seeded: its benefits' validity is relative to it.
TODAY_TS = f"{local_date(SystemClock().now()).isoformat()}T11:00:00.000Z"


def honest_points(
    card: str | None,
    amount_gr: int,
    benefits: tuple[str, ...],
    day: date,
    *,
    partner: str = PARTNER,
    today: date | None = None,
) -> tuple[int, dict[str, int]]:
    """What the demo rules of ``partner`` grant for a sale on ``day`` (the purchase and
    each benefit's points): what an honest till writes, so the city credits it."""
    if card is None:
        return 0, {}
    seeded = today or local_date(SystemClock().now())
    rules = demo_rules(seeded)[partner]
    record = {c.number: c for c in demo_cards(seeded)}.get(card)  # None: a test's own card
    multiplier = 1 if record is None else best_multiplier(record, rules.earn, day)[0]
    by_id = {b.id: b for b in rules.benefits}
    per_benefit = {bid: by_id[bid].points for bid in benefits}
    return purchase_points(amount_gr, rules.earn, multiplier), per_benefit


def make_entries(
    n: int,
    *,
    start_seq: int = 1,
    prev_hash: str = GENESIS_HASH,
    terminal: str = TERMINAL,
    card: str | None = "01-000018",
    points_earned: int | None = None,
    points_redeemed: int = 0,
    benefits: tuple[str, ...] = (),
    ts: str = "2026-11-18T11:00:00.000Z",
    salt: str = "",
) -> list[Entry]:
    """A chain of ``n`` sale entries from ``start_seq`` after ``prev_hash``.

    Without ``points_earned`` each sale earns what the demo rules grant (an honest till,
    credited by the city); with it, exactly that (a till that does not follow its rules:
    the city holds such a sale in quarantine, docs/architecture.md §5.9).
    """
    out: list[Entry] = []
    prev = prev_hash
    for seq in range(start_seq, start_seq + n):
        amount = 1000 + seq
        tier = next((t for t in DEFAULT_REDEEM_TIERS if t.points == points_redeemed), None)
        discount = tier.discount_gr if tier is not None else 0
        day = date.fromisoformat(ts[:10])
        purchase, per_benefit = honest_points(card, amount - discount, benefits, day)
        d = Draft(
            ts=ts,
            local_date=ts[:10],
            kind="sale",
            card=card,
            amount_gr=amount,
            points_earned=(
                purchase + sum(per_benefit.values()) if points_earned is None else points_earned
            ),
            points_redeemed=points_redeemed,
            discount_gr=discount,
            benefits=benefits,
            benefit_points=per_benefit,
            rules_version="2026.11-1",
            cashier="P-0001-K01",
            sale_id=f"sale-{salt}{seq}",
        )
        e = seal(d, seq=seq, entry_id=f"0190-{salt}{seq}", terminal=terminal, prev_hash=prev)
        out.append(e)
        prev = e.hash
    return out
