"""Builders shared by the rules engine tests: cards, rules, instants and an in-memory till.

The till seals real chained entries (``ledger.entry.seal``) and feeds them to the usage
book exactly as the daemon does after each durable append.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, time

from ledger.clock import WARSAW, format_ts, unix_ms
from ledger.domain import (
    DEFAULT_REDEEM_TIERS,
    Benefit,
    CardRecord,
    CardStatus,
    EarnRule,
    Holder,
    Program,
    RedeemTier,
    Rules,
)
from ledger.entry import GENESIS_HASH, Draft, Entry, EntryKind, seal, verify_chain
from ledger.ids import uuid7
from ledger.refusals import Refusal
from ledger.rules import (
    CatalogState,
    OfflinePolicy,
    Quote,
    SaleRequest,
    day_summary,
    plan_void,
    quote,
)
from ledger.usage import LOCAL, Network, UsageBook

FRESH = CatalogState(age_s=60.0)
POLICY = OfflinePolicy()
NUMBER = "01-000018"


def warsaw(y: int, m: int, d: int, hh: int = 12, mm: int = 0, ss: int = 0) -> datetime:
    """The UTC instant of a Warsaw wall-clock time (fold 0 on the autumn hour)."""
    return datetime.combine(date(y, m, d), time(hh, mm, ss), tzinfo=WARSAW).astimezone(UTC)


def make_card(
    *,
    number: str = NUMBER,
    status: CardStatus = CardStatus.ACTIVE,
    birth: date | None = date(1990, 5, 17),
    programs: tuple[tuple[str, date], ...] = (("mieszkaniec", date(2030, 12, 31)),),
    points: int = 0,
    as_of: datetime | None = None,
    holder_id: str | None = None,
) -> CardRecord:
    return CardRecord(
        number=number,
        status=status,
        holder=Holder(display_name="Anna K.", birth_date=birth, id=holder_id),
        programs=tuple(Program(code=c, valid_to=v) for c, v in programs),
        points=points,
        points_as_of=as_of,
    )


def make_rules(
    *benefits: Benefit,
    earn: EarnRule | None = None,
    tiers: tuple[RedeemTier, ...] = DEFAULT_REDEEM_TIERS,
    version: str = "r1",
) -> Rules:
    return Rules(version=version, earn=earn or EarnRule(), redeem_tiers=tiers, benefits=benefits)


def benefit(bid: str = "b1", **fields: object) -> Benefit:
    """A benefit with only the given fields set (the rest as the server's defaults)."""
    return Benefit(id=bid, name=fields.pop("name", f"Benefit {bid}"), **fields)  # type: ignore[arg-type]


def refusal_code(call: Callable[[], object]) -> str | None:
    """The refusal ``call`` raises (a benefit's reason for ``benefit_unavailable``), or None."""
    try:
        call()
    except Refusal as r:
        return reason_of(r)
    return None


def reason_of(r: Refusal) -> str:
    """A benefit refusal's specific reason, checking the contract's shape (11.1), else the code."""
    if r.reason is not None:
        assert r.code == "benefit_unavailable", r
        assert r.benefit is not None, r
        return r.reason
    return r.code


class Till:
    """A terminal's ledger in memory: quotes, seals and appends, feeding the usage book."""

    def __init__(self, terminal: str = "T-0001") -> None:
        self.terminal = terminal
        self.entries: list[Entry] = []
        self.usage = UsageBook()

    def _append(self, draft_entry: Entry) -> Entry:
        self.entries.append(draft_entry)
        self.usage.apply(draft_entry)
        return draft_entry

    def quote(
        self,
        card: CardRecord,
        rules: Rules,
        sale: SaleRequest,
        at: datetime,
        *,
        catalog: CatalogState = FRESH,
        policy: OfflinePolicy = POLICY,
        network: Network = LOCAL,
    ) -> Quote:
        return quote(
            card, rules, self.usage, sale, at, catalog=catalog, policy=policy, network=network
        )

    def sell(
        self,
        card: CardRecord,
        rules: Rules,
        sale: SaleRequest,
        at: datetime,
        *,
        catalog: CatalogState = FRESH,
        policy: OfflinePolicy = POLICY,
        network: Network = LOCAL,
        cashier: str | None = "K-1",
    ) -> Entry:
        q = self.quote(card, rules, sale, at, catalog=catalog, policy=policy, network=network)
        draft = q.to_draft(
            ts=format_ts(at),
            local_date=at.astimezone(WARSAW).date().isoformat(),
            card=card.number,
            cashier=cashier,
            sale_id=uuid7(unix_ms(at)),
        )
        return self._append(self._seal(draft))

    def try_sell(
        self,
        card: CardRecord,
        rules: Rules,
        sale: SaleRequest,
        at: datetime,
        *,
        cashier: str | None = "K-1",
    ) -> Entry | None:
        """Sell, or return None when the engine refuses (history that may or may not fit)."""
        try:
            return self.sell(card, rules, sale, at, cashier=cashier)
        except Refusal:
            return None

    def close_day(self, local_date: str) -> Entry:
        """Append a day_close entry with the day's summary."""
        draft = Draft(
            ts=f"{local_date}T22:30:00.000Z",
            local_date=local_date,
            kind=EntryKind.DAY_CLOSE,
            card=None,
            summary=day_summary(self.entries, local_date),
        )
        return self._append(self._seal(draft))

    def voided_by(self, seq: int) -> int | None:
        """The void entry that cancelled sale ``seq`` (the daemon asks its ledger)."""
        return next((e.seq for e in self.entries if e.kind == "void" and e.ref == seq), None)

    def void(
        self,
        seq: int,
        at: datetime,
        *,
        reason: str = "pomyłka kasjera",
        cashier: str | None = "K-1",
    ) -> Entry:
        plan = plan_void(
            self.entries[seq - 1], self.usage, reason=reason, voided_by=self.voided_by(seq)
        )
        draft = plan.to_draft(
            ts=format_ts(at),
            local_date=at.astimezone(WARSAW).date().isoformat(),
            cashier=cashier,
            sale_id=uuid7(unix_ms(at)),
        )
        return self._append(self._seal(draft))

    def _seal(self, draft: Draft) -> Entry:
        prev = self.entries[-1].hash if self.entries else GENESIS_HASH
        return seal(
            draft,
            seq=len(self.entries) + 1,
            entry_id=uuid7(unix_ms(datetime.fromisoformat(draft.ts))),
            terminal=self.terminal,
            prev_hash=prev,
        )

    def verify(self) -> None:
        assert verify_chain(self.entries) is None
