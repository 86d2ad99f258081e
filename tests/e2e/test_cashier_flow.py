"""The cashier's day in headless Chromium against the real daemon, reader, printer and city.

Each test gets its own city server, loopback printer, pty reader and daemon (tests/e2e/
harness.py); screenshots go to test-artifacts/e2e/.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.harness import (
    BLOCKED_CARD,
    CASHIER_NAME,
    CASHIER_PIN,
    RESIDENT_CARD,
    SENIOR_CARD,
    Stack,
    luhn_pan,
    wait_for,
)
from tests.e2e.test_login_roles import approve_by_clicks, approve_by_keyboard

pytestmark = pytest.mark.slow

Shot = Callable[[str], Path]


def pts(n: int) -> str:
    """Points as the page shows them: thousands split by a no-break space."""
    return f"{n:,}".replace(",", "\u00a0") + "\u00a0pkt"


def login_with_keypad(page: Page, stack: Stack) -> None:
    page.goto(stack.url)
    expect(page.locator("#login")).to_be_visible()
    page.get_by_role("button", name=CASHIER_NAME, exact=True).click()  # the name first
    for digit in CASHIER_PIN:
        page.locator("#keypad button", has_text=re.compile(f"^{digit}$")).click()
    page.locator("#login-submit").click()
    expect(page.locator("#pos")).to_be_visible()
    expect(page.locator("#cashier-name")).to_have_text(CASHIER_NAME)


def card_view(stack: Stack, number: str) -> dict[str, Any]:
    view: dict[str, Any] = stack.api("POST", "/api/v1/cards/resolve", {"input": number})
    return view


def sales(stack: Stack) -> list[dict[str, Any]]:
    return [e for e in stack.ledger() if e["kind"] == "sale"]


def test_sale_void_reprint_and_day_close(page: Page, stack: Stack, shot: Shot) -> None:
    login_with_keypad(page, stack)
    expect(page.locator("#status-readers")).to_contain_text("gotowy")
    expect(page.locator("#status-printer")).to_contain_text("gotowa")
    shot("01-logged-in")

    before = card_view(stack, RESIDENT_CARD)
    stack.swipe(RESIDENT_CARD)
    state = page.locator("#card-state")
    expect(state).to_have_attribute("data-active", "true")
    expect(state).to_contain_text("AKTYWNA")
    expect(page.locator("#holder-name")).to_have_text(before["holder"]["display_name"])
    expect(page.locator("#balance")).to_contain_text(pts(before["balance"]["points"]))
    expect(page.locator("#programs")).to_contain_text("ważny do")
    shot("02-card")

    # Available benefits come first; an unavailable one is greyed with its Polish reason.
    rows = page.locator(".benefit")
    flags = [rows.nth(i).get_attribute("data-available") for i in range(rows.count())]
    assert flags == sorted(flags, key=lambda f: f != "true")
    # One whose points the cashier may change (not locked), to exercise the override.
    benefit = next(
        b for b in before["benefits"] if b["available"] and not b["points_locked"] and b["points"]
    )
    override = benefit["points"] + 3
    # The demo partner's list has both kinds, so the checks below are never vacuous.
    assert any(b["points_locked"] for b in before["benefits"])
    assert any(not b["available"] for b in before["benefits"])
    for b in before["benefits"]:
        row = page.locator(f'.benefit[data-benefit="{b["id"]}"]')
        expect(row.locator(".icon-lock")).to_have_count(1 if b["points_locked"] else 0)
        if not b["available"]:
            # The page's own Polish words (with the date or points that say when), never
            # the bare code.
            reason = row.locator(".benefit-reason")
            expect(reason).not_to_have_text(b["reason"] or "")
            expect(reason).to_have_text(re.compile(r"^[a-ząćęłńóśźż][a-ząćęłńóśźż0-9 .:,()]{5,}$"))
    # A 1024x768 touch screen: every visible button is a finger-sized target.
    heights: list[float] = page.evaluate(
        "[...document.querySelectorAll('button')].filter((b) => b.offsetParent)"
        ".map((b) => b.getBoundingClientRect().height)"
    )
    assert heights
    assert min(heights) >= 40
    assert page.evaluate("document.documentElement.scrollWidth") <= 1024

    page.locator("#amount").fill("123,45")
    expect(page.locator("#quote-topay")).to_have_text("123,45\u00a0zł")

    page.locator(f'.benefit button[data-benefit="{benefit["id"]}"]').click()
    dialog = page.locator("#dialog")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text(benefit["name"])
    unit = {"pieces": "szt.", "hours": "godz."}[benefit.get("unit", "pieces")]
    expect(page.locator('label[for="use-quantity"]')).to_have_text(f"Liczba ({unit})")
    page.locator("#use-points").fill(str(override))
    page.locator("#dialog-confirm").click()
    expect(page.locator("#dialog-error")).to_have_text("Podaj powód zmiany punktów.")
    page.locator("#use-reason").fill("Stały klient")
    shot("03-use-confirmation")
    page.locator("#dialog-confirm").click()
    expect(dialog).to_be_hidden()
    expect(page.locator(f'.benefit[data-benefit="{benefit["id"]}"]')).to_contain_text("Wybrano")

    quote: dict[str, Any] = stack.api(
        "POST",
        "/api/v1/sales/quote",
        {
            "id": "00000000-0000-4000-8000-000000000000",
            "card": RESIDENT_CARD,
            "amount_gr": 12345,
            "benefit_ids": [benefit["id"]],
            "redeem_points": 100,
            "points_override": override,
            "override_reason": "Stały klient",
        },
    )
    page.locator('.redeem-option:has(input[value="100"])').click()
    expect(page.locator("#quote-discount")).to_have_text("−10,00 zł")
    expect(page.locator("#quote-topay")).to_have_text("113,45 zł")
    expect(page.locator("#quote-earn")).to_have_text("+" + pts(quote["points_earned"]))
    shot("04-quote")

    page.locator("#sale-confirm").click()
    approve_by_clicks(page)  # a cashier's points override needs a manager
    expect(page.locator("#result-title")).to_have_text("Transakcja zapisana")
    [sale] = sales(stack)
    assert sale["amount_gr"] == 12345
    assert sale["benefits"] == [benefit["id"]]
    assert sale["points_earned"] == quote["points_earned"]
    assert (sale["points_redeemed"], sale["discount_gr"]) == (100, 1000)
    assert (sale["points_override"], sale["override_reason"]) == (override, "Stały klient")
    expect(page.locator("#result-seq")).to_have_text(str(sale["seq"]))
    expect(page.locator("#result-points")).to_have_text("+" + pts(sale["points_earned"]))
    expect(page.locator("#result-balance")).to_have_text(pts(sale["balance_after"]))
    expect(page.locator("#result-receipt")).to_have_text(
        re.compile("^(wydrukowany|w kolejce do druku)$")
    )
    receipt = stack.api("GET", f"/api/v1/receipts/{sale['seq']}")
    expect(page.locator("#receipt-text")).to_have_text(receipt["text"])
    stack.wait_printed(b"01-****18")
    shot("05-result")

    # Void the last sale: a reason is required, then it is confirmed.
    page.locator("#result-void").click()
    expect(dialog).to_be_visible()
    page.locator("#dialog-confirm").click()
    expect(page.locator("#dialog-error")).to_have_text("Podaj powód anulowania.")
    page.locator("#void-reason").fill("Pomyłka kasjera — zła kwota")
    page.locator("#dialog-confirm").click()
    expect(page.locator("#result")).to_have_attribute("data-kind", "void")
    voids = [e for e in stack.ledger() if e["kind"] == "void"]
    assert [(v["ref"], v["reason"]) for v in voids] == [
        (sale["seq"], "Pomyłka kasjera — zła kwota")
    ]
    expect(page.locator("#action-void")).to_be_disabled()
    shot("06-void")

    printed_before = len(stack.printed())
    page.locator("#action-reprint").click()
    expect(page.locator("#toast")).to_have_text("Wysłano kopię wydruku (KOPIA) do drukarki.")
    stack.wait_printed(b"KOPIA", after=printed_before)
    # F8 shows the copy as printed; closing it returns to the screen.
    expect(page.locator("#copy-text")).to_contain_text("KOPIA")
    page.locator("#dialog-confirm").click()
    expect(dialog).to_be_hidden()

    page.locator("#action-close-day").click()
    expect(dialog).to_contain_text("raport Z")
    page.locator("#dialog-confirm").click()
    approve_by_clicks(page)
    expect(page.locator("#result")).to_have_attribute("data-kind", "day_close")
    close = stack.ledger()[-1]
    assert close["kind"] == "day_close"
    expect(page.locator("#summary-sales")).to_have_text(str(close["summary"]["sales"]))
    expect(page.locator("#receipt-text")).to_contain_text("RAPORT DOBOWY (Z)")
    stack.wait_printed("RAPORT DOBOWY".encode("cp852"))
    shot("07-day-close")

    # "Synchronizuj" uploads now: nothing is left pending.
    page.locator("#sync-now").click()
    expect(page.locator("#toast")).to_have_text("Synchronizacja zakończona.", timeout=20_000)
    expect(page.locator("#status-sync")).to_contain_text("do wysłania: 0")
    # With the city server gone the cashier is told the sync failed, not that it worked.
    stack.central.stop()
    page.locator("#sync-now").click()
    expect(page.locator("#toast")).to_have_text("Synchronizacja nie powiodła się.", timeout=40_000)


def test_blocked_card_shows_inactive(page: Page, stack: Stack, shot: Shot) -> None:
    login_with_keypad(page, stack)
    stack.swipe(BLOCKED_CARD)
    state = page.locator("#card-state")
    expect(state).to_have_attribute("data-active", "false")
    expect(state).to_contain_text("NIEAKTYWNA")
    expect(state).to_contain_text("zastrzeżona")
    # Nothing can be sold on it: no amount field, every "Użyj" disabled.
    expect(page.locator("#amount")).to_have_count(0)
    uses = page.locator(".btn-use")
    assert uses.count() > 0
    for i in range(uses.count()):
        expect(uses.nth(i)).to_have_js_property("disabled", True)
    shot("blocked-swiped")

    # Typed by hand, the same card gives the same verdict.
    page.locator("#action-cancel").click()
    expect(page.locator("#card-waiting")).to_be_visible()
    page.locator("#card-input").fill(BLOCKED_CARD)
    page.locator("#card-input").press("Enter")
    expect(page.locator("#card-state")).to_contain_text("NIEAKTYWNA")
    assert sales(stack) == []


def test_unknown_and_payment_cards_are_refused(page: Page, stack: Stack, shot: Shot) -> None:
    login_with_keypad(page, stack)
    stack.swipe("01-999998")
    expect(page.locator("#card-refusal")).to_have_attribute("data-reason", "card_unknown")
    expect(page.locator("#card-refusal")).to_contain_text("Nieznana karta")
    # A bank card's track 1 swiped by mistake: refused, and its number never shown.
    pan = luhn_pan("4" + "1" * 14)
    stack.pty.write(f"%B{pan}^KOWALSKA/ANNA^29121010000000000000?\r".encode())
    expect(page.locator("#card-refusal")).to_have_attribute("data-reason", "payment_card")
    expect(page.locator("#card-refusal")).to_contain_text("karta płatnicza")
    assert pan not in page.content()
    shot("payment-card")


def test_keyboard_only_flow(page: Page, stack: Stack, shot: Shot) -> None:
    page.goto(stack.url)
    # The names load from the daemon: a digit pressed before they show picks nobody.
    expect(page.locator(".cashier-choice").first).to_be_focused()
    page.keyboard.press("1")  # the first name on the list: Kasia
    expect(page.locator("#pin")).to_be_focused()
    page.keyboard.type("000000")
    page.keyboard.press("Enter")
    expect(page.locator("#login-error")).to_have_text("Nieprawidłowy PIN.")
    expect(page.locator("#pin")).to_be_focused()
    page.keyboard.type(CASHIER_PIN)
    page.keyboard.press("Enter")
    expect(page.locator("#pos")).to_be_visible()

    stack.swipe(RESIDENT_CARD)
    expect(page.locator("#card-state")).to_have_attribute("data-active", "true")
    page.keyboard.press("F2")
    expect(page.locator("#amount")).to_be_focused()
    page.keyboard.type("50.5")  # a dot works as well as a comma
    expect(page.locator("#quote-topay")).to_have_text("50,50\u00a0zł")

    # Tab to the first "Użyj" and take it with the keyboard; the focus ring is visible.
    use = page.locator(".benefit-available .btn-use").first
    benefit_id = use.get_attribute("data-benefit")
    for _ in range(40):
        if page.evaluate("document.activeElement?.dataset?.benefit") == benefit_id:
            break
        page.keyboard.press("Shift+Tab")
    expect(use).to_be_focused()
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline not in ("none", "")
    shot("focus-ring")
    page.keyboard.press("Enter")
    expect(page.locator("#dialog")).to_be_visible()
    page.keyboard.press("Enter")
    expect(page.locator(f'.benefit[data-benefit="{benefit_id}"]')).to_contain_text("Wybrano")

    page.keyboard.press("F2")
    page.keyboard.press("Enter")
    expect(page.locator("#result-title")).to_have_text("Transakcja zapisana")
    [sale] = sales(stack)
    assert (sale["amount_gr"], sale["benefits"]) == (5050, [benefit_id])
    shot("result")

    # F4 opens the void; Esc closes it and nothing is voided.
    page.keyboard.press("F4")
    expect(page.locator("#dialog")).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.locator("#dialog")).to_be_hidden()
    assert [e["kind"] for e in stack.ledger()] == ["sale"]

    # Enter starts the next customer; Esc on a shown card clears it. (Another card: the
    # reader drops the same card swiped again within its dedupe window.)
    page.keyboard.press("Enter")
    expect(page.locator("#card-waiting")).to_be_visible()
    expect(page.locator("#card-input")).to_be_focused()
    stack.swipe(SENIOR_CARD)
    expect(page.locator("#card-state")).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.locator("#card-waiting")).to_be_visible()

    # F10 closes the day from the keyboard too.
    page.keyboard.press("F10")
    page.keyboard.press("Enter")
    approve_by_keyboard(page)
    expect(page.locator("#result")).to_have_attribute("data-kind", "day_close")
    wait_for(
        "day_close entry", lambda: stack.ledger()[-1]["kind"] == "day_close" or None, timeout=5
    )


def test_polish_text_on_screen(page: Page, stack: Stack, shot: Shot) -> None:
    login_with_keypad(page, stack)
    assert page.evaluate("document.documentElement.lang") == "pl"
    stack.swipe(BLOCKED_CARD)
    expect(page.locator("#card-state")).to_contain_text("NIEAKTYWNA")
    view = card_view(stack, BLOCKED_CARD)
    expect(page.locator("#holder-name")).to_have_text(view["holder"]["display_name"])
    text = page.locator("body").inner_text()
    words = ("Numer karty", "Zamknij dzień", "Anuluj transakcję", "Użyj", "zastrzeżona", "Wyloguj")
    for word in words:
        assert word in text
    # No mojibake (UTF-8 read as Latin-1 gives "Ä…", "Å‚"), no replacement characters.
    assert not re.search("[\ufffd]|Ä[\x80-\xbf…]|Å[\x80-\xbf‚]", text)
    shot("polish")


def test_refused_sale_is_explained_and_changes_nothing(page: Page, stack: Stack) -> None:
    """A points override with two benefits is refused (422): the form stays as it was."""
    login_with_keypad(page, stack)
    view = card_view(stack, RESIDENT_CARD)
    open_ = [b for b in view["benefits"] if b["available"] and not b["points_locked"]]
    others = [b for b in view["benefits"] if b["available"] and b["id"] != open_[0]["id"]]
    unavailable = [b for b in view["benefits"] if not b["available"]]
    assert open_
    assert len(others) >= 2
    assert unavailable
    stack.swipe(RESIDENT_CARD)
    expect(page.locator("#card-state")).to_have_attribute("data-active", "true")
    page.locator("#amount").fill("10,00")
    page.locator(f'.benefit button[data-benefit="{open_[0]["id"]}"]').click()
    page.locator("#use-points").fill(str(open_[0]["points"] + 1))
    page.locator("#use-reason").fill("Próba")
    page.locator("#dialog-confirm").click()
    page.locator(f'.benefit button[data-benefit="{others[0]["id"]}"]').click()
    page.locator("#dialog-confirm").click()
    expect(page.locator("#quote-error")).to_contain_text("jednego benefitu")

    page.locator("#sale-confirm").click()
    approve_by_clicks(page)  # the override asks a manager first; the rules then refuse it
    expect(page.locator("#sale-status")).to_contain_text("jednego benefitu")
    assert sales(stack) == []
    for b in unavailable:
        # The property itself: Playwright also counts the row's aria-disabled as disabled.
        use = page.locator(f'.benefit button[data-benefit="{b["id"]}"]')
        expect(use).to_have_js_property("disabled", True)
    expect(page.locator("#amount")).to_be_enabled()
    expect(page.locator("#action-close-day")).to_be_enabled()

    # The next customer's card closes a question still open about this one.
    page.locator(f'.benefit button[data-benefit="{others[1]["id"]}"]').click()
    expect(page.locator("#dialog")).to_be_visible()
    stack.swipe(SENIOR_CARD)
    expect(page.locator("#dialog")).to_be_hidden()
    expect(page.locator("#card-number")).to_have_text(SENIOR_CARD)


def test_f10_twice_offers_the_copy_of_the_last_z_report(
    page: Page, stack: Stack, shot: Shot
) -> None:
    login_with_keypad(page, stack)
    page.keyboard.press("F10")
    page.keyboard.press("Enter")
    approve_by_keyboard(page)
    expect(page.locator("#result")).to_have_attribute("data-kind", "day_close")
    [z] = [e for e in stack.ledger() if e["kind"] == "day_close"]

    # Nothing sold since: no second Z report, the copy of the first is offered instead.
    page.keyboard.press("F10")
    page.keyboard.press("Enter")
    dialog = page.locator("#dialog")
    expect(dialog).to_contain_text("Dzień jest już zamknięty")
    expect(dialog).to_contain_text("nie było nowych transakcji")
    shot("already-closed")
    page.keyboard.press("Enter")  # "Drukuj kopię ostatniego raportu"
    expect(dialog).to_be_hidden()
    wait_for(
        "the Z report's copy on paper",
        lambda: stack.receipts.read_bytes().count(b"KOPIA") >= 2 or None,
        timeout=10,
    )
    assert [e["kind"] for e in stack.ledger()] == ["day_close"], "no second Z report"
    assert z["seq"] == 1


def test_f10_twice_copy_by_clicks_only(page: Page, stack: Stack) -> None:
    """Catches a copy button that answers only Enter (a touch till has no keyboard)."""
    login_with_keypad(page, stack)
    dialog = page.locator("#dialog")
    close_day = page.get_by_role("button", name="F10 Zamknij dzień")
    confirm = dialog.get_by_role("button", name="Tak, zamknij dzień")
    close_day.click()
    confirm.click()
    approve_by_clicks(page)
    expect(page.locator("#result")).to_have_attribute("data-kind", "day_close")
    close_day.click()
    confirm.click()
    expect(dialog).to_contain_text("Dzień jest już zamknięty")
    dialog.get_by_role("button", name="Drukuj kopię ostatniego raportu").click()
    # The copy is shown as printed; the first dialog closes only for an instant in between.
    expect(page.locator("#copy-text")).to_contain_text("KOPIA")
    dialog.get_by_role("button", name="Zamknij").click()
    expect(dialog).to_be_hidden()
    wait_for(
        "the Z report's copy on paper",
        lambda: stack.receipts.read_bytes().count(b"KOPIA") >= 2 or None,
        timeout=10,
    )
    assert [e["kind"] for e in stack.ledger()] == ["day_close"], "no second Z report"
