"""Money as the cashier types and reads it: exact grosze, Polish formatting."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.money import AmountError, format_pln, parse_pln, partner_cost_gr


@pytest.mark.parametrize(
    ("text", "grosze"),
    [
        ("123,45", 12345),
        ("123.45", 12345),
        ("123", 12300),
        ("123,4", 12340),
        ("0,01", 1),
        (" 12,50 zł ", 1250),
        ("1 234,56", 123456),
    ],
)
def test_parse_pln(text: str, grosze: int) -> None:
    assert parse_pln(text) == grosze


@pytest.mark.parametrize("text", ["", "abc", "12,345", "1,2,3", "١٢٣", "１２３", "12e3"])
def test_parse_pln_refuses(text: str) -> None:
    with pytest.raises(AmountError):
        parse_pln(text)


@given(st.integers(min_value=0, max_value=999_999_999_99))
def test_format_then_parse_is_identity(gr: int) -> None:
    assert parse_pln(format_pln(gr, currency=False)) == gr


def test_format_pln_is_polish() -> None:
    assert format_pln(1234567) == "12\u00a0345,67 zł"
    assert format_pln(-1000) == "-10,00 zł"


def test_partner_pays_ten_groszy_a_point() -> None:
    assert partner_cost_gr(100) == 1000
