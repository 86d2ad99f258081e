"""Fixtures of the browser tests: the real stack and headless Chromium (Debian's)."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, Playwright, sync_playwright

from tests.e2e.harness import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, Stack, logs_of, running_stack


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> object:
    report = yield
    if call.when == "call":
        item.stash[_FAILED] = bool(getattr(report, "failed", False))
    return report


_FAILED = pytest.StashKey[bool]()


# Package scope, not session: Playwright's sync API keeps an event loop running in the
# main thread while it is alive, and every asyncio test after the browser tests would
# then fail with "cannot be called from a running event loop".
@pytest.fixture(scope="package")
def playwright_instance() -> Iterator[Playwright]:
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="package")
def browser(playwright_instance: Playwright) -> Iterator[Browser]:
    b = playwright_instance.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    yield b
    b.close()


@pytest.fixture
def stack(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Stack]:
    with running_stack(tmp_path) as s:
        yield s
        if request.node.stash.get(_FAILED, False):
            print(logs_of(s))


@contextlib.contextmanager
def till_page(browser: Browser, width: int = 1024, height: int = 768) -> Iterator[Page]:
    """A touch screen of the till's size, in Polish and Warsaw time; no JavaScript errors."""
    context = browser.new_context(
        viewport={"width": width, "height": height},
        locale="pl-PL",
        timezone_id="Europe/Warsaw",
        has_touch=True,
    )
    context.set_default_timeout(10_000)
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    yield pg
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


@pytest.fixture
def page(browser: Browser, stack: Stack) -> Iterator[Page]:
    with till_page(browser) as pg:
        yield pg


@pytest.fixture
def shot(page: Page, request: pytest.FixtureRequest) -> Callable[[str], Path]:
    """Save a screenshot under test-artifacts/e2e/<test>-<step>.png."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    test = re.sub(r"[^A-Za-z0-9_]+", "_", request.node.name)

    def take(step: str) -> Path:
        path = ARTIFACTS / f"{test}-{step}.png"
        page.screenshot(path=str(path))
        return path

    return take
