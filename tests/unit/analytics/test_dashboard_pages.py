"""The dashboard's pages: each renders whole, and says truthfully which API its script reads."""

from __future__ import annotations

import re

import pytest
from signpost.analytics.dashboard.pages import PAGES, Page, render
from signpost.analytics.dashboard.views import STATIC


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.slug or "overview")
def test_a_page_renders_with_nothing_left_to_fill_in(page: Page) -> None:
    html = render(page)
    assert not re.search(r"\$[a-z_{]", html)
    assert 'id="suppression"' in html  # where the API's note on withheld figures goes


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.slug or "overview")
def test_every_api_a_page_names_is_one_its_script_reads(page: Page) -> None:
    script = (STATIC / f"{page.slug or 'overview'}.js").read_text()
    named = re.findall(r"/v1/[a-z-]+(?:/[a-z-]+)?", page.reads)
    assert named
    assert [path for path in named if f'"{path}' not in script] == []


def test_pulse_pages_ask_for_a_period() -> None:
    for page in PAGES:
        if page.slug != "ops":
            assert 'name="from"' in render(page) and 'name="to"' in render(page)
