"""How webhook deliveries are signed, and how a partner checks them.

Header `Signpost-Signature: t=<unix seconds>,v1=<hex>,v2=<hex>`, each scheme a hex
HMAC-SHA256 keyed with the subscription's secret:

- v2 signs "<t>\\n<ce-id>\\n<ce-type>\\n<ce-subject>\\n" followed by the body (an absent
  ce-subject is empty). It binds the event's identity to its data, so a captured delivery
  cannot be passed off as another event type, or under a new ce-id that defeats a
  receiver's deduplication. HTTP header values hold no newline: the fields cannot run
  into one another.
- v1 signs "<t>." followed by the body only; it is kept, unchanged, for receivers that
  verify it today.

Binding the timestamp into the signature lets a receiver refuse replays older than a few minutes.
"""

from __future__ import annotations

import hashlib
import hmac
import time

SIGNATURE_HEADER = "Signpost-Signature"
DEFAULT_TOLERANCE_S = 300


def sign(*, secret: str, body: bytes, timestamp: int, event_id: str, event_type: str, subject: str) -> str:
    v1 = _digest(secret, _v1_message(timestamp, body))
    v2 = _digest(secret, _v2_message(timestamp, event_id, event_type, subject, body))
    return f"t={timestamp},v1={v1},v2={v2}"


def verify(
    *, secret: str, body: bytes, header: str, now: float | None = None, tolerance_s: int = DEFAULT_TOLERANCE_S
) -> bool:
    """True when `header`'s v1 signs `body` with `secret` and is recent. v1 leaves the event's id
    and type unsigned: a receiver should run `verify_v2`."""
    claim = _recent_claim(header, "v1", now, tolerance_s)
    return claim is not None and _matches(secret, _v1_message(claim[0], body), claim[1])


def verify_v2(
    *,
    secret: str,
    body: bytes,
    header: str,
    event_id: str,
    event_type: str,
    subject: str,
    now: float | None = None,
    tolerance_s: int = DEFAULT_TOLERANCE_S,
) -> bool:
    """True when `header`'s v2 signs this event (ce-id, ce-type, ce-subject, body) with `secret`
    and is recent: what a receiver runs."""
    claim = _recent_claim(header, "v2", now, tolerance_s)
    if claim is None:
        return False
    timestamp, claimed = claim
    return _matches(secret, _v2_message(timestamp, event_id, event_type, subject, body), claimed)


def _v1_message(timestamp: int, body: bytes) -> bytes:
    return f"{timestamp}.".encode() + body


def _v2_message(timestamp: int, event_id: str, event_type: str, subject: str, body: bytes) -> bytes:
    return f"{timestamp}\n{event_id}\n{event_type}\n{subject}\n".encode() + body


def _digest(secret: str, message: bytes) -> str:
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def _recent_claim(header: str, scheme: str, now: float | None, tolerance_s: int) -> tuple[int, str] | None:
    """The header's timestamp and its `scheme` signature, if well formed and recent."""
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        timestamp, claimed = int(parts["t"]), parts[scheme]
    except (KeyError, ValueError):
        return None
    if abs((time.time() if now is None else now) - timestamp) > tolerance_s:
        return None
    return timestamp, claimed


def _matches(secret: str, message: bytes, claimed: str) -> bool:
    # As bytes: compare_digest raises TypeError on a str that is not ASCII.
    return hmac.compare_digest(_digest(secret, message).encode(), claimed.encode())
