"""`kartapos demo` end to end: the page's "simulate swipe" buttons drive its pty reader."""

from __future__ import annotations

import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.e2e.harness import (
    ARTIFACTS,
    CASHIER_NAME,
    CASHIER_PIN,
    KARTAPOS,
    Process,
    free_port,
    wait_for,
)

pytestmark = pytest.mark.slow


@pytest.fixture
def demo_url(tmp_path: Path) -> Iterator[str]:
    listen = f"127.0.0.1:{free_port()}"
    demo = Process(
        "demo",
        [
            KARTAPOS,
            "demo",
            "--listen",
            listen,
            "--central",
            f"127.0.0.1:{free_port()}",
            "--state-dir",
            str(tmp_path / "demo-state"),
        ],
        tmp_path / "demo.log",
        tmp_path,
    )
    demo.start()
    url = f"http://{listen}/"

    def page_served() -> bool | None:
        demo.check_alive()
        with urllib.request.urlopen(url, timeout=2) as resp:
            return True if resp.status == 200 else None

    try:
        wait_for("kartapos demo page", page_served, timeout=40)
        yield url
    finally:
        demo.kill()


@pytest.fixture
def demo_page(browser: Browser, demo_url: str) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1024, "height": 768}, locale="pl-PL")
    context.set_default_timeout(10_000)
    yield context.new_page()
    context.close()


def balance_in_sight(page: Page) -> None:
    """The demo buttons never push the balance out of sight (1024x768)."""
    expect(page.locator("#balance")).to_be_in_viewport(ratio=1)
    cut: bool = page.locator("#balance").evaluate(
        """(el) => { const r = el.getBoundingClientRect();
            const box = el.closest('.card-panel').getBoundingClientRect();
            return r.bottom > box.bottom + 0.5 || r.top < box.top - 0.5; }"""
    )
    assert not cut, "the balance is scrolled out of the card panel"


def test_simulated_swipes_show_cards(demo_page: Page, demo_url: str) -> None:
    page = demo_page
    page.goto(demo_url)
    page.locator(".cashier-choice", has_text=CASHIER_NAME).click()  # the name, then the PIN
    page.locator("#pin").fill(CASHIER_PIN)
    page.locator("#pin").press("Enter")
    expect(page.locator("#demo-panel")).to_be_visible()
    expect(page.locator("#demo-panel")).to_contain_text("Symuluj przeciągnięcie karty")

    page.locator('button[data-key="resident"]').click()
    expect(page.locator("#card-state")).to_have_attribute("data-active", "true")
    balance_in_sight(page)
    page.locator('button[data-key="blocked"]').click()
    expect(page.locator("#card-state")).to_contain_text("NIEAKTYWNA")
    expect(page.locator("#card-state")).to_contain_text("zastrzeżona")
    balance_in_sight(page)  # under the longer NIEAKTYWNA text too
    page.locator('button[data-key="payment"]').click()
    expect(page.locator("#card-refusal")).to_have_attribute("data-reason", "payment_card")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "test_demo-simulated-swipes.png"))


def test_doctor_passes_on_the_demos_own_config(demo_url: str, tmp_path: Path) -> None:
    """Catches a demo whose config exists only in memory (doctor had nothing true to check)."""
    config = tmp_path / "demo-state" / "kartapos-demo.toml"
    assert config.is_file()
    log = tmp_path / "demo.log"
    wait_for(
        "the banner", lambda: str(config) in log.read_text(errors="replace") or None, timeout=10
    )
    r = subprocess.run(
        [KARTAPOS, "doctor", "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "reader msr (serial): held by the running daemon" in r.stdout, r.stdout
    assert "daemon: running at" in r.stdout, r.stdout
