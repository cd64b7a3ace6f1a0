"""The dashboard in a real browser: headless Chromium (Debian's package, driven by Playwright)
against `signpost run`, fed with referrals. Every page loads, its charts show the numbers the
events imply, it refreshes itself as events arrive, screenshots are saved, and no request
leaves 127.0.0.1."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import BrowserContext, Page, Route, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from tests.e2e.running import RunningPlatform, request, running_platform, wait_for
from tests.factories import CHILD, referral

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
OTHER_TENANT = "E06000024"

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def chromium() -> Path:
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} is missing: `apt-get install chromium` (CI installs it in .ci/run)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return CHROMIUM


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningPlatform]:
    with running_platform(tmp_path_factory.mktemp("dashboard"), OPS_SAMPLE_INTERVAL_S="1") as running:
        yield running


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

    def open(self, url: str) -> Page:
        page = self.context.new_page()
        page.on(
            "console", lambda message: message.type == "error" and self.console_errors.append(message.text)
        )
        page.on("pageerror", lambda error: self.console_errors.append(str(error)))
        page.goto(url)
        return page

    def screenshot(self, page: Page, name: str) -> None:
        page.screenshot(path=self.screenshots / f"{name}.png", full_page=True)


@pytest.fixture
def browser(chromium: Path, tmp_path: Path) -> Iterator[Browser]:
    screenshots = tmp_path / "screenshots"
    screenshots.mkdir()
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            tmp_path / "profile", executable_path=str(chromium), headless=True, args=CHROMIUM_FLAGS
        )
        try:
            yield Browser(context, screenshots)
        finally:
            context.close()


def dashboard_link(platform: RunningPlatform, label: str) -> str:
    match = re.search(rf"^{label}:\s+(http://\S+#token=\S+)$", platform.lines(), re.MULTILINE)
    assert match, platform.lines()
    return match.group(1)


def submit(platform: RunningPlatform, body: dict[str, Any]) -> str:
    token = platform.demo_token("practitioner", "school-ashley-primary")
    status, created = request(platform.url("intake", "/v1/referrals"), body, token=token)
    assert status == 201, created
    return str(created["id"])


def chart(page: Page, element_id: str) -> list[dict[str, Any]]:
    """The traces Plotly drew in the element (its data, read back from the DOM)."""
    traces: list[dict[str, Any]] = page.evaluate(
        """id => document.getElementById(id).data.map(t => ({
            name: t.name ?? null, x: t.x ?? null, y: t.y ?? null, labels: t.labels ?? null, values: t.values ?? null}))""",
        element_id,
    )
    return traces


def wait_for_chart(page: Page, element_id: str, predicate_js: str) -> list[dict[str, Any]]:
    """Wait until the chart is drawn (SVG present) and its traces satisfy `predicate_js(traces)`."""
    try:
        page.wait_for_function(
            f"""id => {{
                const el = document.getElementById(id);
                if (!el || !el.data || !el.querySelector('svg.main-svg')) return false;
                const traces = el.data;
                return ({predicate_js})(traces);
            }}""",
            arg=element_id,
            timeout=WAIT_MS,
        )
    except PlaywrightTimeout:
        drawn = page.evaluate("id => document.getElementById(id)?.data ?? null", element_id)
        status = page.text_content("#status")
        raise AssertionError(f"{element_id} on {page.url}: status {status!r}, traces {drawn!r}") from None
    return chart(page, element_id)


def wait_until(page: Page, condition_js: str, *, what: str) -> None:
    """Wait for a condition on the page; on failure say what the page said."""
    try:
        page.wait_for_function(condition_js, timeout=WAIT_MS)
    except PlaywrightTimeout:
        status = page.text_content("#status")
        shown = page.text_content("#content")
        raise AssertionError(f"{what} not reached on {page.url}: status {status!r}, page {shown!r}") from None


def table(page: Page, element_id: str) -> list[list[str]]:
    rows: list[list[str]] = page.evaluate(
        "id => [...document.querySelectorAll(`#${id} tbody tr`)].map(r => [...r.cells].map(c => c.textContent))",
        element_id,
    )
    return rows


def test_every_page_shows_what_the_events_imply(platform: RunningPlatform, browser: Browser) -> None:
    submit(platform, referral())  # ASD + SLCN: routed to autism outreach

    # The analyst's link from `signpost run`: the token rides in the fragment.
    overview = browser.open(dashboard_link(platform, "Dashboard, as the analyst"))
    wait_for_chart(overview, "outcomes-chart", "t => t[0].y[0] === 1")
    assert "token" not in overview.url  # the fragment is taken into the tab's storage, not left in the URL

    # More referrals arrive while the page is open: it refreshes itself.
    submit(
        platform, referral(need_codes=["PMLD"], child={**CHILD, "date_of_birth": "2023-01-01"})
    )  # unmatched
    submit(platform, referral(need_codes=["SEMH"], safeguarding_concern=True))  # escalated at once
    outcomes = wait_for_chart(overview, "outcomes-chart", "t => t[0].y.slice(0, 3).join() === '1,1,1'")
    assert outcomes[0]["x"] == [
        "Routed to support",
        "Unmatched",
        "Escalated: safeguarding",
        "Escalated: EHC needs assessment",
        "Awaiting decision",
    ]
    assert outcomes[0]["y"] == [1, 1, 1, 0, 0]
    needs = chart(overview, "needs-chart")[0]
    assert dict(zip(needs["x"], needs["y"], strict=True)) == {"ASD": 1, "SLCN": 1, "PMLD": 1, "SEMH": 1}
    assert overview.text_content("#submitted") == "3"
    assert overview.text_content("#escalated") == "1"
    browser.screenshot(overview, "overview")

    pages = {link.get_attribute("href"): link.text_content() for link in overview.locator("nav a").all()}
    assert list(pages) == [
        "/dashboard/",
        "/dashboard/drill-down",
        "/dashboard/what-works",
        "/dashboard/regional",
        "/dashboard/ops",
    ]

    overview.click("nav a[href='/dashboard/drill-down']")  # the token stays in the tab
    areas = wait_for_chart(overview, "areas-chart", "t => t.length === 4")
    assert {trace["name"]: (trace["x"][0], trace["y"][0]) for trace in areas} == {
        "ASD": ("Communication and interaction", 1),
        "SLCN": ("Communication and interaction", 1),
        "PMLD": ("Cognition and learning", 1),
        "SEMH": ("Social, emotional and mental health", 1),
    }
    assert sorted(table(overview, "needs-table")) == sorted(
        [
            ["Cognition and learning", "PMLD", "1", "33%"],
            ["Communication and interaction", "ASD", "1", "33%"],
            ["Communication and interaction", "SLCN", "1", "33%"],
            ["Social, emotional and mental health", "SEMH", "1", "33%"],
        ]
    )
    browser.screenshot(overview, "drill-down")

    overview.click("nav a[href='/dashboard/what-works']")
    decisions = wait_for_chart(overview, "decisions-chart", "t => t[0].values.join() === '1,1,1,0'")
    assert decisions[0]["labels"][:3] == ["Routed to support", "Unmatched", "Escalated: safeguarding"]
    assert overview.text_content("#offered-share") == "33%"
    browser.screenshot(overview, "what-works")

    regional = overview  # same tab, so the same token
    regional.goto(platform.url("analytics", f"/dashboard/regional?tenants={OTHER_TENANT}"))
    bars = wait_for_chart(regional, "regional-chart", "t => t.length === 5 && t[0].x.length === 2")
    assert {trace["name"]: trace["y"] for trace in bars} == {
        "Submitted": [3, 0],
        "Routed": [1, 0],
        "Unmatched": [1, 0],
        "Escalated": [1, 0],
        "Awaiting": [0, 0],
    }
    assert bars[0]["x"] == ["E06000023", OTHER_TENANT]
    browser.screenshot(regional, "regional")

    ops = browser.open(dashboard_link(platform, "Ops view, as ops"))
    wait_until(ops, "() => document.querySelectorAll('#health-table tbody tr').length === 3", what="health")
    assert [row[:2] for row in table(ops, "health-table")] == [
        ["intake", "ready"],
        ["routing", "ready"],
        ["analytics", "ready"],
    ]
    # Every group has read all six events (three submissions, two decisions, one escalation).
    lag = wait_for_chart(
        ops, "lag-chart", "t => t.length === 3 && t.every(g => g.y.length > 0 && g.y.every(v => v === 0))"
    )
    assert {trace["name"] for trace in lag} == {"signpost-intake", "signpost-routing", "signpost-analytics"}
    wait_until(
        ops,
        """() => [...document.querySelectorAll('#topics-table tbody tr')]
              .some(r => r.cells[0].textContent === 'signpost.referrals' && r.cells[2].textContent === '6')""",
        what="six records on signpost.referrals",
    )
    referrals_row = next(row for row in table(ops, "topics-table") if row[0] == "signpost.referrals")
    assert referrals_row[1] == "6"  # partitions, the platform's default
    assert referrals_row[4] != "never"
    rates = wait_for_chart(ops, "rate-chart", "t => t.length >= 3")
    assert "signpost.referrals" in {trace["name"] for trace in rates}
    assert ops.text_content("#dead-letters-total") == "0"
    browser.screenshot(ops, "ops")

    assert not browser.refused, browser.refused
    assert all(urlsplit(url).hostname == "127.0.0.1" for url in browser.requested)
    assert not browser.console_errors, browser.console_errors
    assert sorted(path.name for path in browser.screenshots.iterdir()) == [
        "drill-down.png",
        "ops.png",
        "overview.png",
        "regional.png",
        "what-works.png",
    ]


def test_a_tab_without_a_token_asks_for_one_and_roles_are_respected(
    platform: RunningPlatform, browser: Browser
) -> None:
    page = browser.open(platform.url("analytics", "/dashboard/"))
    page.wait_for_selector("#token-form", state="visible", timeout=WAIT_MS)
    assert page.is_hidden("#content")
    page.fill("#token-input", platform.demo_token("analyst", "la-insight"))
    page.click("#token-form button[type=submit]")
    wait_for_chart(page, "outcomes-chart", "t => t[0].y.length === 5")
    assert "analyst" in (page.text_content("#who") or "")

    # An analyst may not read the ops view: the page says so rather than showing nothing.
    page.click("nav a[href='/dashboard/ops']")
    wait_until(
        page, "() => document.getElementById('status').textContent.includes('may not read')", what="403"
    )
    browser.screenshot(page, "ops-refused")

    page.click("#sign-out")
    page.wait_for_selector("#token-form", state="visible", timeout=WAIT_MS)
    page.fill("#token-input", "not-a-token")
    page.click("#token-form button[type=submit]")
    wait_until(page, "() => document.getElementById('status').textContent.includes('refused')", what="401")
    assert not browser.refused, browser.refused


def test_pages_and_assets_are_served_from_the_installed_packages(platform: RunningPlatform) -> None:
    status, _ = wait_for(
        lambda: _get(platform.url("analytics", "/dashboard/assets/plotly.min.js")),
        timeout_s=10,
        what="plotly",
    )
    assert status == 200
    assert _get(platform.url("analytics", "/dashboard/nowhere"))[0] == 404
    assert _get(platform.url("analytics", "/dashboard/assets/..%2Fviews.py"))[0] == 404


def _get(url: str) -> tuple[int, bytes]:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
