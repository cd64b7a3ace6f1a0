"""The dashboard in a real browser: headless Chromium (Debian's package, driven by Playwright)
against `signpost run`, fed with referrals. Every page loads, its charts show the numbers the
events imply, it refreshes itself as events arrive, screenshots are saved, and no request
leaves 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import re
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from aiokafka import AIOKafkaProducer
from playwright.sync_api import Page
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from signpost.shared.auth.principal import Role
from signpost.shared.auth.tokens import issue_dev_token
from signpost.shared.events import (
    Envelope,
    EventData,
    ReferralSubmittedV1,
    new_event,
    to_kafka_headers,
    to_kafka_value,
)
from signpost.shared.settings import SERVICE_NAMES
from signpost.shared.vocabulary import BroadArea, LevelOfNeed, NeedCode

from tests.browser import WAIT_MS, Browser, loopback_browser
from tests.e2e.running import RunningPlatform, request, running_platform, wait_for
from tests.factories import CHILD, referral

BROWSER_TIME_ZONE = "America/Los_Angeles"  # not UTC: a page showing local times where it says UTC is caught
TENANT, OTHER_TENANT = "E06000023", "E06000024"

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningPlatform]:
    with running_platform(tmp_path_factory.mktemp("dashboard"), OPS_SAMPLE_INTERVAL_S="1") as running:
        yield running


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Browser]:
    with loopback_browser(tmp_path, time_zone=BROWSER_TIME_ZONE) as opened:
        yield opened


def dashboard_link(platform: RunningPlatform, label: str) -> str:
    match = re.search(rf"^{label}:\s+(http://\S+#token=\S+)$", platform.lines(), re.MULTILINE)
    assert match, platform.lines()
    return match.group(1)


def token(platform: RunningPlatform, role: Role, organisation: str, tenant: str = TENANT) -> str:
    """A development token for any caller, signed with the running platform's development key."""
    return issue_dev_token(
        key_file=platform.output.parent / "data" / "dev-issuer" / "signing-key.pem",
        subject=f"{role.value}-{organisation}",
        role=role,
        organisation=organisation,
        tenant=tenant,
    )


@dataclass(frozen=True)
class Child:
    """One referral to feed and what the agency offered it does: a planned life, so the numbers are known."""

    locality: str
    setting: str
    needs: list[str]
    profile: dict[str, int]
    then: str = "wait"  # complete, decline:<reason>, or wait (no response, or no offer to respond to)
    rescore: dict[str, int] | None = None
    outcome: str = "needs_met"
    extra: dict[str, Any] | None = None


ASD = Child("Ashley", "URN100001", ["ASD"], {"communication_and_interaction": 3})
SPLD = Child("Bedminster", "URN200001", ["SPLD"], {"cognition_and_learning": 3})
# 16 referrals in the default area: 7 in Ashley, 9 in Bedminster.
CHILDREN: list[Child] = [
    *[replace(ASD, then="complete", rescore={"communication_and_interaction": 1})] * 3,  # autism outreach
    *[replace(ASD, setting="URN100002", then="complete", rescore={"communication_and_interaction": 1})] * 2,
    replace(ASD, then="decline:no_capacity"),  # no other autism provision: unmatched after the decline
    Child(
        "Ashley",
        "URN100001",
        ["SEMH"],
        {"social_emotional_mental_health": 4},
        extra={"safeguarding_concern": True},
    ),
    *[replace(SPLD, then="complete", rescore={"cognition_and_learning": 2}, outcome="needs_partly_met")] * 3,
    replace(SPLD, then="decline:family_declined"),
    replace(SPLD, then="decline:could_not_contact"),
    *[Child("Bedminster", "URN200001", ["PMLD"], {"cognition_and_learning": 4})] * 2,  # nothing meets PMLD
    Child(  # specialist need the graduated approach did not meet: an EHC needs assessment request
        "Bedminster",
        "URN200001",
        ["SLD"],
        {"cognition_and_learning": 4},
        extra={
            "level_of_need": "specialist",
            "graduated_approach": {"cycles_completed": 2, "summary": "x", "worked": False},
        },
    ),
    Child(
        "Bedminster",
        "URN200001",
        ["PD"],
        {"sensory_and_physical": 4},
        "complete",
        {"sensory_and_physical": 1},
    ),
]
# The provision routing offers each need, and the agency that answers for it (the starter catalogue).
AGENCY_OF = {
    "autism-outreach": "la-inclusion-service",
    "specialist-teaching": "la-inclusion-service",
    "children-ot": "nhs-community-therapies",
}
SETTINGS_REGISTER = {
    "URN100001": "Ashley",
    "URN100002": "Ashley",
    "URN200001": "Bedminster",
    "URN200002": "Bedminster",
    "URN300001": "Clifton",
}


