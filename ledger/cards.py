"""Card numbers: normalising what readers and cashiers give into the printed form."""

from __future__ import annotations

import re
from dataclasses import dataclass

DEFAULT_PATTERN = r"^\d{2}-\d{6,7}$"


class CardNumberError(ValueError):
    """The input is not a card number of this programme."""


@dataclass(frozen=True)
class CardNumberFormat:
    """How this city's numbers look: printed pattern, issuer digits, digits-only lengths."""

    pattern: str = DEFAULT_PATTERN
    issuer_digits: int = 2
    digit_lengths: tuple[int, ...] = (8, 9)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_re", re.compile(self.pattern))

    def matches(self, number: str) -> bool:
        return bool(self._re.fullmatch(number))  # type: ignore[attr-defined]

    def normalise(self, text: str) -> str:
        """'01000018' or ' 01-000018 ' -> '01-000018'; anything else raises."""
        t = text.strip().replace(" ", "")
        if t.isascii() and t.isdigit() and len(t) in self.digit_lengths:
            t = f"{t[: self.issuer_digits]}-{t[self.issuer_digits :]}"
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
