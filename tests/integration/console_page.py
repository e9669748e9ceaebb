"""The console driven in a real headless Chromium (Debian's package) through Playwright: the
browser's launch settings, where screenshots go, and a small page object for the tests."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Locator, Page, ViewportSize

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("CONSOLE_CHROMIUM", "/usr/bin/chromium")
# Screenshots of the main views, made by every run (git-ignored: test-output/).
SCREENSHOTS = ROOT / "test-output" / "console"
DESKTOP: ViewportSize = {"width": 1280, "height": 800}
PHONE: ViewportSize = {"width": 390, "height": 844}
WAIT_MS = 30_000  # the longest any one step waits: a test delivery ends within the stack's 2 s timeout
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",  # as root, in a container without user namespaces
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def why_no_browser() -> str | None:
    """Why the browser tests cannot run here, or None when they can."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the Python package playwright is missing (requirements-dev.txt lists it; `make test` installs it)"
    if not (Path(CHROMIUM).is_file() or shutil.which(CHROMIUM)):
        return (
            f"no Chromium at {CHROMIUM}: `make test` installs Debian's chromium package when it can "
            "(as root, with apt-get), and could not here; see docs/console.md"
        )
    return None


@contextmanager
def chromium() -> Iterator[Browser]:
    """One headless Chromium, with a fresh profile (Playwright makes a new user data dir)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=WAIT_MS)
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class Console:
    """One browser tab on the console, with what it logged and asked for."""

    page: Page
    base: str
    messages: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.page.set_default_timeout(WAIT_MS)
        self.page.on("console", lambda message: self.messages.append(f"{message.type}: {message.text}"))
        self.page.on("pageerror", lambda error: self.messages.append(f"pageerror: {error}"))
        self.page.on("request", lambda request: self.requests.append(request.url))

    def open(self) -> None:
        self.page.goto(f"{self.base}/console")
        self.page.wait_for_load_state("load")

    def login(self, token: str) -> None:
        self.page.fill("#token", token)
        self.page.get_by_role("button", name="Open", exact=True).click()

    def logged_in(self, token: str) -> None:
        self.open()
        self.login(token)
        self.page.locator("#app").wait_for(state="visible")
        self.wait_status(r"^Loaded at ")

    def status(self) -> str:
        return self.page.locator("#status").inner_text().strip()

    def wait_status(self, pattern: str) -> str:
        """Wait until the status line matches `pattern` (a regular expression)."""
        from playwright.sync_api import expect

        expect(self.page.locator("#status")).to_have_text(re.compile(pattern), timeout=WAIT_MS)
        return self.status()

    def create(self, url: str) -> None:
        self.page.fill("#create-url", url)
        self.page.get_by_role("button", name="Create and test").click()

    def card(self, url: str) -> Locator:
        return self.page.locator("#configs .card").filter(has=self.page.locator(".url", has_text=url))

    def wait_state(self, url: str, state: str) -> Locator:
        card = self.card(url)
        card.locator(f"h3 .badge[data-state='{state}']").wait_for()
        return card

    def session_storage(self) -> dict[str, Any]:
        stored: dict[str, Any] = self.page.evaluate("() => Object.fromEntries(Object.entries(sessionStorage))")
        return stored

    def shot(self, name: str, *, full_page: bool = False) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=full_page)
        return path

    def policy_violations(self) -> list[str]:
        return [m for m in self.messages if "Content Security Policy" in m or m.startswith("pageerror")]