def feed(platform: RunningPlatform) -> None:
    """The area's settings register, then every child's referral and what its agency did."""
    admin = token(platform, Role.ADMIN, "la-digital")
    for setting, locality in SETTINGS_REGISTER.items():
        body: dict[str, Any] = {"name": f"School {setting}", "locality": locality, "phase": "primary"}
        put = urllib.request.Request(
            platform.url("analytics", f"/v1/settings-register/{setting}"),
            data=json.dumps(body).encode(),
            headers={"content-type": "application/json", "authorization": f"Bearer {admin}"},
            method="PUT",
        )
        with urllib.request.urlopen(put, timeout=5) as answer:
            assert answer.status == 202
    practitioner = token(platform, Role.PRACTITIONER, "school-ashley-primary")
    ids = [submit(platform, practitioner, child, number) for number, child in enumerate(CHILDREN)]
    for referral_id, child in zip(ids, CHILDREN, strict=True):
        if child.then == "wait":
            continue
        offer = routed(platform, practitioner, referral_id)
        agency = token(platform, Role.AGENCY, AGENCY_OF[offer])
        base = platform.url("intake", f"/v1/referrals/{referral_id}/offers/{offer}")
        if child.then.startswith("decline:"):
            answer = request(f"{base}/decline", {"reason": child.then.split(":")[1]}, token=agency)
            assert answer[0] == 200, answer
            continue
        for move, body in (
            ("accept", {}),
            ("start", {}),
            ("complete", {"outcome": child.outcome, "needs_profile_after": child.rescore}),
        ):
            answer = request(f"{base}/{move}", body, token=agency)
            assert answer[0] == 200, (move, answer)
    # In a thread of its own: Playwright's sync API keeps an event loop running in this one.
    with ThreadPoolExecutor(1) as worker:
        worker.submit(asyncio.run, neighbour_submits(platform, referrals=3)).result()


async def neighbour_submits(platform: RunningPlatform, *, referrals: int) -> None:
    """A neighbouring area's intake publishing to the shared stream: what regional benchmarking compares."""
    producer = AIOKafkaProducer(bootstrap_servers=f"127.0.0.1:{platform.ports['kafka']}")
    await producer.start()
    try:
        for _ in range(referrals):
            referral_id = str(uuid.uuid4())
            event: Envelope[EventData] = new_event(
                ReferralSubmittedV1(
                    referral_id=referral_id,
                    age_years=9,
                    locality="Neighbourton",
                    setting_id="URN900001",
                    need_codes=[NeedCode.ASD],
                    broad_areas=[BroadArea.COMMUNICATION_AND_INTERACTION],
                    level_of_need=LevelOfNeed.EARLY_HELP,
                    submitted_at=datetime.now(UTC),
                    child_ref=f"cr_{uuid.uuid4().hex}",
                ),
                source="neighbour/intake",
                tenant=OTHER_TENANT,
            )
            await producer.send_and_wait(
                "signpost.referrals",
                to_kafka_value(event),
                key=referral_id.encode(),
                headers=[(name, value.encode()) for name, value in to_kafka_headers(event).items()],
            )
    finally:
        await producer.stop()


