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


def contrast_on_white(colour: str) -> float:
    """WCAG 2 contrast ratio of an #rrggbb colour against white."""

    def linear(channel: int) -> float:
        c = channel / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (linear(int(colour[i : i + 2], 16)) for i in (1, 3, 5))
    return 1.05 / (0.2126 * r + 0.7152 * g + 0.0722 * b + 0.05)


def test_every_series_colour_stands_out_from_the_white_background() -> None:
    """WCAG 1.4.11: the bars and lines that carry the figures need 3:1 against the page."""
    found = re.search(r"const COLOURS = \[([^\]]*)\]", (STATIC / "client.js").read_text())
    assert found
    colours = re.findall(r'"(#[0-9a-f]{6})"', found.group(1))
    assert len(colours) >= 6
    assert {
        colour: round(contrast_on_white(colour), 2) for colour in colours if contrast_on_white(colour) < 3
    } == {}
