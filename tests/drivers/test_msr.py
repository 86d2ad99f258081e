"""Magnetic-stripe decoding (ISO/IEC 7813)."""

from __future__ import annotations

import pytest

from drivers.msr import MsrError, decode_swipe, split_tracks
from ledger.cards import CardNumberFormat
from tests.drivers.helpers import FMT, make_pan


@pytest.mark.parametrize(
    ("swipe", "number"),
    [
        (";01000018?", "01-000018"),
        (";010000185?", "01-0000185"),
        (";01000018=2712101?", "01-000018"),
        ("%MIESZKANIEC^KOWALSKA/ANNA^2712?;01000018?", "01-000018"),
        ("%E?;01000018?+E?", "01-000018"),
        ("\x02;01000018?\x03", "01-000018"),
        (";01000018?\r\n", "01-000018"),
        (";01000018?+1234567890?", "01-000018"),
    ],
)
def test_city_card_number_from_track_2(swipe: str, number: str) -> None:
    assert decode_swipe(swipe, FMT) == number


@pytest.mark.parametrize(
    ("swipe", "reason"),
    [
        (";E?", "garbled"),
        ("%E?;E?+E?", "garbled"),
        ("%E?", "garbled"),
        (";01000018", "incomplete"),
        ("%ABC?;0100", "incomplete"),
        (";12345?", "not_a_card_number"),
        ("%NAME ONLY^X?", "not_a_card_number"),
        (";01A00018?", "garbled"),
        ("xx;01000018?", "garbled"),
        (";01000018?zz", "garbled"),
        (";01000018?;01000018?", "garbled"),
        ("", "garbled"),
        ("?", "garbled"),
    ],
)
def test_refusals(swipe: str, reason: str) -> None:
    with pytest.raises(MsrError) as err:
        decode_swipe(swipe, FMT)
    assert err.value.reason == reason
    assert str(err.value) == reason


def test_payment_card_track_1_is_refused_and_not_echoed() -> None:
    pan = make_pan(1)
    swipe = f"%B{pan}^KOWALSKI/JAN^2812101000000000?;{pan}=28121010000000000000?"
    with pytest.raises(MsrError) as err:
        decode_swipe(swipe, FMT)
    assert err.value.reason == "payment_card"
    assert pan not in repr(err.value)
    assert pan not in str(err.value.args)
    assert err.value.__cause__ is None
    assert err.value.__context__ is None


def test_payment_card_wins_even_beside_a_city_track_2() -> None:
    # A %B track is checked first: the city number next to it never makes it usable.
    pan = make_pan(2, length=15, prefix="37")
    with pytest.raises(MsrError) as err:
        decode_swipe(f"%B{pan}^X/Y^2812?;01000018?", FMT)
    assert err.value.reason == "payment_card"


def test_payment_card_only_track_2() -> None:
    pan = make_pan(3, length=19, prefix="6")
    with pytest.raises(MsrError) as err:
        decode_swipe(f";{pan}=2812101?", FMT)
    assert err.value.reason == "payment_card"


def test_luhn_invalid_b_track_is_not_called_a_payment_card() -> None:
    pan = make_pan(4)
    wrong = pan[:-1] + str((int(pan[-1]) + 1) % 10)
    with pytest.raises(MsrError) as err:
        decode_swipe(f"%B{wrong}^X/Y^2812?", FMT)
    assert err.value.reason == "not_a_card_number"


def test_track_numbers_follow_the_configured_format() -> None:
    fmt = CardNumberFormat(pattern=r"^\d{3}-\d{7}$", issuer_digits=3, digit_lengths=(10,))
    assert decode_swipe(";1230000018?", fmt) == "123-0000018"
    with pytest.raises(MsrError):
        decode_swipe(";01000018?", fmt)


def test_split_tracks_marks_failed_tracks() -> None:
    t = split_tracks("%E?;01000018?+E?")
    assert (t.track1, t.track2, t.track3) == ("E", "01000018", "E")
