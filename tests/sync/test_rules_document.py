"""One benefit the till cannot read does not stop the rest (docs/architecture.md §5.6)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import structlog

from ledger.clock import FakeClock
from ledger.refusals import Refusal
from ledger.rules import SaleRequest, benefit_views, rules_problems
from sync.catalog import Catalog
from sync.wire import WireError, decode_rules
from tests.ledger.test_rules_support import FRESH, POLICY, Till, make_card, warsaw

NOON = warsaw(2026, 11, 18)


def document(**extra: Any) -> dict[str, Any]:
    return {
        "version": "r9",
        "benefits": [
            {"id": "kawa", "name": "Kawa -10%", "points": 5},
            {"id": "paliwo", "name": "Paliwo -5 gr", "unit": "litres", "limited": True},
            {"id": "basen", "name": "Basen", "period": "quarter", "uses_per_period": 1},
            {"name": 7},  # not even an id: kept under its position
        ],
        **extra,
    }


def test_one_unreadable_benefit_leaves_the_rest_of_the_document() -> None:
    """Bug: an unknown ``unit`` rejected the whole document (a new till: rules_missing)."""
    rules = decode_rules(json.dumps(document()))
    assert rules.version == "r9"
    assert [b.id for b in rules.benefits] == ["kawa", "paliwo", "basen", "benefits[3]"]
    assert [b.unsupported is None for b in rules.benefits] == [True, False, False, False]
    assert rules.benefits[1].name == "Paliwo -5 gr"
    assert "litres" in (rules.benefits[1].unsupported or "")

    views = benefit_views(make_card(), rules, Till().usage, NOON, catalog=FRESH, policy=POLICY)
    assert [(v.id, v.reason) for v in views] == [
        ("kawa", None),
        ("paliwo", "benefit_unsupported"),
        ("basen", "benefit_unsupported"),
        ("benefits[3]", "benefit_unsupported"),
    ]
    till = Till()
    entry = till.sell(make_card(), rules, SaleRequest(amount_gr=0, benefit_ids=("kawa",)), NOON)
    assert entry.benefit_points == {"kawa": 5}
    with pytest.raises(Refusal) as exc:
        till.sell(make_card(), rules, SaleRequest(amount_gr=0, benefit_ids=("paliwo",)), NOON)
    assert (exc.value.code, exc.value.reason, exc.value.benefit) == (
        "benefit_unavailable",
        "benefit_unsupported",
        "paliwo",
    )
    assert "Kasa nie rozpoznaje ustawień tego benefitu" in exc.value.message
    problems = rules_problems(rules)
    assert len(problems) == 3
    assert problems[0].startswith("benefits[paliwo] is not understood (")


@pytest.mark.parametrize(
    "data",
    ["[]", '"r1"', "{}", '{"benefits": []}', "{not json", '{"version": "r1", "earn": 5}'],
)
def test_a_document_without_a_version_is_rejected_whole(data: str) -> None:
    with pytest.raises(WireError):
        decode_rules(data)


async def test_catalogue_keeps_the_unsupported_marker_and_reports_once(tmp_path: Path) -> None:
    """The till restarts with the same rules: still selling, the bad benefit still marked."""
    clock = FakeClock(NOON)
    path = tmp_path / "catalog.sqlite"
    rules = decode_rules(json.dumps(document()))
    with structlog.testing.capture_logs() as logs:
        async with await Catalog.open(path, clock) as cat:
            await cat.set_rules(rules, '"e9"')
            await cat.set_rules(rules, '"e9"')  # the same version again: no second warning
    warnings = [e for e in logs if e["event"] == "rules_problems"]
    assert len(warnings) == 1
    assert warnings[0]["version"] == "r9"
    assert len(warnings[0]["problems"]) == 3
    async with await Catalog.open(path, clock) as cat:
        assert cat.rules == rules  # not None: the till is not rules_missing
