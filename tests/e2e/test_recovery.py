"""The page survives the daemon dying under it: kill -9 and restart, a frozen daemon."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.harness import RESIDENT_CARD, SENIOR_CARD, Stack
from tests.e2e.test_cashier_flow import card_view, login_with_keypad, pts, sales

pytestmark = pytest.mark.slow

Shot = Callable[[str], Path]


def test_page_reconnects_after_sigkill_and_restart(page: Page, stack: Stack, shot: Shot) -> None:
    login_with_keypad(page, stack)
    stack.swipe(RESIDENT_CARD)
    expect(page.locator("#card-state")).to_have_attribute("data-active", "true")
    page.locator("#amount").fill("20,00")
    page.locator("#amount").press("Enter")
    expect(page.locator("#result-title")).to_have_text("Transakcja zapisana")
    [sale] = sales(stack)

    stack.kill_daemon()
    banner = page.locator("#conn-banner")
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("Brak połączenia z terminalem")
    shot("01-daemon-killed")

    stack.start_daemon()
    expect(banner).to_be_hidden(timeout=15_000)
    # The signed session outlives the process: still logged in, no PIN again.
    expect(page.locator("#pos")).to_be_visible()
    expect(page.locator("#status-readers")).to_contain_text("gotowy")
    expect(page.locator("#action-void")).to_be_enabled()

    # Swipes reach the page through the new daemon's event stream.
    stack.swipe(SENIOR_CARD)
    expect(page.locator("#card-number")).to_have_text(SENIOR_CARD)
    stack.swipe(RESIDENT_CARD)
    expect(page.locator("#card-number")).to_have_text(RESIDENT_CARD)
    # The committed sale survived kill -9: the balance includes it.
    balance = card_view(stack, RESIDENT_CARD)["balance"]["points"]
    assert balance == sale["balance_after"]
    expect(page.locator("#balance")).to_contain_text(pts(balance))
    shot("02-recovered")

    # "Void last" still points at the sale made before the crash, also after a reload
    # with nothing remembered in the tab: the page finds it in the ledger.
    page.evaluate("sessionStorage.clear()")
    page.reload()
    expect(page.locator("#pos")).to_be_visible()
    expect(page.locator("#action-void")).to_be_enabled()
    page.keyboard.press("F4")
    page.locator("#void-reason").fill("Klient zrezygnował")
    page.keyboard.press("Enter")
    expect(page.locator("#result")).to_have_attribute("data-kind", "void")
    assert [(e["kind"], e["ref"]) for e in stack.ledger()] == [
        ("sale", None),
        ("void", sale["seq"]),
    ]

    page.evaluate("sessionStorage.clear()")
    page.reload()
    expect(page.locator("#action-reprint")).to_be_enabled()
    expect(page.locator("#action-void")).to_be_disabled()  # voided already

    # A session that is no longer valid sends the cashier to the PIN pad on reconnect.
    page.context.clear_cookies()
    stack.kill_daemon()
    expect(page.locator("#conn-banner")).to_be_visible()
    stack.start_daemon()
    expect(page.locator("#login")).to_be_visible(timeout=15_000)


def test_sale_retried_with_the_same_id_is_written_once(
    page: Page, stack: Stack, shot: Shot
) -> None:
    """A frozen daemon: the first POST times out in the page and is retried; both reach it."""
    login_with_keypad(page, stack)
    stack.swipe(RESIDENT_CARD)
    expect(page.locator("#card-state")).to_have_attribute("data-active", "true")
    page.locator("#amount").fill("77,70")
    expect(page.locator("#quote-topay")).to_have_text("77,70\u00a0zł")

    assert stack.daemon.proc is not None
    pid = stack.daemon.proc.pid
    os.kill(pid, signal.SIGSTOP)
    try:
        page.locator("#sale-confirm").click()
        expect(page.locator("#sale-status")).to_contain_text("ponawiam", timeout=20_000)
        shot("retrying")
    finally:
        os.kill(pid, signal.SIGCONT)
    expect(page.locator("#result-title")).to_have_text("Transakcja zapisana", timeout=30_000)
    written = sales(stack)
    assert [(e["amount_gr"], e["seq"]) for e in written] == [(7770, 1)]
    expect(page.locator("#result-seq")).to_have_text("1")


def test_paper_out_is_shown_and_the_sale_still_commits(
    page: Page, stack: Stack, shot: Shot
) -> None:
    login_with_keypad(page, stack)
    stack.restart_printer("paper_out")
    stack.swipe(RESIDENT_CARD)
    expect(page.locator("#card-state")).to_have_attribute("data-active", "true")
    page.locator("#amount").fill("15,00")
    page.locator("#amount").press("Enter")
    expect(page.locator("#result-title")).to_have_text("Transakcja zapisana")
    [sale] = sales(stack)
    expect(page.locator("#status-printer")).to_contain_text("Brak papieru", timeout=15_000)
    expect(page.locator("#offline-banner")).to_contain_text("wydruki czekają w kolejce")
    shot("paper-out")

    # Paper back in: the queued receipt prints once and the bar says so.
    printed = len(stack.printed())
    stack.restart_printer("online")
    stack.wait_printed(b"01-****18", after=printed, timeout=30)
    expect(page.locator("#status-printer")).to_contain_text("gotowa", timeout=15_000)
    assert [e["seq"] for e in sales(stack)] == [sale["seq"]]
