"""Login and a manager's approval in headless Chromium against the real stack.

The cashier taps (or types the digit of) their name, then the PIN; a points override or
a day close asked by a cashier opens the manager's approval on the same screen
(docs/architecture.md §5.10). Screenshots go to test-artifacts/e2e/.
"""

from __future__ import annotations

import json
import re
import subprocess
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.harness import (
    CASHIER_NAME,
    CASHIER_PIN,
    KARTAPOS,
    MANAGER_NAME,
    MANAGER_PIN,
    PARTNER_ID,
    RESIDENT_CARD,
    Stack,
    wait_for,
)

pytestmark = pytest.mark.slow

Shot = Callable[[str], Path]
KASIA_ID = "P-0001-K01"


def tap_digits(page: Page, pad: str, digits: str) -> None:
    for digit in digits:
        page.locator(f'{pad} button[data-key="{digit}"]').tap()


def approve_by_keyboard(page: Page) -> None:
    """The manager's approval (the one manager is already chosen): PIN, Enter."""
    expect(page.locator("#dialog-title")).to_have_text("Zgoda kierownika")
    expect(page.locator("#approval-pin")).to_be_focused()
    page.keyboard.type(MANAGER_PIN)
    page.keyboard.press("Enter")


def approve_by_clicks(page: Page) -> None:
    """The manager's approval by pointer only: the name, the PIN keys, Zatwierdź."""
    expect(page.locator("#dialog-title")).to_have_text("Zgoda kierownika")
    page.locator("#dialog").get_by_role("button", name=MANAGER_NAME, exact=True).click()
    for digit in MANAGER_PIN:
        page.locator(f'#approval-keypad button[data-key="{digit}"]').click()
    page.locator("#dialog-confirm").click()


def entries(stack: Stack, kind: str) -> list[dict[str, Any]]:
    return [e for e in stack.ledger() if e["kind"] == kind]


def inside_viewport(page: Page, selector: str) -> None:
    """Every element of ``selector`` is wholly on screen, none under another."""
    size = page.viewport_size
    assert size is not None
    loc = page.locator(selector)
    assert loc.count() > 0, selector
    for i in range(loc.count()):
        box = loc.nth(i).bounding_box()
        assert box is not None, selector
        assert box["x"] >= 0, (selector, box)
        assert box["y"] >= 0, (selector, box)
        assert box["x"] + box["width"] <= size["width"], (selector, box)
        assert box["y"] + box["height"] <= size["height"], (selector, box)
        on_top = loc.nth(i).evaluate(
            "el => { const r = el.getBoundingClientRect();"
            " const hit = document.elementFromPoint(r.x + r.width / 2, r.y + r.height / 2);"
            " return el === hit || el.contains(hit); }"
        )
        assert on_top, (selector, i, "covered")


