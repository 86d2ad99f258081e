"""The cashier's whole day by touch only and by keyboard only, at 1024×768 and 1280×800.

Every flow: card lookup, a sale with a benefit whose points are changed (with a reason),
a redemption tier, the void with its required reason, the copy (KOPIA), the day close.
The touch suite only taps (the on-screen keypads and keyboards, never a key press); the
keyboard suite never touches the mouse and presses Enter from wherever the focus is.
Each state is checked for clipped or covered key elements and saved as a screenshot in
test-artifacts/e2e/.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, Locator, Page, expect

from sync.central.demo_data import demo_number
from tests.e2e.conftest import till_page
from tests.e2e.harness import (
    ARTIFACTS,
    BLOCKED_CARD,
    CASHIER_NAME,
    CASHIER_PIN,
    MANAGER_NAME,
    MANAGER_PIN,
    RESIDENT_CARD,
    Stack,
    luhn_pan,
    wait_for,
)

pytestmark = pytest.mark.slow

SIZES = [(1024, 768), (1280, 800)]
NBSP = "\u00a0"


def pts(n: int) -> str:
    return f"{n:,}".replace(",", NBSP) + f"{NBSP}pkt"


def pln(gr: int) -> str:
    zl, rest = divmod(gr, 100)
    return f"{zl:,}".replace(",", NBSP) + f",{rest:02d}{NBSP}zł"


@pytest.fixture(params=SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
def size(request: pytest.FixtureRequest) -> tuple[int, int]:
    w, h = request.param
    return (w, h)


@pytest.fixture
def screen(browser: Browser, stack: Stack, size: tuple[int, int]) -> Iterator[Page]:
    """The till's touch screen at ``size`` (the daemon of ``stack`` behind it)."""
    with till_page(browser, *size) as pg:
        yield pg


class Shots:
    """Screenshots named <suite>-<size>-<nn>-<state>.png, then the layout checked."""

    def __init__(self, page: Page, suite: str, size: tuple[int, int]) -> None:
        self.page = page
        self.prefix = f"{suite}-{size[0]}x{size[1]}"
        self.n = 0
        ARTIFACTS.mkdir(parents=True, exist_ok=True)

    def __call__(self, state: str, *key: Locator) -> None:
        # The picture first: a failed check below is then seen as well as read.
        self.n += 1
        self.page.screenshot(path=str(ARTIFACTS / f"{self.prefix}-{self.n:02d}-{state}.png"))
        for el in key:
            assert_on_screen(self.page, el, state)


def assert_on_screen(page: Page, el: Locator, state: str) -> None:
    """``el`` is visible, wholly inside the viewport, and nothing covers its centre."""
    expect(el).to_be_visible()
    box = el.bounding_box()
    assert box is not None, f"{state}: {el} has no box"
    vp = page.viewport_size
    assert vp is not None
    inside = (
        box["x"] >= -0.5
        and box["y"] >= -0.5
        and box["x"] + box["width"] <= vp["width"] + 0.5
        and box["y"] + box["height"] <= vp["height"] + 0.5
    )
    assert inside, f"{state}: {el} is clipped: {box} in {vp}"
    # Clipped by a scrolling ancestor counts as clipped too: the element at its centre
    # must be the element itself (or inside it), not a toast or a neighbour.
    covered_by: str | None = el.evaluate(
        """(el) => {
            const r = el.getBoundingClientRect();
            const at = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
            if (at && (at === el || el.contains(at))) return null;
            return at ? (at.id || at.className || at.tagName) : "nothing";
        }"""
    )
    assert covered_by is None, f"{state}: {el} is covered by {covered_by!r}"
    # Nor cut by a box that scrolls or hides its overflow (a half-shown amount).
    cut_by: str | None = el.evaluate(
        """(el) => {
            const r = el.getBoundingClientRect();
            for (let a = el.parentElement; a; a = a.parentElement) {
              const s = getComputedStyle(a);
              if (s.overflowX === "visible" && s.overflowY === "visible") continue;
              const b = a.getBoundingClientRect();
              if (r.left < b.left - 0.5 || r.right > b.right + 0.5 || r.top < b.top - 0.5
                  || r.bottom > b.bottom + 0.5) return a.id || a.className || a.tagName;
            }
            return null;
        }"""
    )
    assert cut_by is None, f"{state}: {el} is cut by {cut_by!r}"


