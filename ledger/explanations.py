"""Why a quote gives what it gives: one line per rule applied, in Polish.

The receipt and the cashier screen print these lines; their text lives in the one table
`TEXTS` below (the surface's translation point).
"""

from __future__ import annotations

import msgspec

from ledger.money import format_pln

TEXTS: dict[str, str] = {
    "purchase": "Zakup {amount}: {points} pkt "
    "(1 pkt za każde {per_point}, zaokrąglenie {rounding})",
    "multiplier": "Pakiet {program}: punkty ×{multiplier} (+{points} pkt)",
    "below_min_amount": "Kwota poniżej {min_amount} — bez punktów za zakup",
    "points_cap": "Limit punktów za jeden zakup: {cap} pkt",
    "benefit": "Benefit „{name}”{quantity}: {points} pkt",
    "override": "Punkty za benefit „{name}” zmienione przez kasjera na {points} pkt "
    "(zwykle {default} pkt), powód: {reason}",
    "redeem": "Wymiana {redeemed} pkt na rabat {discount}",
}

ROUNDING_PL: dict[str, str] = {
    "floor": "w dół",
    "ceil": "w górę",
    "half_up": "do najbliższej, połowa w górę",
}

UNIT_PL: dict[str, str] = {"pieces": "szt.", "hours": "godz."}

# The packages by their Polish names: a line never shows an internal code like "kdr".
PROGRAM_PL: dict[str, str] = {
    "mieszkaniec": "Mieszkaniec",
    "senior": "Senior",
    "kdr": "Karta Dużej Rodziny",
}


class Explanation(msgspec.Struct, frozen=True, kw_only=True):
    """One rule's effect: a stable code, the Polish line, and the points/grosze it moved."""

    code: str
    text_pl: str
    points: int = 0
    amount_gr: int = 0


def explain(code: str, *, points: int = 0, amount_gr: int = 0, **values: object) -> Explanation:
    """Build the explanation line ``code`` from `TEXTS` with the given values."""
    if isinstance(values.get("program"), str):
        program = str(values["program"])
        values["program"] = PROGRAM_PL.get(program, program)
    return Explanation(
        code=code,
        text_pl=TEXTS[code].format(points=points, **values),
        points=points,
        amount_gr=amount_gr,
    )


def quantity_suffix(quantity: int, unit: str) -> str:
    """' × 3 godz.' for more than one piece/hour, '' for a single use."""
    return "" if quantity == 1 else f" × {quantity} {UNIT_PL.get(unit, unit)}"


def pln(amount_gr: int) -> str:
    return format_pln(amount_gr)
