"""A dead letter too large for Kafka is published cut short, keeping why and where from."""

from datetime import UTC, datetime

from signpost.shared.kafka import CUT_BODY_BYTES, CUT_HEADER_CHARS, CUT_HEADERS, cut_short
from signpost.shared.retries import DEAD_LETTER_HEADERS, Origin, dead_letter_headers

DLQ = dead_letter_headers(
    kind="not-an-event",
    error="body: 2000000 bytes, over the 262144-byte limit for one event",
    service="routing",
    origin=Origin("signpost.referrals", 2, 41),
    attempts=0,
)


def test_dead_letter_headers_are_those_it_may_set() -> None:
    every = dead_letter_headers(
        kind="handler-failed",
        error="e",
        service="s",
        origin=Origin("t", 0, 0),
        attempts=3,
        first_failed_at=datetime.now(UTC),
    )
    assert set(every) == DEAD_LETTER_HEADERS


def test_the_body_is_cut_and_the_reason_says_so() -> None:
    value = b"x" * 2_000_000
    cut, headers = cut_short(value, {"ce_type": "uk.signpost.referral.submitted.v1", **DLQ})
    assert cut == value[:CUT_BODY_BYTES]
    assert headers == {
        "ce_type": "uk.signpost.referral.submitted.v1",
        **DLQ,
        "dlq_error": f"{DLQ['dlq_error']}; too large to dead-letter whole: "
        f"body cut to its first {CUT_BODY_BYTES} of 2000000 bytes",
    }


def test_headers_are_cut_too_but_never_the_dead_letters_own() -> None:
    # Headers named like a dead letter's own, sent ahead of them, do not crowd them out.
    many = {f"dlq_{n:03}": "v" * (CUT_HEADER_CHARS + 5) for n in range(CUT_HEADERS + 10)}
    cut, headers = cut_short(b"{}", {**many, **DLQ})
    assert cut == b"{}"
    theirs = [name for name in headers if name not in DEAD_LETTER_HEADERS]
    assert theirs == list(many)[:CUT_HEADERS]
    assert all(len(headers[name]) == CUT_HEADER_CHARS for name in theirs)
    assert {name: headers[name] for name in DLQ if name != "dlq_error"} == {
        name: text for name, text in DLQ.items() if name != "dlq_error"
    }
    assert headers["dlq_error"] == (
        f"{DLQ['dlq_error']}; too large to dead-letter whole: "
        f"headers cut to {CUT_HEADERS} besides its own, of {CUT_HEADER_CHARS} characters at most"
    )