def assert_toast_clear_of(page: Page, *els: Locator) -> None:
    """While the toast shows, none of ``els`` lies under it."""
    toast = page.locator("#toast")
    if not toast.is_visible():
        return
    t = toast.bounding_box()
    assert t is not None
    for el in els:
        b = el.bounding_box()
        assert b is not None
        overlap = (
            t["x"] < b["x"] + b["width"]
            and b["x"] < t["x"] + t["width"]
            and t["y"] < b["y"] + b["height"]
            and b["y"] < t["y"] + t["height"]
        )
        assert not overlap, f"the toast {t} covers {el} {b}"


def card_view(stack: Stack, number: str) -> dict[str, Any]:
    view: dict[str, Any] = stack.api("POST", "/api/v1/cards/resolve", {"input": number})
    return view


def entries(stack: Stack, kind: str) -> list[dict[str, Any]]:
    return [e for e in stack.ledger() if e["kind"] == kind]


def open_benefit(view: dict[str, Any]) -> dict[str, Any]:
    """An available benefit whose points the cashier may change."""
    found: dict[str, Any] = next(
        b for b in view["benefits"] if b["available"] and not b["points_locked"] and b["points"]
    )
    return found


def status_bar_is_one_line(page: Page) -> None:
    height = page.locator("#statusbar").evaluate("(el) => el.getBoundingClientRect().height")
    assert height <= 56, f"the status bar wraps: {height}px"


# --- touch only ----------------------------------------------------------------------


def tap_keys(pad: Locator, text: str) -> None:
    for ch in text:
        pad.locator(f'button[data-key="{ch}"]').tap()


def type_on_keyboard(keyboard: Locator, text: str) -> None:
    """Tap ``text`` on an on-screen letter keyboard (a first capital comes by itself)."""
    for ch in text:
        keyboard.locator(f'button[data-key="{ch.lower()}"]').tap()


def cashier_button(page: Page) -> Locator:
    """The cashier's name on a login screen that asks for it before the PIN."""
    return page.locator("#login button", has_text=re.compile(rf"(^|\s){CASHIER_NAME}(\s|$)"))


def wait_for_login(page: Page, stack: Stack) -> Locator | None:
    """Open the page; the name button to choose first, or None when the PIN comes first."""
    page.goto(stack.url)
    name = cashier_button(page).first
    expect(page.locator("#pin:visible").or_(name).first).to_be_visible()
    return name if name.is_visible() else None


def approve(page: Page, done: Locator, *, touch: bool) -> None:
    """A points override or a day close needs a manager: their PIN on the same screen.

    Returns at once when ``done`` shows first (no approval was asked)."""
    approval = page.locator("#approval-text")
    expect(done.or_(approval).first).to_be_visible(timeout=15_000)
    if not approval.is_visible():
        return
    manager = page.locator("#approval-managers button", has_text=MANAGER_NAME)
    if touch:
        if manager.get_attribute("aria-pressed") != "true":
            manager.tap()
        tap_keys(page.locator("#approval-keypad"), MANAGER_PIN)
        page.locator("#dialog-confirm").tap()
    else:
        if manager.get_attribute("aria-pressed") != "true":
            tab_to(page, f"el && el.textContent.includes({MANAGER_NAME!r})")
            page.keyboard.press("Enter")
        expect(page.locator("#approval-pin")).to_be_focused()
        page.keyboard.type(MANAGER_PIN)
        page.keyboard.press("Enter")
    expect(approval).to_be_hidden()


def login_by_touch(page: Page, stack: Stack) -> None:
    name = wait_for_login(page, stack)
    if name is not None:
        name.tap()
    for digit in CASHIER_PIN:
        page.locator("#keypad button", has_text=re.compile(f"^{digit}$")).tap()
    page.locator("#login-submit").tap()
    expect(page.locator("#pos")).to_be_visible()
    expect(page.locator("#cashier-name")).to_have_text(CASHIER_NAME)


