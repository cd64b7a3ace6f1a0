"""Debian's headless Chromium, driven by Playwright, for the dashboard's browser tests: every
request is recorded, and any that would leave 127.0.0.1 is refused."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

from playwright.sync_api import BrowserContext, ConsoleMessage, Page, Route, sync_playwright

from tests.conftest import prerequisite_missing

CHROMIUM = Path("/usr/bin/chromium")
# What works here: no sandbox (root in a container), no GPU, nothing phoning home.
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WAIT_MS = 30_000


class Browser:
    """One fresh profile; every request is recorded, and any not for 127.0.0.1 is refused."""

    def __init__(self, context: BrowserContext, screenshots: Path) -> None:
        self.context = context
        self.screenshots = screenshots
        self.requested: list[str] = []
        self.refused: list[str] = []
        self.console_errors: list[str] = []
        context.route("**/*", self._only_loopback)

    def _only_loopback(self, route: Route) -> None:
        url = route.request.url
        self.requested.append(url)
        if urlsplit(url).hostname == "127.0.0.1" or url.startswith(("data:", "blob:", "about:")):
            route.continue_()
        else:
            self.refused.append(url)
            route.abort()

    def open(self, url: str, *, clock: bool = False) -> Page:
        """A new tab at `url`; with `clock`, its timers run on Playwright's clock (`page.clock.run_for`)."""
        page = self.context.new_page()
        page.on("console", self._record_console_error)
        page.on("pageerror", lambda error: self.console_errors.append(str(error)))
        if clock:
            page.clock.install()
        page.goto(url)
        return page

    def _record_console_error(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.console_errors.append(message.text)

    def screenshot(self, page: Page, name: str) -> None:
        page.screenshot(path=self.screenshots / f"{name}.png", full_page=True)


@contextmanager
def loopback_browser(directory: Path, *, time_zone: str = "UTC") -> Iterator[Browser]:
    """A browser with its profile and screenshots under `directory`."""
    if not CHROMIUM.exists():
        prerequisite_missing(f"{CHROMIUM} is missing: `apt-get install chromium` (CI installs it in .ci/run)")
    screenshots = directory / "screenshots"
    screenshots.mkdir()
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            directory / "profile",
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_FLAGS,
            timezone_id=time_zone,
        )
        try:
            yield Browser(context, screenshots)
        finally:
            context.close()
