"""Reading an Open Referral UK feed: its paged `/services` list, and each service in full.

Every page is fetched before anything is written, so a feed that fails part-way
imports nothing and says which request failed.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
from signpost.routing.oruk.mapping import nested_deeper_than, service_label
from signpost.shared.outbound import OutboundRefused, check_outbound

PER_PAGE = 100
MAX_PAGES = 10_000
DETAIL_CONCURRENCY = 8
MAX_NESTING = 64  # an ORUK page nests about ten deep (page, services, locations, addresses, ...)
_TOO_DEEP = f"nests objects and arrays more than {MAX_NESTING} deep: it is not an ORUK feed"


class FeedError(Exception):
    """The feed cannot be read; the message names the request and what went wrong."""


@dataclass(frozen=True)
class Unfetched:
    """A service the list named whose full record could not be fetched."""

    oruk_id: str | None
    name: str | None
    reason: str


@dataclass(frozen=True)
class Feed:
    services: list[object | Unfetched]
    warnings: list[str]


def base_of(url: str) -> str:
    """The feed's base URL, forgiving a trailing slash or a pasted `/services`."""
    base = url.strip().rstrip("/")
    return base.removesuffix("/services")


async def refuse_unless_allowed(request: httpx.Request, *, loopback_only: bool) -> None:
    """Checked before every request, so a redirect cannot lead the fetch where the caller could not."""
    try:
        check_outbound(str(request.url), loopback_only=loopback_only)
    except OutboundRefused as exc:
        raise httpx.RequestError(f"refused: {exc}", request=request) from None


async def get_json(
    client: httpx.AsyncClient,
    url: str,
    *,
    params: Mapping[str, Any] | None = None,
    max_bytes: int,
    timeout_s: float,
) -> Any:
    """One request, its whole answer within `timeout_s`: httpx's timeouts bound each read alone,
    so a publisher sending a byte at a time would keep the import waiting for as long as it liked."""
    try:
        async with (
            asyncio.timeout(timeout_s),
            client.stream("GET", url, params=params, headers={"accept": "application/json"}) as response,
        ):
            where = str(response.url)
            if response.status_code != 200:
                raise FeedError(f"{where} answered HTTP {response.status_code}")
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > max_bytes:
                    raise FeedError(
                        f"{where} sent more than the {max_bytes}-byte limit (SIGNPOST_MAX_IMPORT_BYTES)"
                    )
    except (TimeoutError, httpx.TimeoutException):
        raise FeedError(
            f"could not fetch {url}: no whole answer within {timeout_s:g} s (SIGNPOST_ORUK_FETCH_TIMEOUT_S)"
        ) from None
    except httpx.HTTPError as exc:
        # An exception is never falsy: its text is, when empty (httpx's timeouts have none).
        raise FeedError(f"could not fetch {url}: {str(exc) or type(exc).__name__}") from None
    except (httpx.InvalidURL, UnicodeError) as exc:  # e.g. a redirect to a host IDNA refuses, a huge id
        raise FeedError(f"could not fetch {url}: bad URL: {exc}") from None
    try:
        document = json.loads(body)
    except ValueError:
        kind = response.headers.get("content-type", "no content type")
        raise FeedError(f"{where} did not answer with JSON ({kind})") from None
    except RecursionError:  # json gives up about a thousand levels down
        raise FeedError(f"{where} answered JSON that {_TOO_DEEP}") from None
    if nested_deeper_than(document, MAX_NESTING):
        raise FeedError(f"{where} answered JSON that {_TOO_DEEP}")
    return document


async def fetch_feed(base_url: str, *, client: httpx.AsyncClient, max_bytes: int, timeout_s: float) -> Feed:
    base = base_of(base_url)
    listed: list[object] = []
    page = 1
    while True:
        document = await get_json(
            client,
            f"{base}/services",
            params={"page": page, "per_page": PER_PAGE},
            max_bytes=max_bytes,
            timeout_s=timeout_s,
        )
        contents = document.get("contents") if isinstance(document, Mapping) else None
        if not isinstance(contents, list):
            raise FeedError(
                f"{base}/services?page={page} is not an ORUK page of services (no `contents` list); "
                "is this the feed's base URL?"
            )
        listed.extend(contents)
        total_pages = document.get("total_pages")
        finished = (
            not contents
            or document.get("last_page") is True
            or (isinstance(total_pages, int) and page >= total_pages)
            or (total_pages is None and "last_page" not in document and len(contents) < PER_PAGE)
        )
        if finished:
            break
        page += 1
        if page > MAX_PAGES:
            raise FeedError(f"{base}/services has more than {MAX_PAGES} pages; is its paging broken?")

    gate = asyncio.Semaphore(DETAIL_CONCURRENCY)

    async def in_full(item: object) -> object | Unfetched:
        # List entries hold only one-to-one fields; taxonomy terms, areas and capacity need the full record.
        if not isinstance(item, Mapping) or "attributes" in item:
            return item
        oruk_id, name = service_label(item)
        if oruk_id is None:
            return item  # the mapping reports the missing id
        async with gate:
            try:
                full: object = await get_json(
                    client,
                    f"{base}/services/{quote(oruk_id, safe='')}",
                    max_bytes=max_bytes,
                    timeout_s=timeout_s,
                )
            except FeedError as exc:
                return Unfetched(oruk_id, name, f"its full record could not be fetched: {exc}")
            return full

    services = list(await asyncio.gather(*(in_full(item) for item in listed)))
    warnings = [] if listed else [f"{base}/services lists no services"]
    return Feed(services=services, warnings=warnings)


def read_document(document: object) -> Feed:
    """A posted ORUK document: a page of services, one service, or a list of services."""
    if nested_deeper_than(document, MAX_NESTING):
        raise ValueError(f"the document {_TOO_DEEP}")
    if isinstance(document, list):
        return Feed(services=list(document), warnings=[])
    if isinstance(document, Mapping) and isinstance(document.get("contents"), list):
        warnings = []
        total_pages = document.get("total_pages")
        if isinstance(total_pages, int) and total_pages > 1:
            warnings.append(
                f"the document is page {document.get('page_number', '?')} of {total_pages}: "
                "import from the feed's base URL to read every page"
            )
        partial = sum(
            1 for item in document["contents"] if isinstance(item, Mapping) and "attributes" not in item
        )
        if partial:
            warnings.append(
                f"{partial} service(s) have no `attributes`: list entries hold only one-to-one fields; "
                "import from the feed's base URL so each service is fetched in full"
            )
        return Feed(services=list(document["contents"]), warnings=warnings)
    if isinstance(document, Mapping) and "id" in document:
        return Feed(services=[document], warnings=[])
    raise ValueError(
        "expected an ORUK page of services (with `contents`), one service (with `id`), or a list of services"
    )
