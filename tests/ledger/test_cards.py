"""Card numbers: the printed form, digits-only reads and the resident panel's extra zero."""

from __future__ import annotations

import pytest

from config.schema import CardsSection
from drivers.factory import card_number_format
from ledger.cards import CardNumberError, CardNumberFormat

CITY = card_number_format(CardsSection())  # the configured default: strip_extra_zero = true


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("01-000018", "01-000018"),
        ("01000018", "01-000018"),
        # "Blokujesz kartę o numerze 01-0000018" (the resident panel) is card 01-000018
        ("01-0000018", "01-000018"),
        ("010000018", "01-000018"),  # the same, digits only
        (" 01-0000018 ", "01-000018"),
        ("01-1000018", "01-1000018"),  # seven digits without a leading zero stay seven
    ],
)
def test_the_extra_leading_zero_is_the_same_card(text: str, number: str) -> None:
    """Bug caught: 01-0000018 was refused as card_unknown."""
    assert CITY.normalise(text) == number


def test_a_city_with_seven_digit_numbers_turns_it_off() -> None:
    seven = card_number_format(CardsSection(strip_extra_zero=False))
    assert seven.normalise("01-0000018") == "01-0000018"
    assert seven.normalise("010000185") == "01-0000185"
    assert CardNumberFormat().normalise("01-0000018") == "01-0000018"  # the pure default


def test_the_number_digits_are_configurable() -> None:
    fmt = card_number_format(
        CardsSection(number_pattern=r"^\d{2}-\d{7,8}$", digit_lengths=(9, 10), number_digits=7)
    )
    assert fmt.normalise("01-00000018") == "01-0000018"
    assert fmt.normalise("01-0000018") == "01-0000018"
    with pytest.raises(CardNumberError):
        fmt.normalise("01-000018")
