"""How webhook deliveries are signed, and how a partner checks them.

Header `Signpost-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`,
keyed with the subscription's secret. Binding the timestamp into the signature lets a
receiver refuse replays older than a few minutes.
"""

from __future__ import annotations

import hashlib
import hmac
import time

SIGNATURE_HEADER = "Signpost-Signature"
DEFAULT_TOLERANCE_S = 300


def sign(*, secret: str, body: bytes, timestamp: int) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify(
    *, secret: str, body: bytes, header: str, now: float | None = None, tolerance_s: int = DEFAULT_TOLERANCE_S
) -> bool:
    """True when `header` signs `body` with `secret` and is recent: what a receiver runs."""
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        timestamp = int(parts["t"])
        claimed = parts["v1"]
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance_s:
        return False
    expected = sign(secret=secret, body=body, timestamp=timestamp).split("v1=", 1)[1]
    return hmac.compare_digest(expected, claimed)
