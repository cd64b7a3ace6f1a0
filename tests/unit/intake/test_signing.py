"""A webhook's v2 signature covers the event's id, type and subject with its body, so a captured
delivery cannot be replayed as another event or under a new ce-id; v1 is kept as it was."""

from __future__ import annotations

import hashlib
import hmac
import time

from signpost.intake.subscriptions.dispatcher import _headers
from signpost.intake.subscriptions.signing import SIGNATURE_HEADER, sign, verify, verify_v2
from signpost.shared.events import OfferAcceptedV1, OfferStartedV1

SECRET = "a-subscription-secret"
BODY = b'{"referral_id": "r-1", "provision_id": "p-1"}'  # offer_accepted and offer_started alike
ACCEPTED = OfferAcceptedV1.event_type
STARTED = OfferStartedV1.event_type
NOW = 1_780_000_000


def signed(timestamp: int = NOW) -> str:
    return sign(
        secret=SECRET, body=BODY, timestamp=timestamp, event_id="e-1", event_type=ACCEPTED, subject="r-1"
    )


def v2_verifies(
    header: str, *, event_id: str = "e-1", event_type: str = ACCEPTED, subject: str = "r-1"
) -> bool:
    return verify_v2(
        secret=SECRET,
        body=BODY,
        header=header,
        event_id=event_id,
        event_type=event_type,
        subject=subject,
        now=NOW,
    )


def test_v2_verifies_the_event_as_signed() -> None:
    assert v2_verifies(signed())


def test_v2_refuses_the_same_body_as_another_event() -> None:
    header = signed()
    assert not v2_verifies(header, event_type=STARTED)
    assert not v2_verifies(header, event_id="e-2")  # a new ce-id would get past deduplication
    assert not v2_verifies(header, subject="r-2")


def test_v2_refuses_a_stale_a_foreign_or_a_malformed_signature() -> None:
    assert not v2_verifies(signed(NOW - 301))
    assert not verify_v2(
        secret="another",
        body=BODY,
        header=signed(),
        event_id="e-1",
        event_type=ACCEPTED,
        subject="r-1",
        now=NOW,
    )
    assert not v2_verifies(signed().split(",v2=")[0])  # v1 alone does not pass for v2
    assert not v2_verifies(f"t={NOW},v2=é")  # not ASCII: refused, not raised
    assert not v2_verifies("")


def test_v1_is_still_the_signature_of_the_timestamp_and_body() -> None:
    parts = dict(item.split("=", 1) for item in signed().split(","))
    expected = hmac.new(SECRET.encode(), f"{NOW}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert parts["v1"] == expected
    assert verify(secret=SECRET, body=BODY, header=signed(), now=NOW)
    assert not verify(secret=SECRET, body=BODY, header=f"t={NOW},v1=é", now=NOW)


def test_a_delivery_is_signed_for_the_ce_attributes_it_is_sent_with() -> None:
    delivery = {
        "_id": "d-1",
        "body": BODY,
        "headers": {
            "ce_id": "e-1",
            "ce_type": ACCEPTED,
            "ce_subject": "r-1",
            "content-type": "application/json",
        },
    }
    headers = _headers(delivery, {"secret": SECRET})
    assert verify_v2(
        secret=SECRET,
        body=BODY,
        header=headers[SIGNATURE_HEADER],
        event_id=headers["ce-id"],
        event_type=headers["ce-type"],
        subject=headers["ce-subject"],
        now=time.time(),
    )
