"""The dashboard's pages and assets over HTTP.

The pages themselves hold no data and need no token: their scripts ask the user for a
bearer token and read the API with it, exactly as any other caller would.

Charts are drawn with Plotly (MIT), whose browser bundle ships inside the `plotly` PyPI
package (`plotly/package_data/plotly.min.js`), so it is installed with analytics, pinned
in uv.lock and upgraded like any other dependency, with no vendored copy to keep current
and no CDN: no request leaves the machine at run time.
"""

from __future__ import annotations

import re
from importlib.resources import as_file, files
from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse
from signpost.analytics.dashboard.pages import PAGES_BY_SLUG, render

router = APIRouter(prefix="/dashboard", tags=["dashboard"], include_in_schema=False)

STATIC = files("signpost.analytics.dashboard") / "static"
ASSET_NAME = re.compile(r"^[a-z0-9-]+\.(js|css)$")
MEDIA_TYPES = {"js": "text/javascript; charset=utf-8", "css": "text/css; charset=utf-8"}
# Scripts and styles only from this origin; the API is fetched from it too. Plotly sets
# inline styles on the elements it draws, hence 'unsafe-inline' for styles only.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        "connect-src 'self'; font-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def plotly_bundle() -> Path:
    with as_file(files("plotly") / "package_data" / "plotly.min.js") as path:
        return path


@router.get("")
async def dashboard_root() -> RedirectResponse:
    return RedirectResponse("/dashboard/", status_code=308)


@router.get("/assets/plotly.min.js")
async def plotly_asset() -> FileResponse:
    # Its version changes only with the installed package; browsers may keep it a day.
    return FileResponse(
        plotly_bundle(),
        media_type=MEDIA_TYPES["js"],
        headers={"Cache-Control": "public, max-age=86400", "X-Content-Type-Options": "nosniff"},
    )


@router.get("/assets/{name}")
async def asset(name: str) -> FileResponse:
    resource = STATIC / name
    if not ASSET_NAME.fullmatch(name) or not resource.is_file():
        raise HTTPException(404, f"no dashboard asset called {name!r}")
    with as_file(resource) as path:
        return FileResponse(
            path,
            media_type=MEDIA_TYPES[name.rsplit(".", 1)[1]],
            headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"},
        )


@router.get("/", response_class=HTMLResponse)
async def overview() -> HTMLResponse:
    return _page("")


@router.get("/{slug}", response_class=HTMLResponse)
async def page(slug: str) -> HTMLResponse:
    return _page(slug)


def _page(slug: str) -> HTMLResponse:
    found = PAGES_BY_SLUG.get(slug)
    if found is None:
        raise HTTPException(404, f"no dashboard page {slug!r}; the overview is at /dashboard/")
    return HTMLResponse(render(found), headers={**SECURITY_HEADERS, "Cache-Control": "no-cache"})
