"""One Polish text per refusal code: the engine's table or the API's, never both."""

from __future__ import annotations

import ast

from ledger.refusals import MESSAGES as ENGINE_MESSAGES
from terminal.api import STATUS_OF
from terminal.messages import API_MESSAGES, READ_MESSAGES, message
from tests.conftest import REPO_ROOT


def _raised_codes() -> set[str]:
    """Every literal code of ``Refused("…")`` and ``ApiError("…", …)`` under terminal/."""
    codes: set[str] = set()
    for path in (REPO_ROOT / "terminal").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in ("Refused", "ApiError")
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
            ):
                codes.add(node.args[0].value)
    return codes


def test_no_code_has_two_texts() -> None:
    tables = (API_MESSAGES, READ_MESSAGES, ENGINE_MESSAGES)
    for i, a in enumerate(tables):
        for b in tables[i + 1 :]:
            assert set(a) & set(b) == set()


def test_every_code_the_till_raises_has_its_own_text() -> None:
    codes = _raised_codes() | set(STATUS_OF)
    assert {"card_unknown", "rules_missing", "unauthorized", "sale_conflict"} <= codes
    fallback = API_MESSAGES["invalid_request"]
    missing = {c for c in codes - {"invalid_request"} if message(c) == fallback}
    assert missing == set()


def test_card_unknown_reads_the_same_from_a_reader_and_from_the_api() -> None:
    assert message("card_unknown") == ENGINE_MESSAGES["card_unknown"]
