from signpost.shared.retries import Failure, Origin, dead_letter_headers

from signpost.platform.deadletters import DeadLetter, parse_dead_letter
from tests.unit.shared.test_retries import NOW

ORIGINAL = [("ce_id", b"e-1"), ("ce_type", b"uk.signpost.referral.submitted.v1")]


def letter(extra: dict[str, str]) -> DeadLetter:
    return parse_dead_letter(
        7, b"r-1", b'{"referral_id": "r-1"}', ORIGINAL + [(k, v.encode()) for k, v in extra.items()]
    )


def test_a_handler_failure_reads_back_with_attempts_origin_and_only_the_original_headers() -> None:
    failure = Failure(
        service="analytics",
        origin=Origin("signpost.referrals", 2, 40),
        attempts=4,
        first_failed_at=NOW,
        last_error="KeyError: 'locality'",
    )
    dead = letter({**failure.dead_letter_headers(), "retry_attempts": "3"})
    assert dead.headers == {"ce_id": "e-1", "ce_type": "uk.signpost.referral.submitted.v1"}
    assert (dead.service, dead.attempts, dead.error) == ("analytics", "4", "KeyError: 'locality'")
    assert dead.original_topic == "signpost.referrals" and dead.origin == "signpost.referrals[2]@40"
    assert dead.replayable
    summary = dead.summary().split()
    assert summary[:4] == ["7", "analytics", "4", "signpost.referrals[2]@40"]
    assert "attempts:   4 (first failed 2026-11-24T09:00:00+00:00)" in dead.details()


def test_a_message_that_was_not_an_event_shows_zero_attempts() -> None:
    headers = dead_letter_headers(
        kind="not-an-event",
        error="body: empty",
        service="routing",
        origin=Origin("signpost.referrals", 0, 3),
        attempts=0,
    )
    dead = letter(headers)
    assert dead.attempts == "0" and dead.first_failed_at is None
    assert "attempts:   0\n" in dead.details()


def test_a_letter_without_an_origin_cannot_be_replayed() -> None:
    dead = letter({})
    assert not dead.replayable and dead.error == "(unknown)"
