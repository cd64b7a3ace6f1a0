"""The dashboard's pages: each is a layout, an HTML fragment and a script, named here once.

To extend a page (say, when the pulse API grows drill-down filters), change its fragment
and script in `templates/` and `static/`; to add one, add a `Page` below.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from string import Template

from signpost.shared.vocabulary import BROAD_AREA_OF

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
        "Referrals submitted and what became of them: routed to support, unmatched, escalated or awaiting a decision.",
        "/v1/pulse",
    ),
    Page(
        "drill-down",
        "Drill-down by need",
        "Demand by census need code within the SEND Code of Practice's four broad areas.",
        "/v1/pulse",
    ),
    Page(
        "what-works",
        "What works",
        "How often early help could be offered from the Local Offer for the needs referred, and how often not.",
        "/v1/pulse",
    ),
    Page(
        "regional",
        "Regional comparison",
        "The same counts side by side for several local areas (aggregates only).",
        "/v1/pulse?tenant=…",
    ),
    Page(
        "ops",
        "Ops: streams and health",
        "Consumer lag per group and partition, events per second and last event per topic, "
        "dead letters, and each service's readiness.",
        "/v1/ops",
    ),
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
        body=_template(f"{slug}.html").substitute(),
        # Vocabulary the scripts need, from the one source the services use.
        vocabulary=json.dumps(
            {
                "broad_area_of": {
                    code.value: area.value if area else None for code, area in BROAD_AREA_OF.items()
                }
            }
        ).replace("<", "\\u003c"),
    )
