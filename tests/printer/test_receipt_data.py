"""Receipt data built from the ledger's own void and day-summary functions."""

from __future__ import annotations

import msgspec

from ledger.domain import Benefit, Partner
from ledger.entry import GENESIS_HASH, Draft, Entry, seal
from ledger.usage import UsageBook
from ledger.voids import day_summary, plan_void
from printer.layout import render_text
from printer.model import DaySummary, receipt_for_entry
from printer.samples import sample_sale

PARTNER = Partner(name="Sklep Łódź", address="ul. Żółta 1", nip="123")


def pair(label: str, value: str, width: int) -> str:
    return label + value.rjust(width - len(label))


def chain(*drafts: Draft) -> list[Entry]:
    out: list[Entry] = []
    prev = GENESIS_HASH
    for i, d in enumerate(drafts, start=1):
        e = seal(d, seq=i, entry_id=f"id-{i}", terminal="T-0001", prev_hash=prev)
        out.append(e)
        prev = e.hash
    return out


def test_void_of_a_real_plan_prints_positive_amounts() -> None:
    sale = sample_sale(1).entry
    plan = plan_void(sale, UsageBook.from_entries([sale]), reason="zwrot towaru")
    (void,) = chain(
        plan.to_draft(
            ts="2026-11-18T12:00:00.000Z", local_date="2026-11-18", cashier=None, sale_id="void:x"
        )
    )
    # Without the voided entry at hand, the amounts come from the void's own columns.
    data = receipt_for_entry(void, PARTNER)
    lines = render_text(data, 48).splitlines()
    assert "Anulowana transakcja nr:                       1" in lines
    assert "Kwota anulowanej sprzedaży:            123,45 zł" in lines
    assert "Punkty odebrane:                          23 pkt" in lines
    assert "Punkty zwrócone:                         100 pkt" in lines
    assert pair("Cofnięty rabat za punkty:", "10,00 zł", 48) in lines
    assert "Powód: zwrot towaru" in lines


def test_z_report_from_the_ledgers_day_summary() -> None:
    entries = chain(
        Draft(
            ts="2026-11-18T09:00:00.000Z",
            local_date="2026-11-18",
            kind="sale",
            card="01-000018",
            amount_gr=10000,
            points_earned=100,
        ),
        Draft(
            ts="2026-11-18T10:00:00.000Z",
            local_date="2026-11-18",
            kind="sale",
            card="01-000026",
            amount_gr=5000,
            points_earned=50,
            points_redeemed=100,
            discount_gr=1000,
        ),
        Draft(
            ts="2026-11-18T11:00:00.000Z",
            local_date="2026-11-18",
            kind="void",
            card="01-000018",
            amount_gr=-10000,
            points_earned=-100,
            ref=1,
        ),
    )
    summary = day_summary(entries, "2026-11-18")
    (close,) = chain(
        Draft(
            ts="2026-11-18T20:00:00.000Z",
            local_date="2026-11-18",
            kind="day_close",
            card=None,
            summary=summary,
        )
    )
    s = DaySummary.from_entry(close)
    assert (s.sales, s.voids, s.first_seq, s.last_seq) == (2, 1, 1, 3)
    assert (s.sales_amount_gr, s.voided_amount_gr, s.amount_gr) == (15000, 10000, 5000)
    assert s.partner_cost_gr == summary["partner_cost_gr"] == 500
    text = render_text(receipt_for_entry(close, PARTNER), 42)
    lines = text.splitlines()
    assert pair("Sprzedaż (zakupy):", "150,00 zł", 42) in lines
    assert pair("Anulowano:", "-100,00 zł", 42) in lines
    assert pair("Obrót netto:", "50,00 zł", 42) in lines
    assert pair("Koszt partnera (0,10 zł/pkt):", "5,00 zł", 42) in lines
    assert pair("Transakcje nr:", "1 - 3", 42) in lines
    # A rules document with another price per point: the Z report prints that price and
    # the cost counted at it (an older entry without the price: 0,10 zł, as above).
    dearer = msgspec.structs.replace(
        close, summary={**summary, "point_cost_gr": 25, "partner_cost_gr": 1250}
    )
    lines = render_text(receipt_for_entry(dearer, PARTNER), 42).splitlines()
    assert pair("Koszt partnera (0,25 zł/pkt):", "12,50 zł", 42) in lines
    old = {k: v for k, v in summary.items() if k not in ("point_cost_gr", "partner_cost_gr")}
    older = msgspec.structs.replace(close, summary=old)
    assert DaySummary.from_entry(older).partner_cost_gr == 500


def test_z_report_of_an_empty_day() -> None:
    (close,) = chain(
        Draft(
            ts="2026-11-18T20:00:00.000Z",
            local_date="2026-11-18",
            kind="day_close",
            card=None,
            summary=day_summary([], "2026-11-18"),
        )
    )
    text = render_text(receipt_for_entry(close, PARTNER), 32)
    assert "Transakcje nr:              brak" in text


def test_sale_receipt_names_benefits_from_the_catalogue() -> None:
    sale = sample_sale(1).entry
    benefits = {
        "B-kawa": Benefit(id="B-kawa", name="Kawa", label="-100%"),
        "B-sala": Benefit(id="B-sala", name="Sala", label="-50%", unit="hours"),
    }
    data = receipt_for_entry(sale, PARTNER, benefits=benefits, balance_as_of="2026-11-17")
    assert data.card_masked == "01-****18"
    lines = render_text(data, 32).splitlines()
    assert "Kawa" in lines
    assert "-100%  2 szt.            +10 pkt" in lines
    assert "-50%  1 godz.             +5 pkt" in lines
    # What was paid, and the purchase points as following from it (23 minus 15).
    assert "Zapłacono:             113,45 zł" in lines
    assert "Punkty za 113,45 zł:       8 pkt" in lines
    assert "              stan na 17.11.2026" in lines
    # A benefit no longer in the catalogue still prints, under its id.
    bare = render_text(receipt_for_entry(sale, PARTNER), 32).splitlines()
    assert "B-sala" in bare


def test_a_narrow_header_keeps_the_postcode_beside_its_town() -> None:
    data = sample_sale()
    partner = Partner(
        name="Księgarnia", address="ul. Najświętszej Maryi Panny 12, 42-200 Częstochowa"
    )
    lines = [
        ln.strip() for ln in render_text(receipt_for_entry(data.entry, partner), 32).splitlines()
    ]
    assert "42-200 Częstochowa" in lines
    assert "ul. Najświętszej Maryi Panny 12" in lines


def test_a_benefit_without_points_says_its_quantity_on_the_right() -> None:
    sale = sample_sale(1).entry
    benefits = {"B-kawa": Benefit(id="B-kawa", name="Kawa", label="gratis")}
    sale = msgspec.structs.replace(sale, benefits=("B-kawa",), benefit_points={"B-kawa": 0})
    lines = render_text(receipt_for_entry(sale, PARTNER, benefits=benefits), 32).splitlines()
    assert "gratis                    2 szt." in lines


def test_a_void_receipt_confirms_the_void_and_says_where_the_code_is_checked() -> None:
    from printer.samples import sample_void

    text = " ".join(render_text(sample_void(), 42).split())  # lines rejoined
    assert "przyznane punkty i benefity" not in text
    assert "potwierdza anulowanie transakcji" in text
    assert "Kod sprawdzi biuro programu Karta Mieszkańca." in text
