"""`signpost catalogue import`: send an Open Referral UK feed to routing's import API and show the report.

It only talks to the API (never to the database), so every change is checked, authorised
and published as `provision.changed.v1` exactly as an admin's own would be.
"""

from __future__ import annotations

import json
import re
from functools import partial
from pathlib import Path
from typing import Any

import httpx

IMPORT_PATH = "/v1/catalogue/import"
TIMEOUT_S = 600.0  # a large feed is fetched and written in one request
SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")
# A JSON string, or one of the constants Python's json reads and JSON has not.
STRING_OR_CONSTANT = re.compile(r'"(?:[^"\\]|\\.)*"|(?P<constant>-?Infinity|NaN)', re.DOTALL)


class BadSource(ValueError):
    pass


def request_body(source: str) -> bytes:
    """`{"source_url": …}` for a feed's base URL, `{"feed": …}` with a JSON file's contents.

    Serialised here with ASCII escapes: a lone surrogate ("\\ud800") cannot be sent as UTF-8, and
    escaped it reaches routing, which skips that service with the reason (as it would over curl).
    """
    if _is_url(source):
        return json.dumps({"source_url": source}).encode()
    if scheme := SCHEME.match(source):  # routing fetches feeds over HTTP only
        raise BadSource(
            f"cannot import {source}: the {scheme[1]}:// scheme is not supported; use http:// or https://"
        )
    try:
        text = Path(source).read_text(encoding="utf-8")
    except OSError as exc:
        raise BadSource(f"cannot read {source}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise BadSource(f"{source} is not UTF-8 text (byte {exc.start}: {exc.reason})") from None
    try:
        return json.dumps({"feed": json.loads(text, parse_constant=partial(_not_json, text))}).encode()
    except ValueError as exc:
        raise BadSource(f"{source} is not JSON: {exc}") from None
    except RecursionError:
        raise BadSource(f"{source} nests arrays or objects too deeply to read") from None


def _is_url(source: str) -> bool:
    scheme = SCHEME.match(source)
    return scheme is not None and scheme[1].lower() in ("http", "https")


def _not_json(text: str, constant: str) -> None:
    # Python's json reads NaN and Infinity; JSON has no such values, and routing would refuse them.
    # The parser stops at the first, and names neither it nor where it is: the first outside a string.
    found = next(match for match in STRING_OR_CONSTANT.finditer(text) if match["constant"])
    raise json.JSONDecodeError(f"{constant} is not a JSON value", text, found.start())


def import_feed(source: str, *, routing: str, token: str) -> tuple[int, str]:
    """(exit code, text to print): 0 imported, 2 bad input or refused, 1 routing failed."""
    try:
        body = request_body(source)
    except BadSource as exc:
        return 2, f"signpost: {exc}"
    url = routing.rstrip("/") + IMPORT_PATH
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    try:
        answer = httpx.post(url, content=body, headers=headers, timeout=TIMEOUT_S)
    except httpx.HTTPError as exc:
        return 1, f"signpost: cannot reach routing at {routing}: {exc or type(exc).__name__} (is it running?)"
    try:
        content: Any = answer.json()
    except ValueError:
        content = {"detail": answer.text[:500]}
    label = None if _is_url(source) else source  # routing calls a posted file "document"
    detail = content.get("detail") if isinstance(content, dict) else content
    try:
        if answer.status_code == 200:
            return 0, format_report(content, source=label)
        if answer.status_code == 503 and isinstance(content, dict) and "report" in content:
            return 1, f"signpost: {detail}\n\n{format_report(content['report'], source=label)}"
    except (KeyError, TypeError, AttributeError):  # not the shape of routing's report
        return 1, (
            f"signpost: {url} answered HTTP {answer.status_code} without an import report "
            f"(is routing at {routing}?): {answer.text[:200]!r}"
        )
    if isinstance(detail, list):
        detail = "; ".join(f"{p.get('field')}: {p.get('message')}" for p in detail if isinstance(p, dict))
    hint = {
        401: (
            " (a development token is signed with the key in SIGNPOST_DATA_DIR/dev-issuer: run this from the "
            "folder `signpost run` runs in, with the same SIGNPOST_DATA_DIR; else pass --token)"
        ),
        403: " (importing needs an admin token)",
    }.get(answer.status_code, "")
    code = 2 if 400 <= answer.status_code < 500 or answer.status_code == 502 else 1
    return code, f"signpost: import refused (HTTP {answer.status_code}): {detail}{hint}"


def format_report(report: dict[str, Any], *, source: str | None = None) -> str:
    totals = report["totals"]
    lines = [
        f"Imported from {source or report['source']}: {totals['created']} created, {totals['updated']} updated, "
        f"{totals['unchanged']} unchanged, {totals['skipped']} skipped ({totals['seen']} services in the feed)"
    ]
    for warning in report.get("warnings", []):
        lines.append(f"! {warning}")
    for heading, key, mark in (("Created", "created", "+"), ("Updated", "updated", "~")):
        if report[key]:
            lines.append(f"{heading}:")
        for item in report[key]:
            lines.append(f"  {mark} {item['name']}  [{item['oruk_id']}]")
            lines.extend(f"      note: {warning}" for warning in item.get("warnings", []))
    noted = [item for item in report["unchanged"] if item.get("warnings")]
    if noted:
        lines.append("Unchanged, with notes:")
        for item in noted:
            lines.append(f"  = {item['name']}  [{item['oruk_id']}]")
            lines.extend(f"      note: {warning}" for warning in item["warnings"])
    if report["skipped"]:
        lines.append("Skipped:")
    for item in report["skipped"]:
        lines.append(f"  - {item['name'] or '(no name)'}  [{item['oruk_id'] or 'no id'}]: {item['reason']}")
    return "\n".join(lines)