def test_the_whole_day_by_touch_only(screen: Page, stack: Stack, size: tuple[int, int]) -> None:
    page = screen
    shot = Shots(page, "touch", size)
    login_by_touch(page, stack)
    expect(page.locator("#status-printer")).to_contain_text("gotowa")
    status_bar_is_one_line(page)
    assert page.evaluate("document.documentElement.scrollWidth") <= size[0]
    shot("waiting", page.locator("#card-pad"), page.locator("#action-close-day"))

    # The card number tapped on the pad under the field.
    before = card_view(stack, RESIDENT_CARD)
    tap_keys(page.locator("#card-pad"), RESIDENT_CARD)
    expect(page.locator("#card-input")).to_have_value(RESIDENT_CARD)
    page.locator("#card-pad-search").tap()
    expect(page.locator("#card-state")).to_have_attribute("data-active", "true")
    expect(page.locator("#balance")).to_contain_text(pts(before["balance"]["points"]))
    shot("card", page.locator("#card-state"), page.locator("#balance"), page.locator("#amount"))

    # The amount on its keypad.
    tap_keys(page.locator("#amount-pad"), "123,45")
    expect(page.locator("#amount")).to_have_value("123,45")
    expect(page.locator("#quote-topay")).to_have_text(pln(12345))

    # A benefit with its points changed: the reason is required, tapped in letters.
    benefit = open_benefit(before)
    override = benefit["points"] + 3
    page.locator(f'.benefit button[data-benefit="{benefit["id"]}"]').tap()
    dialog = page.locator("#dialog")
    expect(dialog).to_be_visible()
    expect(page.locator("#use-reason-box")).to_be_hidden()
    plus = dialog.locator('button[data-step="+"][data-for="use-points"]')
    for _ in range(3):
        plus.tap()
    expect(page.locator("#use-points")).to_have_value(str(override))
    expect(page.locator("#use-reason-box")).to_be_visible()
    page.locator("#dialog-confirm").tap()
    expect(page.locator("#dialog-error")).to_have_text("Podaj powód zmiany punktów.")
    type_on_keyboard(page.locator("#use-reason-keys"), "stały klient")
    expect(page.locator("#use-reason")).to_have_value("Stały klient")
    shot(
        "override-reason",
        page.locator("#dialog-title"),
        page.locator("#use-reason"),
        page.locator("#dialog-confirm"),
        page.locator("#use-reason-keys button[data-key='ż']"),
    )
    page.locator("#dialog-confirm").tap()
    expect(dialog).to_be_hidden()
    row = page.locator(f'.benefit[data-benefit="{benefit["id"]}"]')
    expect(row).to_contain_text("Wybrano: 1 szt.")

    # The 100-point tier: "Do zapłaty" follows the tier and names the benefit.
    page.locator('.redeem-option:has(input[value="100"])').tap()
    expect(page.locator("#quote-discount")).to_have_text("−10,00\u00a0zł")
    expect(page.locator("#quote-topay")).to_have_text(pln(11345))
    expect(page.locator(f"#quote-benefit-{benefit['id']}")).to_contain_text(benefit["name"])
    shot(
        "quote",
        page.locator("#quote-topay"),
        page.locator("#sale-confirm"),
        page.locator(".benefit").first,
    )
    # The list keeps whole rows visible while the summary grows: at least three.
    visible_rows: int = page.evaluate(
        """() => { const box = document.querySelector('.benefits-section').getBoundingClientRect();
            return [...document.querySelectorAll('.benefit')].filter((r) => {
              const b = r.getBoundingClientRect();
              return b.top >= box.top && b.bottom <= box.bottom;
            }).length; }"""
    )
    assert visible_rows >= 3, f"only {visible_rows} whole benefit rows fit"

    page.locator("#sale-confirm").tap()
    title = page.locator("#result-title")
    approve(page, page.locator('#result[data-kind="sale"]'), touch=True)
    expect(title).to_have_text("Transakcja zapisana")
    [sale] = entries(stack, "sale")
    assert (sale["amount_gr"], sale["discount_gr"], sale["points_redeemed"]) == (12345, 1000, 100)
    assert (sale["points_override"], sale["override_reason"]) == (override, "Stały klient")
    expect(page.locator("#result-paid")).to_have_text(pln(11345))
    expect(page.locator("#result-balance")).to_have_text(pts(sale["balance_after"]))
    expect(page.locator("#receipt-text")).to_contain_text("Zapłacono")
    assert_toast_clear_of(page, title)
    shot("sale-result", title, page.locator("#result-paid"), page.locator("#result-new"))

    # The void: its reason is required; one tap on a usual one.
    page.locator("#result-void").tap()
    expect(dialog).to_be_visible()
    page.locator("#dialog-confirm").tap()
    expect(page.locator("#dialog-error")).to_have_text("Podaj powód anulowania.")
    page.locator('#void-reason-chips button[data-reason="Pomyłka kasjera"]').tap()
    expect(page.locator("#void-reason")).to_have_value("Pomyłka kasjera")
    shot("void-reason", page.locator("#dialog-confirm"), page.locator("#void-reason-keys"))
    page.locator("#dialog-confirm").tap()
    expect(page.locator("#result")).to_have_attribute("data-kind", "void")
    [void] = entries(stack, "void")
    assert (void["ref"], void["reason"]) == (sale["seq"], "Pomyłka kasjera")
    expect(title).to_have_text("Transakcja anulowana")
    expect(page.locator("#result-balance")).to_have_text(pts(before["balance"]["points"]))
    expect(page.locator("#receipt-text")).to_contain_text("ANULOWANIE")
    assert_toast_clear_of(page, title)
    shot("void-result", title, page.locator("#result-balance"))

    # F8 by touch: the copy is printed and shown as printed.
    printed = len(stack.printed())
    page.locator("#action-reprint").tap()
    copy = page.locator("#copy-text")
    expect(copy).to_contain_text("KOPIA")
    expect(copy).to_contain_text("ANULOWANIE")
    stack.wait_printed(b"KOPIA", after=printed)
    shot("copy", page.locator("#dialog-title"), page.locator("#dialog-confirm"))
    page.locator("#dialog-confirm").tap()
    expect(dialog).to_be_hidden()

    # Day close: the figures add up in one column, the range on one line.
    page.locator("#action-close-day").tap()
    dialog.get_by_role("button", name=re.compile("Tak, zamknij dzień")).tap()
    approve(page, page.locator('#result[data-kind="day_close"]'), touch=True)
    expect(page.locator("#result")).to_have_attribute("data-kind", "day_close")
    [z] = entries(stack, "day_close")
    s = z["summary"]
    expect(page.locator("#summary-sales")).to_have_text(str(s["sales"]))
    expect(page.locator("#summary-amount_gr")).to_have_text(pln(s["amount_gr"]))
    expect(page.locator("#summary-range")).to_have_text(f"{s['first_seq']}–{s['last_seq']}")
    expect(page.locator("#receipt-text")).to_contain_text("RAPORT DOBOWY (Z)")
    rights: list[float] = page.evaluate(
        "[...document.querySelectorAll('.result-facts dd')]"
        ".map((d) => d.getBoundingClientRect().right)"
    )
    assert max(rights) - min(rights) < 1, "the Z figures are not in one column"
    shot(
        "day-close",
        title,
        page.locator("#summary-range"),
        page.locator("#summary-partner_cost_gr"),
    )


