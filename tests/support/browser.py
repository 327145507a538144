"""A real headless Chromium for browser tests: Debian's ``/usr/bin/chromium`` through Playwright.

Playwright's own browser download is never used (it is not available here, and CI installs the
``chromium`` package instead: ``.ci/run``). One browser per test module (``browser`` fixture);
each test gets a fresh context and page (``page``) whose console errors and uncaught exceptions
are collected in ``page.errors`` (a ``ConsoleLog``). Screenshots go to ``build/screenshots/``
(ignored by git) via ``shoot``. Without Chromium the browser tests are skipped, except
under CI (``CI`` set), where that is a failure.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest


CHROMIUM = os.environ.get("SMARTFLOW_CHROMIUM", "/usr/bin/chromium")
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "build" / "screenshots"


@dataclass
class ConsoleLog:
    """What the page said on its console, errors apart."""

    errors: list[str] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)

    def on_console(self, msg: Any) -> None:
        self.lines.append(f"{msg.type}: {msg.text}")
        if msg.type == "error":
            self.errors.append(msg.text)

    def on_page_error(self, exc: Any) -> None:
        self.errors.append(f"uncaught: {exc}")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Chromium, headless, for the module; skipped (with the reason) where it is not installed."""
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        why = f"{CHROMIUM} not installed (.ci/run installs Debian's chromium package)"
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


def new_page(browser: Any, width: int = 1600, height: int = 1000) -> tuple[Any, ConsoleLog]:
    """A fresh context and page, with its console collected.

    The page's Content-Security-Policy is bypassed for the test's own probes only: Playwright
    evaluates ``wait_for_function`` strings, which a strict ``script-src`` forbids.
    """
    ctx = browser.new_context(viewport={"width": width, "height": height}, bypass_csp=True)
    page = ctx.new_page()
    log = ConsoleLog()
    page.on("console", log.on_console)
    page.on("pageerror", log.on_page_error)
    return page, log


def shoot(page: Any, name: str, full_page: bool = False) -> Path:
    """Save a screenshot under build/screenshots/ and return its path."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path