@pytest.mark.parametrize("size", [(1024, 768), (1280, 800)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_login_by_touch_the_name_then_the_pin(
    page: Page, stack: Stack, shot: Shot, size: tuple[int, int]
) -> None:
    page.set_viewport_size({"width": size[0], "height": size[1]})
    page.goto(stack.url)
    names = page.locator("#cashier-list .cashier-choice")
    expect(names).to_have_count(3)
    expect(page.locator("#login-title")).to_have_text("Wybierz kasjera")
    expect(page.locator("#pin")).to_be_hidden()
    heights = [names.nth(i).bounding_box()["height"] for i in range(3)]  # type: ignore[index]
    assert min(heights) >= 60, heights  # finger-sized targets
    inside_viewport(page, "#cashier-list .cashier-choice")
    expect(page.locator('.cashier-choice[data-role="manager"]')).to_have_attribute(
        "aria-label", MANAGER_NAME
    )
    shot("01-names")

    page.get_by_role("button", name=CASHIER_NAME, exact=True).tap()
    expect(page.locator("#login-cashier")).to_have_text(CASHIER_NAME)
    expect(page.locator("#pin")).to_be_visible()
    inside_viewport(page, "#keypad button")
    inside_viewport(page, "#login-submit")
    inside_viewport(page, "#login-back")
    tap_digits(page, "#keypad", "0000")
    page.locator("#login-submit").tap()
    expect(page.locator("#login-error")).to_have_text("Nieprawidłowy PIN.")
    expect(page.locator("#pin")).to_have_value("")
    shot("02-wrong-pin")

    # Another name: back to the list by touch.
    page.locator("#login-back").tap()
    expect(names).to_have_count(3)
    page.get_by_role("button", name=CASHIER_NAME, exact=True).tap()
    tap_digits(page, "#keypad", CASHIER_PIN)
    page.locator("#login-submit").tap()
    expect(page.locator("#pos")).to_be_visible()
    expect(page.locator("#cashier-name")).to_have_text(CASHIER_NAME)
    shot("03-logged-in")

    # "Wyloguj" ends the session on the terminal: back to the names, the cookie dead.
    page.get_by_role("button", name="Wyloguj").tap()
    expect(names).to_have_count(3)
    assert page.request.get(stack.url + "api/v1/health").status == 401


def test_login_by_keyboard_and_a_locked_cashier_says_when(page: Page, stack: Stack) -> None:
    page.goto(stack.url)
    expect(page.locator("#cashier-list .cashier-choice").first).to_be_focused()
    page.keyboard.press("2")  # the second name: Tomek
    expect(page.locator("#login-cashier")).to_have_text("Tomek")
    expect(page.locator("#pin")).to_be_focused()
    page.keyboard.press("Escape")
    expect(page.locator("#cashier-list")).to_be_visible()
    page.keyboard.press("1")
    expect(page.locator("#login-cashier")).to_have_text(CASHIER_NAME)
    for _ in range(3):
        page.keyboard.type("9999")
        page.keyboard.press("Enter")
        expect(page.locator("#login-error")).to_have_text("Nieprawidłowy PIN.")
        page.locator("#login-error").evaluate("el => { el.textContent = '' }")
    page.keyboard.type(CASHIER_PIN)
    page.keyboard.press("Enter")
    expect(page.locator("#login-error")).to_have_text(
        re.compile(r"^Zbyt wiele błędnych prób PIN-u tego kasjera\. Spróbuj ponownie za \d+ s\.$")
    )
    # Kasia waits; Tomek is not locked out by her failures.
    page.keyboard.press("Escape")
    page.keyboard.press("2")
    page.keyboard.type("56")
    page.locator("#login-title").click()  # the focus leaves the field: typing goes on
    page.keyboard.type("78")
    page.keyboard.press("Enter")
    expect(page.locator("#pos")).to_be_visible()
    expect(page.locator("#cashier-name")).to_have_text("Tomek")


def login_kasia(page: Page, stack: Stack) -> None:
    page.goto(stack.url)
    page.get_by_role("button", name=CASHIER_NAME, exact=True).tap()
    tap_digits(page, "#keypad", CASHIER_PIN)
    page.locator("#login-submit").tap()
    expect(page.locator("#pos")).to_be_visible()


def test_a_manager_approves_a_cashiers_points_override(
    page: Page, stack: Stack, shot: Shot
) -> None:
    login_kasia(page, stack)
    stack.swipe(RESIDENT_CARD)
    expect(page.locator("#card-state")).to_have_attribute("data-active", "true")
    page.locator("#amount").fill("20,00")
    page.locator('.benefit button[data-benefit="B-101"]').tap()
    page.locator("#use-points").fill("8")
    page.locator("#use-reason").fill("Stały klient")
    page.locator("#dialog-confirm").tap()
    expect(page.locator("#dialog")).to_be_hidden()
    page.locator("#sale-confirm").tap()

    dialog = page.locator("#dialog")
    expect(dialog.locator("#dialog-title")).to_have_text("Zgoda kierownika")
    expect(page.locator("#approval-text")).to_have_text(
        "Zmiana liczby punktów wymaga zgody kierownika."
    )
    # The one manager is already chosen; a wrong PIN is refused and asked again.
    expect(dialog.get_by_role("button", name=MANAGER_NAME, exact=True)).to_have_attribute(
        "aria-pressed", "true"
    )
    tap_digits(page, "#approval-keypad", "000000")
    page.locator("#dialog-confirm").tap()
    expect(page.locator("#dialog-error")).to_contain_text("Zgoda odrzucona")
    assert entries(stack, "sale") == []
    shot("01-approval-refused")
    page.locator("#approval-pin").fill("")
    tap_digits(page, "#approval-keypad", MANAGER_PIN)
    page.locator("#dialog-confirm").tap()
    expect(page.locator("#result-title")).to_have_text("Transakcja zapisana")
    [sale] = entries(stack, "sale")
    assert (sale["cashier"], sale["points_override"]) == (KASIA_ID, 8)
    assert sale["override_reason"] == "Stały klient"
    shot("02-approved")


def test_a_cashiers_day_close_asks_a_manager_by_keyboard(page: Page, stack: Stack) -> None:
    login_kasia(page, stack)
    stack.api("POST", "/api/v1/sales", _plain_sale())
    page.keyboard.press("F10")
    expect(page.locator("#dialog-title")).to_have_text(re.compile("Zamk"))
    page.keyboard.press("Enter")
    approve_by_keyboard(page)
    expect(page.locator("#result")).to_have_attribute("data-kind", "day_close")
    wait_for("day_close", lambda: entries(stack, "day_close") or None, timeout=5)
    [z] = entries(stack, "day_close")
    assert z["cashier"] == KASIA_ID


def test_a_cancelled_approval_writes_nothing(page: Page, stack: Stack) -> None:
    login_kasia(page, stack)
    stack.api("POST", "/api/v1/sales", _plain_sale())
    page.locator("#action-close-day").tap()
    page.locator("#dialog-confirm").tap()
    expect(page.locator("#dialog-title")).to_have_text("Zgoda kierownika")
    page.locator("#dialog-cancel").tap()
    expect(page.locator("#toast")).to_contain_text("zgoda kierownika")
    assert entries(stack, "day_close") == []


def _plain_sale() -> dict[str, Any]:
    return {"id": "01890000-0000-7000-8000-000000000001", "card": RESIDENT_CARD, "amount_gr": 900}


def test_a_cashier_left_out_of_new_rules_is_sent_back_to_the_names(
    page: Page, stack: Stack
) -> None:
    page.goto(stack.url)
    page.get_by_role("button", name="Tomek", exact=True).tap()
    tap_digits(page, "#keypad", "5678")
    page.locator("#login-submit").tap()
    expect(page.locator("#cashier-name")).to_have_text("Tomek")

    # The city publishes rules without Tomek; the till fetches them.
    token = stack.token_file.read_text().strip()
    req = urllib.request.Request(
        f"http://127.0.0.1:{stack.central_port}/v1/partners/{PARTNER_ID}/rules",
        headers={"Authorization": f"Bearer {token}"},
    )
    with urllib.request.urlopen(req, timeout=5) as resp:  # noqa: S310 - loopback http
        rules = json.loads(resp.read())
    rules["version"] = f"{rules['version']}-bez-tomka"
    rules["cashiers"] = [c for c in rules["cashiers"] if c["name"] != "Tomek"]
    doc = stack.root / "rules-without-tomek.json"
    doc.write_text(json.dumps(rules), encoding="utf-8")
    central = ["central", "-c", str(stack.root / "central.toml"), "load-rules"]
    subprocess.run([KARTAPOS, *central, PARTNER_ID, str(doc)], check=True, timeout=60)
    stack.api("POST", "/api/v1/sync")

    expect(page.locator("#cashier-list")).to_be_visible(timeout=15_000)
    expect(page.get_by_role("button", name="Tomek", exact=True)).to_have_count(0)
    expect(page.get_by_role("button", name=CASHIER_NAME, exact=True)).to_be_visible()
