"""The page's pure modules in a real browser, checked against the Python side.

The cashier types the amount on the page and the daemon stores grosze: if the two ever
read "12,5" differently the receipt shows another amount than the screen did. The page's
own Polish tables must know every code the daemon can send.
"""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from playwright.sync_api import Browser, Page

from ledger.money import AmountError, format_pln, parse_pln
from ledger.refusals import MESSAGES
from terminal.messages import API_MESSAGES, READ_MESSAGES
from tests.e2e.harness import REPO

pytestmark = pytest.mark.slow


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def web_server() -> Iterator[str]:
    """The page's files at /web/ on loopback (no daemon needed for pure modules)."""
    handler = functools.partial(_Quiet, directory=str(REPO / "terminal"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    thread.join(timeout=5)
    server.server_close()


@pytest.fixture(scope="module")
def module_page(browser: Browser, web_server: str) -> Iterator[Page]:
    context = browser.new_context()
    pg = context.new_page()
    pg.goto(f"{web_server}/web/")  # the directory listing: any HTML page of that origin
    yield pg
    context.close()


def js_parse(page: Page, texts: list[str]) -> list[int | None]:
    result: list[int | None] = page.evaluate(
        "async (xs) => { const m = await import('/web/format.js');"
        " return xs.map((x) => m.parsePln(x)); }",
        texts,
    )
    return result


def py_parse(text: str) -> int | None:
    try:
        return parse_pln(text)
    except AmountError:
        return None


AMOUNT_CHARS = st.sampled_from(list("0123456789,.- \u00a0\tzłPLNa"))
amount_texts = st.one_of(
    st.text(AMOUNT_CHARS, max_size=14),
    st.builds(
        lambda zl, gr, sep, suffix: f"{zl}{sep}{gr}{suffix}",
        st.integers(0, 10**9),
        st.integers(0, 99).map(str),
        st.sampled_from([",", ".", ""]),
        st.sampled_from(["", " zł", "zł", " PLN", "\u00a0zł"]),
    ),
)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(texts=st.lists(amount_texts, min_size=1, max_size=20))
@example(texts=["123,45", "123.45", "12,5", "1 234,56 zł", "0,01", "abc", "", "12,345", "-5"])
def test_js_parse_pln_matches_ledger(module_page: Page, texts: list[str]) -> None:
    assert js_parse(module_page, texts) == [py_parse(t) for t in texts]


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(amounts=st.lists(st.integers(-(10**11), 10**11), min_size=1, max_size=20))
def test_js_format_pln_matches_ledger(module_page: Page, amounts: list[int]) -> None:
    shown: list[str] = module_page.evaluate(
        "async (xs) => { const m = await import('/web/format.js');"
        " return xs.map((x) => m.formatPln(x)); }",
        amounts,
    )
    # The page keeps "zł" on the amount's line with a no-break space; otherwise identical.
    assert shown == [format_pln(a).replace(" zł", "\u00a0zł") for a in amounts]


# The reason codes of CARDVIEW.benefits[].reason (docs/architecture.md §5.3 and the screen brief).
BENEFIT_REASON_CODES = {
    "inactive",
    "not_yet_valid",
    "expired",
    "age_below",
    "age_above",
    "program_missing",
    "points_below_threshold",
    "persons_limit_reached",
    "period_limit_reached",
    "offline_limit",
    "card_inactive",
}
# docs/architecture.md §5.3: refusal codes at least.
CONTRACT_REFUSALS = {
    "card_unknown",
    "card_blocked",
    "card_inactive",
    "benefit_unavailable",
    "points_locked",
    "insufficient_points",
    "offline_limit",
    "invalid_amount",
}


def test_page_tables_know_every_daemon_code(module_page: Page) -> None:
    tables: dict[str, list[str]] = module_page.evaluate(
        "async () => { const m = await import('/web/i18n.js');"
        " return { errors: Object.keys(m.ERRORS), reasons: Object.keys(m.BENEFIT_REASONS) }; }"
    )
    errors, reasons = set(tables["errors"]), set(tables["reasons"])
    assert reasons >= BENEFIT_REASON_CODES
    assert errors >= CONTRACT_REFUSALS
    daemon_codes = set(MESSAGES) | set(API_MESSAGES) | set(READ_MESSAGES)
    assert daemon_codes - errors - reasons == set()


def offline_banner(page: Page, health: dict[str, Any]) -> str | None:
    """The banner's text for ``health``, or None when it is hidden."""
    text: str | None = page.evaluate(
        "async (health) => { const m = await import('/web/status.js');"
        " const el = document.createElement('div'); m.renderOfflineBanner(el, health);"
        " return el.hidden ? null : el.textContent; }",
        health,
    )
    return text


def health(
    cards_age_s: float | None, *, offline: bool, status: str = "ok", printer: str = "online"
) -> Any:
    return {
        "status": status,
        "readers": [{"name": "msr", "kind": "serial", "state": "connected"}],
        "printer": {"state": printer},
        "sync": {
            "pending_entries": 0,
            "last_upload_at": None,
            "cards_age_s": cards_age_s,
            "offline": offline,
        },
        "ledger": {"head_seq": 0, "head_hash": "0" * 64},
    }


def test_offline_banner(module_page: Page) -> None:
    assert offline_banner(module_page, health(30, offline=False)) is None
    four_days = offline_banner(module_page, health(4 * 86400, offline=True, status="degraded"))
    assert four_days is not None
    assert "Tryb offline" in four_days
    assert "4 dni" in four_days
    never = offline_banner(module_page, health(None, offline=True))
    assert never is not None
    assert "Tryb offline" in never
    paper = offline_banner(
        module_page, health(30, offline=False, status="degraded", printer="paper_out")
    )
    assert paper is not None
    assert "Brak papieru" in paper
    assert "Tryb offline" not in paper


def _luhn_complete(prefix: str) -> str:
    digits = [int(c) for c in prefix + "0"]
    total = sum(
        (d * 2 - 9 if d * 2 > 9 else d * 2) if i % 2 else d for i, d in enumerate(reversed(digits))
    )
    return prefix + str((10 - total % 10) % 10)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    prefix=st.text("0123456789", min_size=12, max_size=18),
    sep=st.sampled_from(["", " ", "-"]),
)
def test_the_bank_card_guard_sees_every_luhn_run(module_page: Page, prefix: str, sep: str) -> None:
    pan = _luhn_complete(prefix)
    spaced = sep.join(pan[i : i + 4] for i in range(0, len(pan), 4))
    broken = pan[:-1] + str((int(pan[-1]) + 1) % 10)
    found: list[bool] = module_page.evaluate(
        "async (xs) => { const m = await import('/web/guard.js'); return xs.map(m.hasPan); }",
        [pan, spaced, f"nr {pan}!", "01-000018", "123,45", "12345678,90", broken[:12]],
    )
    assert found[:3] == [True, True, True]
    assert found[3:] == [False, False, False, False]