# --- keyboard only -------------------------------------------------------------------


def focus_nothing(page: Page) -> None:
    """Put the focus on no control: where a cashier's click on empty space leaves it."""
    page.evaluate("document.activeElement && document.activeElement.blur()")


def tab_to(page: Page, js_test: str, *, backwards: bool = False) -> None:
    """Press Tab (or Shift+Tab) until ``js_test`` holds for the focused element."""
    for _ in range(60):
        if page.evaluate(f"(() => {{ const el = document.activeElement; return {js_test}; }})()"):
            return
        page.keyboard.press("Shift+Tab" if backwards else "Tab")
    raise AssertionError(f"Tab never reached {js_test}")


def login_by_keyboard(page: Page, stack: Stack) -> None:
    name = wait_for_login(page, stack)
    if name is not None:
        tab_to(page, f"el && el.tagName === 'BUTTON' && el.textContent.includes({CASHIER_NAME!r})")
        page.keyboard.press("Enter")
    expect(page.locator("#pin")).to_be_focused()
    page.keyboard.type(CASHIER_PIN)
    page.keyboard.press("Enter")
    expect(page.locator("#pos")).to_be_visible()


def test_the_whole_day_by_keyboard_only(screen: Page, stack: Stack, size: tuple[int, int]) -> None:
    page = screen
    shot = Shots(page, "keyboard", size)
    login_by_keyboard(page, stack)
    toast = page.locator("#toast")

    # Enter with no card and the focus nowhere: told what to do, the field is focused.
    expect(page.locator("#card-input")).to_be_focused()
    focus_nothing(page)
    page.keyboard.press("Enter")
    expect(toast).to_have_text(re.compile("przeciągnij, zeskanuj lub przyłóż kartę"))
    expect(page.locator("#card-input")).to_be_focused()
    shot("enter-without-card", page.locator("#card-input"))

    before = card_view(stack, RESIDENT_CARD)
    page.keyboard.type(RESIDENT_CARD)
    page.keyboard.press("Enter")
    expect(page.locator("#card-state")).to_have_attribute("data-active", "true")
    expect(page.locator("#amount")).to_be_focused()
    page.keyboard.type("80,00")
    expect(page.locator("#quote-topay")).to_have_text(pln(8000))

    # The benefit by keyboard, its points changed with a typed reason.
    benefit = open_benefit(before)
    tab_to(page, f"el && el.dataset && el.dataset.benefit === {benefit['id']!r}", backwards=True)
    page.keyboard.press("Enter")
    expect(page.locator("#use-quantity")).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.locator("#use-points")).to_be_focused()
    page.keyboard.press("Control+A")
    page.keyboard.type(str(benefit["points"] + 2))
    page.keyboard.press("Enter")
    expect(page.locator("#dialog-error")).to_have_text("Podaj powód zmiany punktów.")
    expect(page.locator("#use-reason")).to_be_focused()
    page.keyboard.type("Reklamacja klienta")
    shot("override-typed", page.locator("#use-reason"), page.locator("#dialog-confirm"))
    page.keyboard.press("Enter")
    expect(page.locator("#dialog")).to_be_hidden()
    expect(page.locator(f'.benefit[data-benefit="{benefit["id"]}"]')).to_contain_text("Wybrano")

    # The tier with the arrow keys; Enter on the chosen tier confirms the sale.
    tab_to(page, "el && el.name === 'redeem'")
    page.keyboard.press("ArrowRight")
    expect(page.locator("#quote-discount")).to_have_text("−10,00\u00a0zł")
    expect(page.locator("#quote-topay")).to_have_text(pln(7000))
    shot("tier-focused", page.locator("#quote-topay"), page.locator("#sale-confirm"))
    page.keyboard.press("Enter")
    approve(page, page.locator('#result[data-kind="sale"]'), touch=False)
    expect(page.locator("#result-title")).to_have_text("Transakcja zapisana")
    [sale] = entries(stack, "sale")
    assert (sale["amount_gr"], sale["points_redeemed"], sale["benefits"]) == (
        8000,
        100,
        [benefit["id"]],
    )
    assert (sale["points_override"], sale["override_reason"]) == (
        benefit["points"] + 2,
        "Reklamacja klienta",
    )
    expect(page.locator("#result-paid")).to_have_text(pln(7000))
    expect(page.locator("#result-new")).to_be_focused()
    shot("sale-result", page.locator("#result-title"), page.locator("#result-paid"))

    # F4 from the result: Enter with no reason says why; a typed reason voids.
    page.keyboard.press("F4")
    expect(page.locator("#void-reason")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("#dialog-error")).to_have_text("Podaj powód anulowania.")
    page.keyboard.type("Zła kwota")
    page.keyboard.press("Enter")
    expect(page.locator("#result")).to_have_attribute("data-kind", "void")
    expect(page.locator("#result-balance")).to_have_text(pts(before["balance"]["points"]))
    [void] = entries(stack, "void")
    assert void["reason"] == "Zła kwota"

    # F8 shows the copy; Enter closes it.
    page.keyboard.press("F8")
    expect(page.locator("#copy-text")).to_contain_text("KOPIA")
    shot("copy", page.locator("#copy-text"), page.locator("#dialog-confirm"))
    page.keyboard.press("Enter")
    expect(page.locator("#dialog")).to_be_hidden()

    # Enter from the receipt preview (a focusable box) starts the next customer.
    page.locator("#receipt-text").focus()
    page.keyboard.press("Enter")
    expect(page.locator("#card-waiting")).to_be_visible()
    expect(page.locator("#card-input")).to_be_focused()

    # A blocked card: Enter says why nothing can be sold; Esc clears it.
    stack.swipe(BLOCKED_CARD)
    expect(page.locator("#card-state")).to_have_attribute("data-active", "false")
    focus_nothing(page)
    page.keyboard.press("Enter")
    expect(toast).to_contain_text("nieaktywnej karcie")
    shot("enter-on-blocked", page.locator("#card-state"))
    page.keyboard.press("Escape")
    expect(page.locator("#card-waiting")).to_be_visible()

    # F10, Enter: the day is closed.
    page.keyboard.press("F10")
    page.keyboard.press("Enter")
    approve(page, page.locator('#result[data-kind="day_close"]'), touch=False)
    expect(page.locator("#result")).to_have_attribute("data-kind", "day_close")
    wait_for("day_close", lambda: entries(stack, "day_close") or None, timeout=5)
    shot("day-close", page.locator("#result-title"), page.locator("#summary-range"))


