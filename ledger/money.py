"""Integer money (grosze) and points; the one place amounts are parsed and formatted."""

from __future__ import annotations

import re
from typing import NewType

Grosze = NewType("Grosze", int)
Points = NewType("Points", int)

# 1 point costs the partner 0.10 PLN net (programme offer to partners); the rules
# document may set another price (``Rules.point_cost_gr``).
PARTNER_COST_PER_POINT_GR = 10

_PLN_RE = re.compile(
    r"^\s*(?P<sign>-)?(?P<zl>\d{1,9})(?:[,.](?P<gr>\d{1,2}))?\s*(?:zł|PLN)?\s*$", re.ASCII
)


class AmountError(ValueError):
    """An amount the cashier typed cannot be read as PLN."""


def grosze(value: int) -> Grosze:
    """Make a grosze amount, refusing anything that is not an exact integer."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"grosze must be int, not {type(value).__name__}")
    return Grosze(value)


def parse_pln(text: str) -> Grosze:
    """Parse '123,45' (or '123.45', '123', '123,4') into grosze exactly."""
    m = _PLN_RE.match(text.replace("\u00a0", " ").replace(" ", ""))
    if not m:
        raise AmountError(f"nieprawidłowa kwota: {text!r}")
    gr_text = (m.group("gr") or "0").ljust(2, "0")
    value = int(m.group("zl")) * 100 + int(gr_text)
    return Grosze(-value if m.group("sign") else value)


def format_pln(amount: int, *, currency: bool = True) -> str:
    """Format grosze the Polish way: 1234567 -> '12 345,67 zł'."""
    sign = "-" if amount < 0 else ""
    zl, gr = divmod(abs(amount), 100)
    zl_text = f"{zl:,}".replace(",", "\u00a0")
    text = f"{sign}{zl_text},{gr:02d}"
    return f"{text} zł" if currency else text


def partner_cost_gr(points_granted: int, point_cost_gr: int = PARTNER_COST_PER_POINT_GR) -> Grosze:
    """What the partner pays the city for points granted, at the rules document's
    ``point_cost_gr`` (the programme's offer: 0.10 PLN a point)."""
    return Grosze(points_granted * point_cost_gr)
