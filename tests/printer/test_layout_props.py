"""Hypothesis: any entry lays out, within the width, in the code page, decodable."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from config.schema import PrinterSection
from ledger.clock import format_ts
from ledger.domain import Partner
from ledger.entry import Entry
from printer.layout import Line, compose, printable, render
from printer.model import DaySummary, ReceiptBenefit, ReceiptData
from tests.printer.escpos_decode import decode

texts = st.text(max_size=120)
big = st.integers(min_value=-(10**15), max_value=10**15)
small = st.integers(min_value=0, max_value=10**9)
when = st.datetimes(  # hypothesis bounds are naive; the zone comes from timezones=
    min_value=datetime(2000, 1, 1),  # noqa: DTZ001
    max_value=datetime(2099, 12, 31),  # noqa: DTZ001
    timezones=st.just(UTC),
)
hexes = st.text(alphabet="0123456789abcdef", min_size=64, max_size=64)


@st.composite
def receipts(draw: st.DrawFn) -> ReceiptData:
    kind = draw(st.sampled_from(["sale", "void", "day_close"]))
    benefit_ids = draw(st.lists(st.text(min_size=1, max_size=20), max_size=4, unique=True))
    entry = Entry(
        seq=draw(st.integers(min_value=1, max_value=10**12)),
        id="0193a5b2-0000-7000-8000-000000000001",
        ts=format_ts(draw(when)),
        local_date=draw(st.sampled_from(["2026-11-18", "2026-03-29", "bad"])),
        terminal=draw(st.text(min_size=1, max_size=40)),
        kind=kind,
        card=draw(st.none() | st.just("01-000018")),
        amount_gr=draw(big),
        points_earned=draw(big),
        points_redeemed=draw(big),
        discount_gr=draw(big),
        benefits=tuple(benefit_ids),
        rules_version="1",
        cashier=None,
        ref=draw(st.none() | small),
        prev_hash=draw(hexes),
        hash=draw(hexes),
        reason=draw(st.none() | texts),
        benefit_points={b: draw(big) for b in benefit_ids},
    )
    return ReceiptData(
        kind=kind,  # type: ignore[arg-type]
        entry=entry,
        partner=Partner(name=draw(texts), address=draw(texts), nip=draw(texts)),
        terminal=entry.terminal,
        card_masked=draw(st.none() | texts),
        benefits=[
            ReceiptBenefit(
                id=b,
                name=draw(st.text(max_size=300)),
                label=draw(texts),
                quantity=draw(big),
                unit=draw(st.sampled_from(["pieces", "hours"])),
                points=draw(big),
            )
            for b in benefit_ids
        ],
        balance_after=draw(st.none() | big),
        balance_as_of=draw(st.none() | st.just("2026-11-17") | texts),
        voided_seq=draw(st.none() | small),
        voided_ts=draw(st.none() | st.just("not a time") | when.map(format_ts)),
        voided_amount_gr=draw(st.none() | big),
        summary=draw(
            st.none()
            | st.builds(
                DaySummary,
                sales=small,
                voids=small,
                amount_gr=big,
                points_earned=big,
                first_seq=st.none() | small,
                last_seq=st.none() | small,
            )
        ),
        cashier_name=draw(st.none() | texts),
        explanation=draw(st.lists(texts, max_size=3)),
        timezone=draw(st.sampled_from(["Europe/Warsaw", "Nowhere/Bad"])),
    )


@settings(max_examples=150, deadline=None)
@given(data=receipts(), columns=st.integers(min_value=24, max_value=64), copy=st.booleans())
def test_any_receipt_lays_out_within_the_width(data: ReceiptData, columns: int, copy: bool) -> None:
    for block in compose(data, columns, copy=copy):
        if isinstance(block, Line):
            assert len(block.text) <= columns
            block.text.encode("cp852")  # only characters the code page has
            assert "\n" not in block.text


@settings(max_examples=60, deadline=None)
@given(data=receipts(), columns=st.sampled_from([32, 42, 48]), copy=st.booleans())
def test_any_receipt_encodes_and_decodes(data: ReceiptData, columns: int, copy: bool) -> None:
    printer = PrinterSection(columns=columns)
    decoded = decode(render(data, printer, copy=copy))
    assert decoded.inits == 1
    assert decoded.cuts == 1
    assert not decoded.text_before_codepage
    for line in decoded.text_lines:
        if not line.startswith("[QR:"):
            assert len(line) <= columns


@given(st.text())
def test_printable_output_is_always_in_the_code_page(text: str) -> None:
    for cp, codec in (("CP852", "cp852"), ("CP1250", "cp1250"), ("CP437", "cp437")):
        printable(text, cp).encode(codec)


@given(
    prefix=st.text(alphabet="abcżółć ", max_size=10),
    foreign=st.lists(
        st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF)
        | st.characters(min_codepoint=0x1F300, max_codepoint=0x1F5FF)
        | st.characters(min_codepoint=0x0400, max_codepoint=0x04FF),
        min_size=1,
        max_size=5,
    ),
)
def test_characters_outside_the_code_page_become_question_marks(
    prefix: str, foreign: list[str]
) -> None:
    # Cyrillic is not in CP852, CJK and emoji in no receipt code page.
    assert printable(prefix + "".join(foreign), "CP852") == prefix + "?" * len(foreign)
