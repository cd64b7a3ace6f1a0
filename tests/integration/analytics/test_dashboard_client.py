"""The dashboard's client in headless Chromium against canned API answers (tests/dashboard_api.py):
what a person sees when the API answers something awkward, without running the platform."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page
from signpost.analytics.ops.models import HistoryPoint, OpsView, PartitionLagView, TopicView
from signpost.analytics.pulse.models import (
    DeclineRow,
    Declines,
    PeriodOut,
    Trend,
    TrendPoint,
    Waiting,
    WaitingRow,
    WhatWorks,
    WhatWorksRow,
)
from signpost.analytics.pulse.reader import Period

from tests.browser import WAIT_MS, Browser, loopback_browser
from tests.dashboard_api import (
    TOKEN,
    CannedApi,
    breakdown,
    count,
    ops_view,
    refused,
    scope,
    summary,
    withheld,
)
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

    def shown(self, path: str, *, clock: bool = False) -> Page:
        """The page at `path`, once its first answer is drawn."""
        page = self.browser.open(f"{self.url}{path}#token={TOKEN}", clock=clock)
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
    assert "already filtered by locality" in page.inner_text("#status")
    assert page.is_visible("#view-form") and page.input_value("#view-form [name=locality]") == "Ashley"
    assert page.is_hidden("#breakdown-chart") and page.is_hidden("#breakdown-table")


def categories(page: Page, element_id: str) -> dict[str, str]:
    """{category on the chart's axis: its tick label}, as Plotly drew them."""
    drawn: dict[str, str] = plotly(
        page,
        element_id,
        """Object.fromEntries(chart._fullLayout.xaxis._categories.map(category => {
            const axis = chart.layout.xaxis;
            const at = (axis.tickvals || []).indexOf(category);
            return [category, at < 0 ? category : axis.ticktext[at].replaceAll('<br>', ' ')];
        }))""",
    )
    return drawn


def first_column(page: Page, element_id: str) -> list[str]:
    cells: list[str] = page.evaluate(
        "id => [...document.querySelectorAll(`#${id} tbody tr`)].map(r => r.cells[0].textContent)", element_id
    )
    return cells


TWO_ST_MARYS = {"100001": "St Mary's (100001)", "100002": "St Mary's (100002)", "URN3": "Hillside"}


def test_groups_that_share_a_name_stay_apart_and_withheld_labels_stay_on_theirs(
    dashboard: Dashboard, api: CannedApi
) -> None:
    api.answer(
        "/v1/pulse/breakdown",
        breakdown(
            [
                ("100001", "St Mary's", withheld()),
                ("100002", "St Mary's", count(12)),
                ("URN3", "Hillside", count(7)),
            ]
        ),
    )
    page = dashboard.shown("/dashboard/drill-down?group_by=setting")
    assert categories(page, "breakdown-chart") == TWO_ST_MARYS
    assert plotly(page, "breakdown-chart", "chart.data[0].y") == [None, 12, 7]
    annotations = plotly(page, "breakdown-chart", "chart.layout.annotations.map(a => [a.x, a.text])")
    assert annotations == [[0, "<5"]]  # over the first St Mary's, the one withheld
    assert first_column(page, "breakdown-table") == [*TWO_ST_MARYS.values(), "Total"]


def test_provisions_that_share_a_name_stay_apart_on_what_works(dashboard: Dashboard, api: CannedApi) -> None:
    outcomes = {"needs_met": count(6)}
    api.answer_with(
        "/v1/pulse/what-works",
        lambda params: (
            200,
            WhatWorks(
                **scope(),
                group_by=params["group_by"],
                rows=[
                    WhatWorksRow(
                        group=group,
                        label=label,
                        completed=count(n),
                        needs_change=count(1.5),
                        rescored=count(n),
                        outcomes=outcomes,
                    )
                    for group, label, n in (
                        ("speech-north", "Speech therapy", 9),
                        ("speech-south", "Speech therapy", 6),
                    )
                ]
                if params["group_by"] == "provision"
                else [],
            ),
        ),
    )
    api.answer(
        "/v1/pulse/declines",
        Declines(
            **scope(),
            rows=[
                DeclineRow(
                    provision=provision,
                    label="Speech therapy",
                    declined=count(n),
                    by_reason={"no_capacity": count(n)},
                )
                for provision, n in (("speech-north", 7), ("speech-south", 5))
            ],
        ),
    )
    page = dashboard.shown("/dashboard/what-works")
    both = {"speech-north": "Speech therapy (speech-north)", "speech-south": "Speech therapy (speech-south)"}
    for chart in ("provision-chart", "outcomes-chart", "declines-chart"):
        assert categories(page, chart) == both, chart
    assert plotly(page, "declines-chart", "chart.data[0].y") == [7, 5]
    assert first_column(page, "declines-table") == list(both.values())


def test_provisions_that_share_a_name_stay_apart_on_the_overview(
    dashboard: Dashboard, api: CannedApi
) -> None:
    api.answer(
        "/v1/pulse/waiting",
        Waiting(
            **scope(),
            rows=[
                WaitingRow(
                    provision=provision,
                    label="Speech therapy",
                    days_to_accept=count(days),
                    accepted=count(8),
                    days_to_start=count(days + 10),
                    started=count(8),
                    advertised_waiting_weeks=None,
                )
                for provision, days in (("speech-north", 3), ("speech-south", 30))
            ],
        ),
    )
    page = dashboard.shown("/dashboard/")
    both = {"speech-north": "Speech therapy (speech-north)", "speech-south": "Speech therapy (speech-south)"}
    assert categories(page, "waiting-chart") == both
    assert plotly(page, "waiting-chart", "chart.data[0].y") == [3, 30]
    assert first_column(page, "waiting-table") == list(both.values())


def test_the_ops_page_says_kafka_is_down_from_the_start(dashboard: Dashboard, api: CannedApi) -> None:
    never_sampled = ops_view()
    never_sampled.error = "Kafka did not answer: KafkaConnectionError"
    never_sampled.dead_letters.total = None
    api.answer("/v1/ops", never_sampled)
    page = dashboard.shown("/dashboard/ops")
    assert page.text_content("#sampled") == (
        "The streams could not be sampled yet: Kafka did not answer: KafkaConnectionError."
    )
    assert page.text_content("#dead-letters-total") == "unknown"


def test_a_drill_down_of_many_groups_charts_the_largest_and_tables_them_all(
    dashboard: Dashboard, api: CannedApi
) -> None:
    rows = [(f"URN{n:03}", f"School {n}", count(n) if n >= 5 else withheld()) for n in range(1, 61)]
    api.answer("/v1/pulse/breakdown", breakdown(rows))
    page = dashboard.shown("/dashboard/drill-down?group_by=setting")
    assert plotly(page, "breakdown-chart", "chart.data[0].x") == [f"URN{n:03}" for n in range(60, 48, -1)]
    assert page.text_content("#breakdown-caption") == (
        "submitted by setting: the 12 highest of 60 groups charted; the table below has every group"
    )
    assert len(first_column(page, "breakdown-table")) == 61  # and the total


def refreshed(page: Page) -> int:
    """Let the page's refresh timer fire, and wait until it has drawn its answer: how many so far."""
    before = int(page.get_attribute("body", "data-updates") or 0)
    page.clock.run_for(page.evaluate("Number(document.body.dataset.refreshS) * 1000"))
    page.wait_for_function(f"() => Number(document.body.dataset.updates) > {before}", timeout=WAIT_MS)
    return before + 1


def test_updates_can_be_paused_and_each_one_is_not_announced(dashboard: Dashboard, api: CannedApi) -> None:
    page = dashboard.shown("/dashboard/drill-down", clock=True)
    refreshed(page)
    # The live region is for errors and changes of state, not a tick every 5 s.
    assert page.text_content("#status") == ""
    assert page.inner_text("#updated").startswith("Updated ")
    assert page.evaluate("document.getElementById('updated').closest('[aria-live]')") is None

    page.click("#pause")
    assert page.text_content("#pause") == "Resume updates"
    assert page.inner_text("#updated").endswith("updates paused.")
    asked = len(api.asked)
    page.clock.run_for(60_000)
    page.wait_for_timeout(300)
    assert len(api.asked) == asked
    page.click("#pause")
    assert page.text_content("#pause") == "Pause updates"
    page.wait_for_function("() => document.getElementById('updated').textContent.includes('refreshes every')")
    assert len(api.asked) > asked


def test_a_refresh_with_the_same_answer_leaves_tables_and_zoom_alone(
    dashboard: Dashboard, api: CannedApi
) -> None:
    page = dashboard.shown("/dashboard/drill-down?group_by=setting", clock=True)
    mark_first_row = "document.querySelector('#breakdown-table tbody tr').dataset.seen = 'yes'"
    first_row_seen = "document.querySelector('#breakdown-table tbody tr').dataset.seen ?? null"
    page.evaluate(mark_first_row)
    page.evaluate("Plotly.relayout('breakdown-chart', {'yaxis.range': [0, 5]})")
    refreshed(page)
    assert page.evaluate(first_row_seen) == "yes"  # not rebuilt: a reader's place in it is kept

    api.answer("/v1/pulse/breakdown", breakdown([("Ashley", "Ashley", count(13))], group_by="locality"))
    refreshed(page)
    assert page.evaluate(first_row_seen) is None
    assert plotly(page, "breakdown-chart", "chart.data[0].y") == [13]
    assert plotly(page, "breakdown-chart", "chart._fullLayout.yaxis.range") == [0, 5]  # the zoom survives


def rows(page: Page, element_id: str) -> list[list[str]]:
    cells: list[list[str]] = page.evaluate(
        "id => [...document.querySelectorAll(`#${id} tbody tr`)].map(r => [...r.cells].map(c => c.textContent))",
        element_id,
    )
    return cells


def answer_trends(
    api: CannedApi, interval: str, periods: list[Period], values: dict[str, list[int | None]]
) -> None:
    """Each trend measure's figures (None: withheld), one a period."""
    api.answer_with(
        "/v1/pulse/trend",
        lambda params: (
            200,
            Trend(
                **scope(),
                measure=params["measure"],
                description="",
                interval=interval,
                points=[
                    TrendPoint(
                        period=PeriodOut(start=period.start, end=period.end),
                        value=withheld() if value is None else count(value),
                        base=None,
                    )
                    for period, value in zip(periods, values[params["measure"]], strict=True)
                ],
            ),
        ),
    )


def test_the_overview_trend_has_a_table_of_its_figures(dashboard: Dashboard, api: CannedApi) -> None:
    weeks = [Period(date(2026, 3, 2), date(2026, 3, 8)), Period(date(2026, 3, 9), date(2026, 3, 15))]
    answer_trends(api, "week", weeks, {"submitted": [12, 9], "escalated": [0, 5], "unmatched": [None, 6]})
    page = dashboard.shown("/dashboard/")
    assert rows(page, "trend-table") == [
        ["2026-03-02 to 2026-03-08", "12", "0", "<5"],
        ["2026-03-09 to 2026-03-15", "9", "5", "6"],
    ]


@pytest.mark.parametrize(
    ("interval", "period", "named"),
    [
        (
            "week",
            Period(date(2026, 3, 1), date(2026, 3, 28)),  # 28 days from a Sunday: a 1-day week first
            [
                "2026-03-01 (part week, 1 day)",
                "2026-03-02 to 2026-03-08",
                "2026-03-09 to 2026-03-15",
                "2026-03-16 to 2026-03-22",
                "2026-03-23 to 2026-03-28 (part week, 6 days)",
            ],
        ),
        (
            "month",
            Period(date(2026, 1, 15), date(2026, 3, 31)),
            [
                "2026-01-15 to 2026-01-31 (part month, 17 days)",
                "2026-02-01 to 2026-02-28",
                "2026-03-01 to 2026-03-31",
            ],
        ),
    ],
)
def test_the_trend_names_each_period_by_its_days_and_marks_part_ones(
    dashboard: Dashboard, api: CannedApi, interval: str, period: Period, named: list[str]
) -> None:
    parts = period.split(interval)
    answer_trends(
        api,
        interval,
        parts,
        {measure: [5] * len(parts) for measure in ("submitted", "escalated", "unmatched")},
    )
    page = dashboard.shown("/dashboard/")
    assert [row[0] for row in rows(page, "trend-table")] == named
    assert list(categories(page, "trend-chart").values()) == named


def ops_history() -> OpsView:
    view = ops_view()
    view.sampled_at = datetime(2026, 3, 2, 9, 0, 10, tzinfo=UTC)
    view.lag = [
        PartitionLagView(
            group=group,
            topic="signpost.referrals",
            partition=0,
            high_watermark=40,
            committed=40 - lag,
            lag=lag,
        )
        for group, lag in (("signpost-intake", 0), ("signpost-routing", 7))
    ]
    view.topics = [
        TopicView(
            topic="signpost.referrals", partitions=1, retained=40, events_per_second=0.5, last_event_at=None
        )
    ]
    view.history = [
        HistoryPoint(
            at=datetime(2026, 3, 2, 9, 0, second, tzinfo=UTC),
            events_per_second={"signpost.referrals": rate},
            lag={"signpost-intake": 0, "signpost-routing": lag},
        )
        for second, rate, lag in ((0, 1.0, 12), (5, 2.5, 9), (10, 0.5, 7))
    ]
    return view


def test_the_ops_charts_have_tables_and_lines_apart_by_more_than_colour(
    dashboard: Dashboard, api: CannedApi
) -> None:
    api.answer("/v1/ops", ops_history())
    page = dashboard.shown("/dashboard/ops")
    assert rows(page, "lag-table") == [
        ["signpost-intake", "signpost.referrals", "0", "40", "40", "0"],
        ["signpost-routing", "signpost.referrals", "0", "40", "33", "7"],
    ]
    assert rows(page, "history-table") == [
        ["signpost-intake", "messages behind", "0", "0"],
        ["signpost-routing", "messages behind", "7", "12"],
        ["signpost.referrals", "events/s", "0.50", "2.50"],
    ]
    lines = plotly(page, "lag-history-chart", "chart.data.map(t => [t.mode, t.line.dash, t.marker.symbol])")
    assert all(mode == "lines+markers" for mode, _, _ in lines)
    assert len({dash for _, dash, _ in lines}) == len({symbol for _, _, symbol in lines}) == len(lines) == 2


def test_a_change_in_a_rate_is_in_percentage_points(dashboard: Dashboard, api: CannedApi) -> None:
    changed = summary()
    for measure in changed.measures:
        if measure.measure in ("escalation_rate", "acceptance_rate"):
            fell = measure.measure == "acceptance_rate"
            measure.current, measure.previous = count(0.2 if fell else 0.25), count(0.25 if fell else 0.2)
            measure.change = count(-0.05 if fell else 0.05)
    api.answer("/v1/pulse/summary", changed)
    page = dashboard.shown("/dashboard/")
    changes = {row[0]: row[1:4] for row in rows(page, "measures-table")}
    assert changes["escalation rate"] == ["25.0%", "20.0%", "+5.0 pp"]
    assert changes["acceptance rate"] == ["20.0%", "25.0%", "-5.0 pp"]
    assert changes["submitted"] == ["10", "8", "+2"]


def paste_token(dashboard: Dashboard, pasted: str) -> Page:
    page = dashboard.browser.open(f"{dashboard.url}/dashboard/drill-down")
    page.wait_for_selector("#token-form", state="visible", timeout=WAIT_MS)
    page.fill("#token-input", pasted)
    page.click("#token-form button[type=submit]")
    return page


def test_a_token_pasted_across_lines_is_used_whole(dashboard: Dashboard, api: CannedApi) -> None:
    page = paste_token(dashboard, f"  {TOKEN[:30]}\n{TOKEN[30:60]}\r\n {TOKEN[60:]}\n")
    page.wait_for_selector("body[data-updates]", state="attached", timeout=WAIT_MS)
    assert {asked.headers["authorization"] for asked in api.asked} == {f"Bearer {TOKEN}"}


def test_a_token_no_request_can_carry_brings_the_token_form_back(
    dashboard: Dashboard, api: CannedApi
) -> None:
    page = paste_token(dashboard, "токен")  # not Latin-1: no HTTP header can carry it
    page.wait_for_selector("#status[data-kind=warning]", timeout=WAIT_MS)
    assert page.is_visible("#token-form")
    assert "cannot carry" in page.inner_text("#status")
    assert api.asked == []


def test_names_from_the_api_are_drawn_as_text_not_markup(dashboard: Dashboard, api: CannedApi) -> None:
    """Provision names come from partners' feeds: Plotly would read tags and entities in them."""
    named = {"URN1": "<b>Little</b> Acorns", "URN2": "Bumps &amp; Babies", "URN3": "<a href=//x.co>Go</a>"}
    api.answer("/v1/pulse/breakdown", breakdown([(group, label, count(9)) for group, label in named.items()]))
    page = dashboard.shown("/dashboard/drill-down?group_by=setting")
    drawn = plotly(
        page,
        "breakdown-chart",
        """({ticks: [...chart.querySelectorAll('.xtick text')].map(t =>
                [...t.querySelectorAll('tspan.line')].map(line => line.textContent).join(' ') || t.textContent),
            marked: chart.querySelectorAll('.xtick a, .xtick [style*="bold"]').length})""",
    )
    assert drawn == {"ticks": list(named.values()), "marked": 0}
