"""Card numbers: normalising what readers and cashiers give into the printed form."""

from __future__ import annotations

import re
from dataclasses import dataclass

DEFAULT_PATTERN = r"^\d{2}-\d{6,7}$"


class CardNumberError(ValueError):
    """The input is not a card number of this programme."""


@dataclass(frozen=True)
class CardNumberFormat:
    """How this city's numbers look: printed pattern, issuer digits, digits-only lengths.

    ``strip_extra_zero``: the city's own documents (the resident panel) print a number
    with one extra leading zero after the issuer (``01-0000018`` for ``01-000018``); with
    it on, a number part longer than ``number_digits`` that starts with a zero loses that
    one zero. A city whose numbers really have seven digits starting with 0 turns it off.
    """

    pattern: str = DEFAULT_PATTERN
    issuer_digits: int = 2
    digit_lengths: tuple[int, ...] = (8, 9)
    strip_extra_zero: bool = False
    number_digits: int = 6

    def __post_init__(self) -> None:
        object.__setattr__(self, "_re", re.compile(self.pattern))

    def matches(self, number: str) -> bool:
        return bool(self._re.fullmatch(number))  # type: ignore[attr-defined]

    def normalise(self, text: str) -> str:
        """'01000018', ' 01-000018 ' (and '01-0000018' with strip_extra_zero) -> '01-000018'."""
        t = text.strip().replace(" ", "")
        if t.isascii() and t.isdigit() and len(t) in self.digit_lengths:
            t = f"{t[: self.issuer_digits]}-{t[self.issuer_digits :]}"
        if self.strip_extra_zero:
            head, sep, tail = t.partition("-")
            if sep and len(tail) == self.number_digits + 1 and tail.startswith("0"):
                t = f"{head}-{tail[1:]}"
        if not self.matches(t):
            raise CardNumberError("not a card number")
        return t


DEFAULT_FORMAT = CardNumberFormat()


def mask(number: str) -> str:
    """Mask a card number for logs and receipts: '01-000018' -> '01-****18'."""
    if len(number) <= 4:
        return "*" * len(number)
    head, sep, tail = number.partition("-")
    if sep:
        return f"{head}-{'*' * max(len(tail) - 2, 1)}{tail[-2:]}"
    return f"{number[:2]}{'*' * (len(number) - 4)}{number[-2:]}"
