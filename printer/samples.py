"""Polish sample receipts: for previews in the demo, golden tests and benchmarks."""

from __future__ import annotations

from ledger.domain import Partner
from ledger.entry import GENESIS_HASH, Draft, Entry, seal
from printer.model import DaySummary, ReceiptBenefit, ReceiptData

PARTNER = Partner(
    name="Kawiarnia „Żółć i Miód” sp. z o.o.",
    address="ul. Piotrkowska 12, 90-001 Łódź",
    nip="725-000-00-00",
)
TERMINAL = "T-0001"


def _entry(draft: Draft, seq: int, prev_hash: str = GENESIS_HASH) -> Entry:
    return seal(
        draft,
        seq=seq,
        entry_id=f"0193a5b2-0000-7000-8000-{seq:012d}",
        terminal=TERMINAL,
        prev_hash=prev_hash,
    )


def sample_sale(seq: int = 12) -> ReceiptData:
    """A sale with two benefits, a points redemption and a stale balance."""
    entry = _entry(
        Draft(
            ts="2026-11-18T11:05:42.123Z",
            local_date="2026-11-18",
            kind="sale",
            card="01-000018",
            amount_gr=12345,
            points_earned=23,
            points_redeemed=100,
            discount_gr=1000,
            benefits=("B-kawa", "B-sala"),
            rules_version="7",
            cashier="C-1",
            sale_id="0193a5b2-1111-7000-8000-000000000001",
            benefit_quantities={"B-kawa": 2, "B-sala": 1},
            benefit_points={"B-kawa": 10, "B-sala": 5},
            balance_after=340,
        ),
        seq,
    )
    return ReceiptData(
        kind="sale",
        entry=entry,
        partner=PARTNER,
        terminal=TERMINAL,
        card_masked="01-****18",
        benefits=[
            ReceiptBenefit(
                id="B-kawa",
                name="Druga kawa gratis dla mieszkańców Łodzi",
                label="-100%",
                quantity=2,
                unit="pieces",
                points=10,
            ),
            ReceiptBenefit(
                id="B-sala", name="Sala zabaw – żółć", label="-50%", unit="hours", points=5
            ),
        ],
        balance_after=340,
        balance_as_of="2026-11-17",
        cashier_name="Małgorzata Ś.",
    )


def sample_void(seq: int = 13) -> ReceiptData:
    """The void of sample_sale()."""
    sale = sample_sale()
    entry = _entry(
        Draft(
            ts="2026-11-18T11:15:00.000Z",
            local_date="2026-11-18",
            kind="void",
            card="01-000018",
            amount_gr=-12345,
            points_earned=-23,
            points_redeemed=-100,
            discount_gr=-1000,
            benefits=("B-kawa", "B-sala"),
            benefit_quantities={"B-kawa": 2, "B-sala": 1},
            benefit_points={"B-kawa": -10, "B-sala": -5},
            ref=sale.entry.seq,
            reason="Pomyłka kasjera – zła kwota",
            sale_id="void:0193a5b2-1111-7000-8000-000000000001",
            balance_after=417,
        ),
        seq,
        sale.entry.hash,
    )
    return ReceiptData(
        kind="void",
        entry=entry,
        partner=PARTNER,
        terminal=TERMINAL,
        card_masked="01-****18",
        balance_after=417,
        voided_seq=sale.entry.seq,
        voided_ts=sale.entry.ts,
        voided_amount_gr=sale.entry.amount_gr,
    )


def sample_day_close(seq: int = 14) -> ReceiptData:
    """A Z report closing the sample day."""
    # ledger.voids.day_summary's keys: sums are net of the void.
    summary = {
        "sales": 11,
        "voids": 1,
        "sales_amount_gr": 1234567,
        "voids_amount_gr": -12345,
        "amount_gr": 1222222,
        "discount_gr": 4000,
        "points_earned": 1234,
        "points_redeemed": 400,
        "partner_cost_gr": 12340,
        "first_seq": 1,
        "last_seq": 13,
    }
    entry = _entry(
        Draft(
            ts="2026-11-18T20:00:00.000Z",
            local_date="2026-11-18",
            kind="day_close",
            card=None,
            summary=summary,
        ),
        seq,
        sample_void().entry.hash,
    )
    return ReceiptData(
        kind="day_close",
        entry=entry,
        partner=PARTNER,
        terminal=TERMINAL,
        summary=DaySummary.from_entry(entry),
        head_hash=entry.hash,
    )
