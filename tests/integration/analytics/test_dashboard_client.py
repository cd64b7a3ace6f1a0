"""The dashboard's client in headless Chromium against canned API answers (tests/dashboard_api.py):
what a person sees when the API answers something awkward, without running the platform."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page

from tests.browser import WAIT_MS, Browser, loopback_browser
from tests.dashboard_api import TOKEN, CannedApi, refused
from tests.threaded_server import serve_in_thread


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[CannedApi, str]]:
    api = CannedApi()
    with serve_in_thread(api.app()) as url:
        yield api, url


@pytest.fixture
def api(served: tuple[CannedApi, str]) -> CannedApi:
    served[0].reset()
    return served[0]


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Browser]:
    with loopback_browser(tmp_path) as opened:
        yield opened
    assert not opened.refused, opened.refused


@pytest.fixture
def dashboard(served: tuple[CannedApi, str], browser: Browser, api: CannedApi) -> Dashboard:
    return Dashboard(browser, served[1])


class Dashboard:
    def __init__(self, browser: Browser, url: str) -> None:
        self.browser, self.url = browser, url

    def shown(self, path: str) -> Page:
        """The page at `path`, once its first answer is drawn."""
        page = self.browser.open(f"{self.url}{path}#token={TOKEN}")
        page.wait_for_selector("body[data-updates]", state="attached", timeout=WAIT_MS)
        return page

    def refused(self, path: str) -> Page:
        """The page at `path`, once it says why the API refused it."""
        page = self.browser.open(f"{self.url}{path}#token={TOKEN}")
        page.wait_for_selector("#status[data-kind=error]", timeout=WAIT_MS)
        return page


def plotly(page: Page, element_id: str, expression: str) -> Any:
    """`expression` evaluated with `chart` bound to the Plotly element."""
    return page.evaluate(f"id => (chart => {expression})(document.getElementById(id))", element_id)


def test_no_chart_offers_to_send_its_data_to_plotly_cloud(dashboard: Dashboard) -> None:
    page = dashboard.shown("/dashboard/drill-down")
    page.hover("#breakdown-chart")
    buttons = plotly(
        page, "breakdown-chart", "[...chart.querySelectorAll('.modebar-btn')].map(b => b.dataset.title)"
    )
    assert "Download plot as a PNG" in buttons and "Share chart..." not in buttons
    assert plotly(
        page, "breakdown-chart", "[chart._context.showSendToCloud, chart._context.plotlyServerURL]"
    ) == [
        False,
        "",
    ]


def test_a_refused_view_keeps_its_form_to_change_the_choices(dashboard: Dashboard, api: CannedApi) -> None:
    api.answer(
        "/v1/pulse/breakdown",
        refused("query.group_by", "already filtered by locality; group by another dimension"),
        status=422,
    )
    page = dashboard.refused("/dashboard/drill-down?locality=Ashley&group_by=locality")
    assert "already filtered by locality" in page.text_content("#status")
    assert page.is_visible("#view-form") and page.input_value("#view-form [name=locality]") == "Ashley"
    assert page.is_hidden("#breakdown-chart") and page.is_hidden("#breakdown-table")
