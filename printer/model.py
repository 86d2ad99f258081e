"""What a receipt needs, captured when the job is queued.

A print job may run days later (offline printer, restart after a crash), so it carries
everything it prints: no catalogue or ledger lookups at print time. These are msgspec
Structs so the print queue stores them as JSON.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import msgspec

from ledger.cards import mask
from ledger.domain import Benefit, Partner
from ledger.entry import Entry
from ledger.money import PARTNER_COST_PER_POINT_GR, partner_cost_gr

ReceiptKind = Literal["sale", "void", "day_close"]
BenefitUnit = Literal["pieces", "hours"]


class ReceiptBenefit(msgspec.Struct, frozen=True, kw_only=True):
    """One benefit granted in a sale, as the receipt shows it."""

    id: str
    name: str
    label: str = ""
    quantity: int = 1
    unit: BenefitUnit = "pieces"
    points: int = 0


class DaySummary(msgspec.Struct, frozen=True, kw_only=True):
    """Totals of a closed day (the Z report); sums are net of voids."""

    sales: int = 0
    voids: int = 0
    sales_amount_gr: int = 0  # the day's sales before voids
    voided_amount_gr: int = 0  # what the voids took back (positive)
    amount_gr: int = 0  # net purchases
    discount_gr: int = 0
    points_earned: int = 0
    points_redeemed: int = 0
    first_seq: int | None = None
    last_seq: int | None = None
    # The partner's cost and the price per point as the day_close entry recorded them
    # (the rules' point_cost_gr); an entry from before has neither: 0.10 PLN a point.
    recorded_cost_gr: int | None = None
    recorded_point_cost_gr: int | None = None

    @property
    def point_cost_gr(self) -> int:
        """The price per point the partner's cost is counted at."""
        if self.recorded_point_cost_gr is not None:
            return self.recorded_point_cost_gr
        return PARTNER_COST_PER_POINT_GR

    @property
    def partner_cost_gr(self) -> int:
        """What the partner owes the city for the points granted (as recorded at the close)."""
        if self.recorded_cost_gr is not None:
            return self.recorded_cost_gr
        return partner_cost_gr(self.points_earned, self.point_cost_gr)

    @classmethod
    def from_entry(cls, entry: Entry) -> DaySummary:
        """Read the totals of a day_close entry (``ledger.voids.day_summary`` keys)."""
        s = entry.summary or {}
        sales_amount = s.get("sales_amount_gr")
        voids_amount = s.get("voids_amount_gr")  # negative: the voids' own amounts
        amount = s.get("amount_gr", 0)
        return cls(
            sales=s.get("sales", 0),
            voids=s.get("voids", 0),
            sales_amount_gr=amount if sales_amount is None else sales_amount,
            voided_amount_gr=0 if voids_amount is None else -voids_amount,
            amount_gr=amount,
            discount_gr=s.get("discount_gr", 0),
            points_earned=s.get("points_earned", 0),
            points_redeemed=s.get("points_redeemed", 0),
            recorded_cost_gr=s.get("partner_cost_gr"),
            recorded_point_cost_gr=s.get("point_cost_gr"),
            # day_summary writes 0 for a day without transactions
            first_seq=s.get("first_seq") or None,
            last_seq=s.get("last_seq") or None,
        )


class ReceiptData(msgspec.Struct, frozen=True, kw_only=True):
    """Everything one receipt (sale, void) or Z report prints."""

    kind: ReceiptKind
    entry: Entry
    partner: Partner
    terminal: str
    card_masked: str | None = None
    benefits: list[ReceiptBenefit] = []
    balance_after: int | None = None
    # Local date (YYYY-MM-DD) of the catalogue the balance comes from, when it is older
    # than the sale's day: printed as "stan na <date>".
    balance_as_of: str | None = None
    # void: the voided transaction (a void entry negates its sale's columns).
    voided_seq: int | None = None
    voided_ts: str | None = None
    voided_amount_gr: int | None = None
    # day_close: the day's totals and the chain head they close.
    summary: DaySummary | None = None
    head_hash: str | None = None
    cashier_name: str | None = None
    # Extra lines the sale service wants on the receipt (why a benefit was refused, ...).
    explanation: list[str] = []
    timezone: str = "Europe/Warsaw"

    @property
    def seq(self) -> int:
        return self.entry.seq


def receipt_for_entry(
    entry: Entry,
    partner: Partner,
    *,
    benefits: Mapping[str, Benefit] | None = None,
    balance_as_of: str | None = None,
    voided: Entry | None = None,
    cashier_name: str | None = None,
    explanation: list[str] | None = None,
    timezone: str = "Europe/Warsaw",
) -> ReceiptData:
    """Build a receipt's data from a committed entry and what the till knows now."""
    kind: ReceiptKind
    if entry.kind == "void":
        kind = "void"
    elif entry.kind == "day_close":
        kind = "day_close"
    else:
        kind = "sale"
    catalogue = benefits or {}
    lines: list[ReceiptBenefit] = []
    for bid in entry.benefits:
        b = catalogue.get(bid)
        lines.append(
            ReceiptBenefit(
                id=bid,
                name=b.name if b else bid,
                label=b.label if b else "",
                quantity=entry.benefit_quantities.get(bid, 1),
                unit=b.unit if b else "pieces",
                points=entry.benefit_points.get(bid, 0),
            )
        )
    return ReceiptData(
        kind=kind,
        entry=entry,
        partner=partner,
        terminal=entry.terminal,
        card_masked=mask(entry.card) if entry.card else None,
        benefits=lines,
        balance_after=entry.balance_after,
        balance_as_of=balance_as_of,
        voided_seq=entry.ref if kind == "void" else None,
        voided_ts=voided.ts if voided else None,
        voided_amount_gr=voided.amount_gr if voided else None,
        summary=DaySummary.from_entry(entry) if kind == "day_close" else None,
        head_hash=entry.hash if kind == "day_close" else None,
        cashier_name=cashier_name,
        explanation=list(explanation or []),
        timezone=timezone,
    )


receipt_encoder = msgspec.json.Encoder()
receipt_decoder = msgspec.json.Decoder(ReceiptData)
