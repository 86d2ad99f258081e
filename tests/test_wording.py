"""docs/wording.md is the one reviewed table of the screen's and the printer's words.

Each row names a thing, the stem both surfaces share, the screen's terms (in
terminal/web/i18n.js), the printout's terms (in printer/texts.py) and words that must
appear in none of the text tables. A renamed text that drifts from the table fails here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest

from tests.conftest import REPO_ROOT

TABLE = REPO_ROOT / "docs" / "wording.md"
SCREEN = REPO_ROOT / "terminal" / "web" / "i18n.js"
PRINTOUT = REPO_ROOT / "printer" / "texts.py"
# Every table of words a cashier or a resident reads.
TEXT_TABLES = (
    SCREEN,
    PRINTOUT,
    REPO_ROOT / "terminal" / "messages.py",
    REPO_ROOT / "ledger" / "refusals.py",
    REPO_ROOT / "ledger" / "explanations.py",
)


@dataclass(frozen=True)
class Row:
    thing: str
    stem: str
    screen: tuple[str, ...]
    printout: tuple[str, ...]
    never: tuple[str, ...]


def _terms(cell: str) -> tuple[str, ...]:
    return tuple(re.findall(r"`([^`]+)`", cell))


def parse(markdown: str) -> list[Row]:
    """The rows of the table whose header starts with '| thing | stem |'."""
    rows: list[Row] = []
    inside = False
    for line in markdown.splitlines():
        if line.startswith("| thing | stem |"):
            inside = True
            continue
        if not inside:
            continue
        if not line.startswith("|"):
            break
        if set(line) <= set("|-: "):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 5:
            raise ValueError(f"a wording row needs 5 cells: {line!r}")
        (stem,) = _terms(cells[1])
        rows.append(Row(cells[0], stem, _terms(cells[2]), _terms(cells[3]), _terms(cells[4])))
    return rows


ROWS = parse(TABLE.read_text(encoding="utf-8"))


def test_the_table_is_there_and_covers_both_surfaces() -> None:
    assert len(ROWS) >= 15
    assert sum(1 for r in ROWS if r.screen and r.printout) >= 12
    things = {r.thing for r in ROWS}
    assert {"withdrawing a sale", "the printout", "closing the day"} <= things


@pytest.mark.parametrize("row", ROWS, ids=[r.thing for r in ROWS])
def test_both_surfaces_use_the_row_s_term(row: Row) -> None:
    screen = SCREEN.read_text(encoding="utf-8")
    printout = PRINTOUT.read_text(encoding="utf-8")
    for term in row.screen:
        assert term in screen, f"{row.thing}: the screen has no {term!r}"
        assert row.stem.lower() in term.lower(), f"{row.thing}: {term!r} is another word"
    for term in row.printout:
        assert term in printout, f"{row.thing}: the printout has no {term!r}"
        assert row.stem.lower() in term.lower(), f"{row.thing}: {term!r} is another word"


@pytest.mark.parametrize("row", [r for r in ROWS if r.never], ids=lambda r: r.thing)
def test_no_table_uses_a_word_the_row_rules_out(row: Row) -> None:
    for path in TEXT_TABLES:
        text = path.read_text(encoding="utf-8").lower()
        for word in row.never:
            assert word.lower() not in text, f"{path.name} says {word!r} ({row.thing})"


def test_the_parser_reads_a_row_and_refuses_a_short_one() -> None:
    good = "| thing | stem |\n|---|\n| a | `s` | `sa` `sb` | `SC` | `x` |\n\nafter"
    assert parse(good) == [Row("a", "s", ("sa", "sb"), ("SC",), ("x",))]
    with pytest.raises(ValueError, match="5 cells"):
        parse("| thing | stem |\n| a | `s` | `sa` |\n")


def test_an_explanation_names_the_package_not_its_code() -> None:
    from ledger.explanations import explain

    text = explain("multiplier", points=56, program="kdr", multiplier=2).text_pl
    assert text == "Pakiet Karta Dużej Rodziny: punkty ×2 (+56 pkt)"
    assert "kdr" not in text
