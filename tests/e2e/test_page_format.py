"""The page's money parser and formatter agree with ledger.money, in a real browser.

The cashier types the amount on the page and the daemon stores grosze: if the two ever
read "12,5" differently the receipt shows another amount than the screen did.
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
    pg.goto(f"{web_server}/web/icon.svg")
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
