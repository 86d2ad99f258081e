"""The Luhn check used to tell a payment card's PAN from a city card number."""

from __future__ import annotations

PAN_LENGTHS = range(12, 20)


def luhn_valid(digits: str) -> bool:
    """True when ``digits`` (ASCII digits only) passes the Luhn check."""
    if not digits or not (digits.isascii() and digits.isdigit()):
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def looks_like_pan(digits: str) -> bool:
    """A 12-19 digit Luhn-valid number: treat it as a payment card."""
    return len(digits) in PAN_LENGTHS and luhn_valid(digits)
