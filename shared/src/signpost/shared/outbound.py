"""Requests a service makes to URLs its callers name (ORUK feeds, webhooks).

`SIGNPOST_OUTBOUND_LOOPBACK_ONLY` confines them to this machine: tests that fuzz those
URLs, and sandboxes, must never reach another host (not even its DNS server).
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit


class OutboundRefused(ValueError):
    """The URL is one this service will not contact; the message says why."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_outbound(url: str, *, loopback_only: bool) -> None:
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"}:
        raise OutboundRefused("must be an http or https URL")
    if loopback_only and not is_loopback(parts.hostname or ""):
        raise OutboundRefused("must be on this machine: SIGNPOST_OUTBOUND_LOOPBACK_ONLY is set")
