"""The dashboard's pages: each is a layout, an HTML fragment and a script, named here once.

To extend a page, change its fragment and script in `templates/` and `static/` (a pulse
page's form starts with `$period`); to add one, add a `Page` below. The scripts share
`static/client.js`: the token, polling, the API's figures and suppression, and charts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from string import Template

from signpost.shared.vocabulary import NeedCode, Sector

TEMPLATES = files("signpost.analytics.dashboard") / "templates"


@dataclass(frozen=True)
class Page:
    slug: str  # the path under /dashboard/; "" is the overview
    title: str
    summary: str
    reads: str  # the API the page's script reads, shown on the page so a user can call it too
    refresh_s: float = 5.0


PAGES: tuple[Page, ...] = (
    Page(
        "",
        "Pulse overview",
        "Demand, escalation, waiting, unmet need and coverage for a period, against the period before, "
        "the referral funnel and trends over time.",
        "/v1/pulse/summary, /v1/pulse/trend, /v1/pulse/waiting, /v1/pulse/unmet-demand",
    ),
    Page(
        "drill-down",
        "Drill-down",
        "One measure broken down by locality, setting, need, level, sector or provision, with filters; "
        "name a second locality to compare two side by side.",
        "/v1/pulse/breakdown",
    ),
    Page(
        "what-works",
        "What works",
        "How much needs changed between referral and the end of support, by provision and by sector, "
        "the outcomes recorded, and why offers were declined.",
        "/v1/pulse/what-works, /v1/pulse/declines",
    ),
    Page(
        "regional",
        "Regional comparison",
        "The same measures side by side for every local area analytics hears from (aggregates only, "
        "small numbers suppressed in every area but an admin's own).",
        "/v1/benchmarking",
    ),
    Page(
        "ops",
        "Ops: streams and health",
        "Consumer lag per group and partition, events per second and last event per topic, "
        "dead letters, and each service's readiness.",
        "/v1/ops",
    ),
)
# Every pulse page's form starts with the period; the API's default is the last 28 days.
PERIOD_FIELDS = (
    '<label>From <input type="date" name="from"></label>\n  <label>To <input type="date" name="to"></label>'
)
PAGES_BY_SLUG = {page.slug: page for page in PAGES}


def page_url(page: Page) -> str:
    return f"/dashboard/{page.slug}"


@cache
def _template(name: str) -> Template:
    return Template((TEMPLATES / name).read_text(encoding="utf-8"))


def render(page: Page) -> str:
    """The page's HTML: the shared layout around the page's own fragment."""
    slug = page.slug or "overview"
    current = ' aria-current="page"'
    navigation = "\n".join(
        f'<a href="{page_url(other)}"{current if other is page else ""}>{other.title}</a>' for other in PAGES
    )
    return _template("layout.html").substitute(
        title=page.title,
        summary=page.summary,
        reads=page.reads,
        slug=slug,
        refresh_s=f"{page.refresh_s:g}",
        navigation=navigation,
        body=_template(f"{slug}.html").substitute(period=PERIOD_FIELDS),
        # Vocabulary the scripts need, from the one source the services use.
        vocabulary=json.dumps(
            {
                "need_codes": [code.value for code in NeedCode],
                "sectors": [sector.value for sector in Sector],
            }
        ).replace("<", "\\u003c"),
    )