def submit(platform: RunningPlatform, practitioner: str, child: Child, number: int) -> str:
    body = referral(
        # Each a different child: no NHS number or UPN, so the pseudonym comes from name and birth date.
        child={
            **{k: v for k, v in CHILD.items() if k not in ("nhs_number", "upn")},
            "given_name": f"Child{number}",
        },
        locality=child.locality,
        setting_id=child.setting,
        need_codes=child.needs,
        needs_profile=child.profile,
        **(child.extra or {}),
    )
    status, created = request(platform.url("intake", "/v1/referrals"), body, token=practitioner)
    assert status == 201, created
    return str(created["id"])


def routed(platform: RunningPlatform, practitioner: str, referral_id: str) -> str:
    """The one provision routing offered the referral."""
    url = platform.url("intake", f"/v1/referrals/{referral_id}")
    found = wait_for(
        lambda: (answer := request(url, token=practitioner)[1])["status"] == "routed" and answer,
        timeout_s=30,
        what=f"{referral_id} routed",
    )
    offers: list[str] = [offer["provision_id"] for offer in found["offers"]]
    assert len(offers) == 1, offers
    return offers[0]


def chart(page: Page, element_id: str) -> list[dict[str, Any]]:
    """The traces Plotly drew in the element (its data, read back from the DOM), each category
    (a group's id) as its axis names it."""
    traces: list[dict[str, Any]] = page.evaluate(
        """id => {
            const element = document.getElementById(id);
            const axis = element.layout.xaxis || {};
            const named = x => {
                const at = (axis.tickvals || []).indexOf(x);
                return at < 0 ? x : axis.ticktext[at].replaceAll('<br>', ' ');
            };
            return element.data.map(t => ({
                name: t.name ?? null, x: t.x ? t.x.map(named) : null, y: t.y ?? null,
                labels: t.labels ?? null, values: t.values ?? null}));
        }""",
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


def chart_annotations(page: Page, element_id: str) -> list[str]:
    """The labels drawn where a withheld value's bar would be."""
    texts: list[str] = page.evaluate(
        "id => (document.getElementById(id).layout.annotations || []).map(a => a.text)", element_id
    )
    return texts


def by_name(traces: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """{trace name: {category: value}}."""
    return {trace["name"]: dict(zip(trace["x"], trace["y"], strict=True)) for trace in traces}


FUNNEL = ["Submitted", "Routed", "Accepted", "Started", "Completed", "Declined", "Unmatched", "Withdrawn"]
AUTISM, OT, TEACHING = (
    "Autism and social communication outreach",
    "Children's occupational therapy",
    "Specialist teaching and learning support",
)


def test_every_page_shows_what_the_events_imply(platform: RunningPlatform, browser: Browser) -> None:
    feed(platform)

    # An admin sees every figure: exactly what the fed events imply.
    admin = browser.open(
        platform.url("analytics", f"/dashboard/#token={token(platform, Role.ADMIN, 'la-digital')}")
    )
    funnel = wait_for_chart(admin, "funnel-chart", "t => t[0].y.join() === '16,12,9,9,9,3,5,0,1,1'")
    assert funnel[0]["x"] == [*FUNNEL, "Safeguarding", "EHC request"]
    assert funnel[1]["name"] == "Previous period" and set(funnel[1]["y"]) == {0}
    assert "token" not in admin.url  # the fragment is taken into the tab's storage, not left in the URL
    assert admin.is_hidden("#suppression")  # nothing is withheld from an admin
    cards = {
        measure: admin.text_content(f"[data-measure={measure}] .value")
        for measure in ("submitted", "escalated_ehc_assessment", "escalated_safeguarding", "unmatched")
    }
    assert cards == {
        "submitted": "16",
        "escalated_ehc_assessment": "1",
        "escalated_safeguarding": "1",
        "unmatched": "5",
    }
    assert admin.text_content("[data-measure=submitted] .change") == "+16 on the previous period (0)"
    assert admin.text_content("#coverage .value") == "60.0%"  # 3 of the 5 registered settings referred
    trend = by_name(chart(admin, "trend-chart"))
    assert [sum(values.values()) for values in trend.values()] == [16, 2, 5]  # all fed this week
    waiting = chart(admin, "waiting-chart")
    assert waiting[0]["x"] == [AUTISM, TEACHING, OT]  # most acceptances first: 5, 3, 1
    waiting_rows = table(admin, "waiting-table")
    assert [row[0] for row in waiting_rows] == sorted(row[0] for row in waiting_rows)  # by name
    therapy = next(row for row in waiting_rows if row[0] == OT)
    assert (therapy[1], therapy[5]) == ("1", "84"), (
        waiting_rows
    )  # 1 accepted; the Local Offer's 12 weeks, in days
    assert by_name(chart(admin, "unmet-chart"))["Unmatched"] == {
        "SPLD": 2,  # declined twice, nothing else teaches SpLD
        "SLD": 0,  # escalated instead
        "PMLD": 2,
        "SEMH": 0,
        "PD": 0,
        "ASD": 1,
    }
    browser.screenshot(admin, "overview-admin")

    pages = [link.get_attribute("href") for link in admin.locator("nav a").all()]
    assert pages == [
        "/dashboard/",
        "/dashboard/drill-down",
        "/dashboard/what-works",
        "/dashboard/regional",
        "/dashboard/ops",
    ]

    # Two localities side by side, chosen in the drill-down's form as a person would.
    admin.click("nav a[href='/dashboard/drill-down']")  # the token stays in the tab
    wait_for_chart(admin, "breakdown-chart", "t => t.length === 1")
    compare_localities(admin)
    compared = by_name(
        wait_for_chart(admin, "breakdown-chart", "t => t.length === 2 && t[0].name === 'Ashley'")
    )
    assert compared == {
        "Ashley": {"ASD": 6, "SEMH": 1, "PD": 0, "PMLD": 0, "SLD": 0, "SPLD": 0},
        "Bedminster": {"ASD": 0, "SEMH": 0, "PD": 1, "PMLD": 2, "SLD": 1, "SPLD": 5},
    }
    assert table(admin, "breakdown-table")[-1] == ["Total", "7", "9"]
    browser.screenshot(admin, "drill-down-admin")

    admin.click("nav a[href='/dashboard/what-works']")
    by_provision = wait_for_chart(admin, "provision-chart", "t => t[0].x.length === 3")
    # Autism outreach: 3 -> 1 five times; teaching: 3 -> 2 three times; OT: 4 -> 1 once.
    assert by_name(by_provision)["Mean fall in need score"] == {AUTISM: 2.0, OT: 3.0, TEACHING: 1.0}
    assert by_name(chart(admin, "sector-chart"))["Mean fall in need score"] == {
        "education": 1.6,
        "health": 3.0,
    }
    assert by_name(chart(admin, "outcomes-chart")) == {
        "needs met": {AUTISM: 5, OT: 1, TEACHING: 0},
        "needs partly met": {AUTISM: 0, OT: 0, TEACHING: 3},
    }
    assert by_name(chart(admin, "declines-chart")) == {
        "no capacity": {AUTISM: 1, TEACHING: 0},
        "could not contact": {AUTISM: 0, TEACHING: 1},
        "family declined": {AUTISM: 0, TEACHING: 1},
    }
    browser.screenshot(admin, "what-works-admin")

    # The admin's own area in full; the neighbour's 3 withheld, as from an analyst, and the page says why.
    admin.click("nav a[href='/dashboard/regional']")
    submitted = wait_for_chart(admin, "submitted-chart", "t => t[0].y.join() === '16,'")
    assert submitted[0]["x"] == [TENANT, OTHER_TENANT]
    assert chart_annotations(admin, "submitted-chart") == ["<5"]
    assert by_name(chart(admin, "escalation_rate-chart"))["escalation rate"] == {
        TENANT: 0.125,
        OTHER_TENANT: None,  # 0 escalations, but over 3 referrals
    }
    assert admin.is_visible("#suppression")
    assert "from admins for every area but their own" in (admin.text_content("#suppression") or "")
    browser.screenshot(admin, "regional-admin")

    # The analyst's link from `signpost run`: counts under 5 are withheld, and the page says why.
    analyst = browser.open(dashboard_link(platform, "Dashboard, as the analyst"))
    funnel = wait_for_chart(analyst, "funnel-chart", "t => t[0].y[0] === 16")
    shown = dict(zip(funnel[0]["x"], funnel[0]["y"], strict=True))
    assert shown == {
        "Submitted": 16,
        "Routed": 12,
        "Accepted": 9,
        "Started": 9,
        "Completed": 9,
        "Declined": None,  # 3: withheld, not drawn as 0
        "Unmatched": 5,
        "Withdrawn": 0,  # 0 identifies nobody
        "Safeguarding": None,
        "EHC request": None,
    }
    assert chart_annotations(analyst, "funnel-chart") == ["<5", "<5", "<5"]
    assert analyst.is_visible("#suppression")
    assert "Small numbers are suppressed" in (analyst.text_content("#suppression") or "")
    assert analyst.text_content("[data-measure=escalated_ehc_assessment] .value") == "<5"
    assert analyst.get_attribute("[data-measure=escalated_ehc_assessment] .value", "title") == (
        "Suppressed: a count of 1 to 4 children"
    )
    rates = {row[0]: row[1] for row in table(analyst, "measures-table")}
    assert rates["escalation rate"] == "suppressed" and rates["acceptance rate"] == "75.0%"
    browser.screenshot(analyst, "overview-analyst")

    analyst.click("nav a[href='/dashboard/drill-down']")
    wait_for_chart(analyst, "breakdown-chart", "t => t.length === 1")
    compare_localities(analyst)
    compared = by_name(wait_for_chart(analyst, "breakdown-chart", "t => t.length === 2"))
    assert compared["Ashley"]["ASD"] == 6 and compared["Ashley"]["SEMH"] is None
    assert compared["Bedminster"]["SPLD"] == 5 and compared["Bedminster"]["PMLD"] is None
    assert "<5" in chart_annotations(analyst, "breakdown-chart")
    browser.screenshot(analyst, "drill-down-analyst")

    analyst.click("nav a[href='/dashboard/regional']")
    submitted = wait_for_chart(analyst, "submitted-chart", "t => t[0].y.length === 2")
    assert submitted[0]["y"] == [16, None]  # the neighbour's 3 are withheld from an analyst
    assert chart_annotations(analyst, "submitted-chart") == ["<5"]
    browser.screenshot(analyst, "regional-analyst")

    # A referral arrives and is withdrawn while the overview is open: it refreshes itself.
    analyst.click("nav a[href='/dashboard/']")
    wait_for_chart(analyst, "funnel-chart", "t => t[0].y[0] === 16")
    practitioner = token(platform, Role.PRACTITIONER, "school-ashley-primary")
    withdrawn = submit(platform, practitioner, ASD, 200)
    routed(platform, practitioner, withdrawn)
    answer = request(
        platform.url("intake", f"/v1/referrals/{withdrawn}/withdraw"),
        {"reason": "duplicate"},
        token=practitioner,
    )
    assert answer[0] == 200, answer
    wait_for_chart(analyst, "funnel-chart", "t => t[0].y[0] === 17")
    wait_until(
        analyst,
        "() => document.querySelector('[data-measure=submitted] .value').textContent === '17'",
        what="17 submitted",
    )

    ops = browser.open(dashboard_link(platform, "Ops view, as ops"))
    wait_until(ops, "() => document.querySelectorAll('#health-table tbody tr').length === 3", what="health")
    assert [row[:2] for row in table(ops, "health-table")] == [
        ["intake", "ready"],
        ["routing", "ready"],
        ["analytics", "ready"],
    ]
    # One trace per group a service's lag covers (`offsets.lag_pairs`): each main group, and intake's
    # and routing's retry groups (analytics retries a batch in place).
    groups = {f"signpost-{TENANT}-{service}" for service in SERVICE_NAMES} | {
        f"signpost-{TENANT}-{service}-retry" for service in ("intake", "routing")
    }
    lag = wait_for_chart(
        ops,
        "lag-chart",
        f"t => t.length === {len(groups)} && t.every(g => g.y.length > 0 && g.y.every(v => v === 0))",
    )
    assert {trace["name"] for trace in lag} == groups
    # 20 submitted (3 by the neighbour) and 17 first decisions (the neighbour's own routing, not
    # running here, decides its 3: this area's routing skips another area's events), 3 declines
    # and their re-routes, 9 x accept/start/complete, 1 withdrawal.
    events = 20 + 17 + 3 + 3 + 27 + 1
    wait_until(
        ops,
        f"""() => [...document.querySelectorAll('#topics-table tbody tr')]
              .some(r => r.cells[0].textContent === 'signpost.referrals' && r.cells[2].textContent === '{events}')""",
        what=f"{events} records on signpost.referrals",
    )
    assert ops.text_content("#dead-letters-total") == "0"
    # Times read in UTC, as the charts' time axes say, though the browser is in Los Angeles:
    # the latest sample falls within the lag history's axis (the same page, one render).
    sampled, axis = ops.evaluate(
        """() => [document.getElementById('sampled').textContent,
                  document.getElementById('lag-history-chart')._fullLayout.xaxis.range]"""
    )
    match = re.search(r"^Streams sampled (\d\d/\d\d/\d{4}, \d\d:\d\d:\d\d) UTC, every 1 s\.$", sampled)
    assert match, sampled
    sampled_at = datetime.strptime(match.group(1), "%d/%m/%Y, %H:%M:%S")
    first, last = (datetime.fromisoformat(bound[:19]) for bound in axis)
    assert first - timedelta(seconds=1) <= sampled_at <= last + timedelta(seconds=1), (sampled, axis)
    assert ops.evaluate("() => document.getElementById('lag-history-chart').layout.xaxis.title.text") == "UTC"
    last_events = [row[4] for row in table(ops, "topics-table") if row[4] != "never"]
    assert last_events and all(re.fullmatch(r"\d\d/\d\d/\d{4}, \d\d:\d\d:\d\d UTC", t) for t in last_events)
    browser.screenshot(ops, "ops")

    assert not browser.refused, browser.refused
    assert all(urlsplit(url).hostname == "127.0.0.1" for url in browser.requested)
    assert not browser.console_errors, browser.console_errors
    assert len(list(browser.screenshots.iterdir())) == 8


def compare_localities(page: Page) -> None:
    page.fill("#view-form [name=locality]", "Ashley")
    page.fill("#view-form [name=compare]", "Bedminster")
    page.select_option("#view-form [name=group_by]", "need")
    page.click("#view-form button[type=submit]")


def test_a_tab_without_a_token_asks_for_one_and_roles_are_respected(
    platform: RunningPlatform, browser: Browser
) -> None:
    page = browser.open(platform.url("analytics", "/dashboard/"))
    page.wait_for_selector("#token-form", state="visible", timeout=WAIT_MS)
    assert page.is_hidden("#content")
    page.fill("#token-input", platform.demo_token("analyst", "la-insight"))
    page.click("#token-form button[type=submit]")
    wait_for_chart(page, "funnel-chart", "t => t[0].y.length === 10")
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
