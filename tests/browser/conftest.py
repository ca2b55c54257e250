"""Fixtures for the browser tests: Debian's Chromium through Playwright, one context per browser
"user", and a page check (accessibility, phone width, screenshots, no request leaving the machine).

Without Chromium or Playwright the tests are skipped with the reason; with REQUIRE_BROWSER=1
(as .ci/run sets it) they fail instead, so CI can never pass by not running them.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlsplit

import pytest

from tests.browser import chromium
from tests.browser.a11y import accessibility_problems
from tests.support import PROJECT_ROOT

SCREENSHOT_ROOT = PROJECT_ROOT / "test-output" / "screenshots"
DESKTOP = {"width": 1024, "height": 800}
PHONE = {"width": 360, "height": 740}
LOCAL_HOSTS = {"127.0.0.1", "localhost"}
# Playwright's own timeouts are 30 s; everything here is local, so fail fast instead.
TIMEOUT_MS = 10_000


@pytest.fixture(scope="session")
def chromium_browser() -> Iterator[Any]:
    reason = chromium.unavailable_reason()
    if reason is not None:
        if chromium.REQUIRED:
            pytest.fail(f"browser tests cannot run: {reason} (required by REQUIRE_BROWSER=1)")
        pytest.skip(f"browser tests need Chromium and Playwright: {reason}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = chromium.launch(playwright)
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class BrowserSession:
    """Contexts (each one a separate browser profile with its own cookies) and page checks."""

    browser: Any
    shots: Path
    contexts: list[Any] = field(default_factory=list)
    external_requests: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    _count: int = 0

    def new_context(self) -> Any:
        context = self.browser.new_context(viewport=DESKTOP, locale="en-US")
        context.set_default_timeout(TIMEOUT_MS)
        context.route("**/*", self._only_local)
        context.on("console", self._console)
        self.contexts.append(context)
        return context

    def new_page(self, context: Any | None = None) -> Any:
        return (context or self.new_context()).new_page()

    def _only_local(self, route: Any) -> None:
        # The pages must work offline: anything that is not this machine is recorded and refused.
        if urlsplit(route.request.url).hostname in LOCAL_HOSTS:
            route.continue_()
        else:
            self.external_requests.append(route.request.url)
            route.abort()

    def _console(self, message: Any) -> None:
        # CSP violations ("Refused to apply inline style ...") and script errors; a 4xx status of the
        # failure pages themselves and the favicon's 404 are expected and not counted.
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            self.console_errors.append(message.text)

    def check(self, page: Any, name: str) -> None:
        """Accessibility smoke check, no horizontal scrolling on a phone, a screenshot of each width."""
        page.wait_for_load_state("load")
        problems = accessibility_problems(page)
        assert problems == [], f"accessibility problems on the {name} page: {problems}"
        self._count += 1
        stem = f"{self._count:02d}-{name}"
        page.screenshot(path=str(self.shots / f"{stem}.png"), full_page=True)
        size = page.viewport_size
        page.set_viewport_size(PHONE)
        try:
            overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
            assert overflow <= 0, f"the {name} page scrolls sideways by {overflow}px at {PHONE['width']}px"
            problems = accessibility_problems(page)
            assert problems == [], f"accessibility problems on the {name} page at phone width: {problems}"
            page.screenshot(path=str(self.shots / f"{stem}-phone.png"), full_page=True)
        finally:
            page.set_viewport_size(size)
        assert self.external_requests == [], f"requests left the machine: {self.external_requests}"
        assert self.console_errors == [], f"browser console errors: {self.console_errors}"


@pytest.fixture
def browser_session(chromium_browser, request) -> Iterator[BrowserSession]:
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
    shots = SCREENSHOT_ROOT / name
    shutil.rmtree(shots, ignore_errors=True)
    shots.mkdir(parents=True)
    session = BrowserSession(browser=chromium_browser, shots=shots)
    yield session
    for context in session.contexts:
        context.close()
    assert session.external_requests == [], f"requests left the machine: {session.external_requests}"