# --- the bank-card guard -------------------------------------------------------------


@pytest.mark.parametrize("size", [SIZES[0]], ids=["1024x768"], indirect=True)
def test_a_bank_card_number_never_stays_on_screen(
    screen: Page, stack: Stack, size: tuple[int, int]
) -> None:
    page = screen
    login_by_touch(page, stack)
    pan = luhn_pan("5" + "3" * 14)
    spaced = " ".join(pan[i : i + 4] for i in range(0, 16, 4))
    toast = page.locator("#toast")
    card_input = page.locator("#card-input")

    # Typed (or a scanner in keyboard mode) into the card field, Enter at the end.
    card_input.focus()
    page.keyboard.type(pan + "\n")
    expect(toast).to_contain_text("karty płatniczej")
    assert pan not in page.content()
    assert card_input.input_value() == ""

    # Pasted with spaces.
    card_input.fill(spaced)
    expect(card_input).to_have_value("")
    assert spaced not in page.content()

    # Tapped in on the card pad: cleared at the last digit.
    tap_keys(page.locator("#card-pad"), pan)
    expect(card_input).to_have_value("")

    # Into the amount field, by the pad and by a paste event.
    stack.swipe(RESIDENT_CARD)
    expect(page.locator("#card-state")).to_have_attribute("data-active", "true")
    tap_keys(page.locator("#amount-pad"), pan)
    expect(page.locator("#amount")).to_have_value("")
    page.locator("#amount").fill(pan)
    expect(page.locator("#amount")).to_have_value("")
    # A paste the guard refuses before the text lands.
    refused: bool = page.locator("#amount").evaluate(
        """(el, text) => { const dt = new DataTransfer(); dt.setData('text', text);
            const ev = new ClipboardEvent(
              'paste', { clipboardData: dt, cancelable: true, bubbles: true });
            return !el.dispatchEvent(ev); }""",
        spaced,
    )
    assert refused
    # A 16-digit run that fails Luhn is no card number either: never readable while there.
    page.locator("#amount").fill("1234567812345678")
    expect(page.locator("#amount")).to_have_class(re.compile(r"\bmasked\b"))
    assert pan not in page.content()
    assert entries(stack, "sale") == []


# --- why not, said once and with the numbers -----------------------------------------


@pytest.mark.parametrize("size", [SIZES[0]], ids=["1024x768"], indirect=True)
def test_a_refusal_says_why_once_with_the_numbers_and_what_next(
    screen: Page, stack: Stack, size: tuple[int, int]
) -> None:
    page = screen
    shot = Shots(page, "reasons", size)
    login_by_touch(page, stack)

    # 90 points: the tiers stay on screen, greyed, and the section says what is missing.
    few = card_view(stack, demo_number(3))
    assert few["balance"]["points"] < min(t["points"] for t in few["redeem_tiers"])
    stack.swipe(demo_number(3))
    expect(page.locator("#card-state")).to_have_attribute("data-active", "true")
    missing = 100 - few["balance"]["points"]
    expect(page.locator("#redeem-why")).to_have_text(
        f"Do wymiany potrzeba co najmniej 100 pkt — brakuje {missing} pkt."
    )
    expect(page.locator('.redeem-option input[value="100"]')).to_be_disabled()
    expect(page.locator("#programs")).to_contain_text("Karta Dużej Rodziny ważna do")
    shot("too-few-points", page.locator("#redeem-why"))

    # A replaced card: the reason once, with the next step; no benefit repeats it.
    stack.swipe(demo_number(6))
    state = page.locator("#card-state")
    expect(state).to_contain_text("NIEAKTYWNA")
    expect(page.locator("#card-error-message")).to_contain_text("Poproś o nową kartę (duplikat)")
    assert page.locator("body").inner_text().count("zastąpiona") == 1
    expect(page.locator(".benefit-reason")).to_have_count(0)
    expect(page.locator("#benefits-blocked")).to_be_visible()
    shot("replaced", state, page.locator("#benefits-blocked"))

    # Ended packages: the package expired, not the person.
    stack.swipe(demo_number(5))
    expect(page.locator("#card-error-message")).to_contain_text("Brak ważnego pakietu")
    expect(page.locator("#programs")).to_contain_text("pakiet wygasł")
    assert "Mieszkaniec wygasł" not in page.locator("body").inner_text()
    shot("expired-packages", page.locator("#card-state"), page.locator("#balance"))
