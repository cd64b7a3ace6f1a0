import asyncio

import pytest
from signpost.shared.kafka import CUT_BODY_BYTES, cut_short
from signpost.shared.retries import Failure, Origin, dead_letter_headers

from signpost.platform import deadletters
from signpost.platform.cli import main
from signpost.platform.deadletters import CutShort, DeadLetter, one_per_source, parse_dead_letter
from tests.unit.shared.test_retries import NOW

SERVICES = ("intake", "routing", "analytics")
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
    # The kind and key too: the stuck-referral runbook looks for a handler failure by referral id.
    assert summary[:6] == ["7", "analytics", "handler-failed", "4", "signpost.referrals[2]@40", "r-1"]
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


def not_an_event(offset: int, service: str, origin: Origin) -> DeadLetter:
    headers = dead_letter_headers(
        kind="not-an-event", error="body: empty", service=service, origin=origin, attempts=0
    )
    return parse_dead_letter(offset, b"r-1", b"", [(k, v.encode()) for k, v in headers.items()])


@pytest.fixture
def dead_letter_topic(monkeypatch: pytest.MonkeyPatch) -> tuple[list[DeadLetter], list[DeadLetter]]:
    """The letters `signpost dlq` reads, and the ones it publishes again (no broker)."""
    monkeypatch.setenv("SIGNPOST_KAFKA_BOOTSTRAP", "127.0.0.1:9")
    stored: list[DeadLetter] = []
    published: list[DeadLetter] = []

    async def read(**_: str) -> list[DeadLetter]:
        return stored

    async def replay(*, bootstrap: str, letters: list[DeadLetter]) -> None:
        published.extend(letters)

    monkeypatch.setattr(deadletters, "read_dead_letters", read)
    monkeypatch.setattr(deadletters, "replay", replay)
    return stored, published


def test_replay_all_publishes_a_message_every_service_refused_once(
    dead_letter_topic: tuple[list[DeadLetter], list[DeadLetter]], capsys: pytest.CaptureFixture[str]
) -> None:
    stored, published = dead_letter_topic
    referral = Origin("signpost.referrals", 0, 3)
    stored += [not_an_event(offset, service, referral) for offset, service in enumerate(SERVICES)]
    stored.append(not_an_event(3, "routing", Origin("signpost.referrals", 1, 3)))

    assert main(["dlq", "replay", "--all"]) == 0

    assert [letter.offset for letter in published] == [0, 3]
    out = capsys.readouterr().out
    assert "replayed 0 to signpost.referrals (once for dead letter(s) [1, 2] too" in out
    assert "2 dead letter(s) repeated a message" in out


def test_replay_all_publishes_an_event_refused_again_after_a_replay_once(
    dead_letter_topic: tuple[list[DeadLetter], list[DeadLetter]], capsys: pytest.CaptureFixture[str]
) -> None:
    """A replayed event refused again is a second letter, from the replayed copy's place."""
    stored, published = dead_letter_topic
    for offset, origin in enumerate(
        (Origin("signpost.referrals", 2, 40), Origin("signpost.referrals", 2, 90))
    ):
        failure = Failure(
            service="routing", origin=origin, attempts=4, first_failed_at=NOW, last_error="KeyError: 'x'"
        )
        stored.append(
            parse_dead_letter(
                offset,
                b"r-1",
                b"{}",
                ORIGINAL + [(k, v.encode()) for k, v in failure.dead_letter_headers().items()],
            )
        )

    assert main(["dlq", "replay", "--all"]) == 0

    assert [letter.offset for letter in published] == [0]
    assert "replayed 0 to signpost.referrals (once for dead letter(s) [1] too" in capsys.readouterr().out


def test_letters_that_do_not_say_their_origin_are_not_folded_together() -> None:
    kept, folded = one_per_source([letter({}), parse_dead_letter(8, None, b"", [])])
    assert [dead.offset for dead in kept] == [7, 8] and folded == {}


def test_replay_all_of_an_empty_topic_has_nothing_to_do(
    dead_letter_topic: tuple[list[DeadLetter], list[DeadLetter]], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["dlq", "replay", "--all"]) == 0
    assert "nothing to replay" in capsys.readouterr().out
    assert dead_letter_topic[1] == []


def too_large(offset: int) -> DeadLetter:
    """A letter published as `publish_dead_letter` does when Kafka refused it whole."""
    headers = dead_letter_headers(
        kind="not-an-event",
        error="body: not JSON",
        service="intake",
        origin=Origin("signpost.referrals", 0, offset),
        attempts=0,
    )
    value, kept = cut_short(b"x" * (CUT_BODY_BYTES * 2), {"ce_id": "e-1", **headers})
    return parse_dead_letter(offset, b"r-1", value, [(k, v.encode()) for k, v in kept.items()])


def test_a_letter_cut_short_is_never_replayed(
    dead_letter_topic: tuple[list[DeadLetter], list[DeadLetter]], capsys: pytest.CaptureFixture[str]
) -> None:
    """Replaying it published its first 16 KiB to the referrals topic as if it were the message."""
    stored, published = dead_letter_topic
    stored += [not_an_event(0, "routing", Origin("signpost.referrals", 1, 3)), too_large(1)]
    assert stored[1].cut_short and not stored[0].cut_short

    assert main(["dlq", "replay", "--all"]) == 2
    assert main(["dlq", "replay", "1"]) == 2
    assert published == []  # not even the whole letter beside it
    err = capsys.readouterr().err
    assert "dead letter(s) [1] were cut short (too large to dead-letter whole)" in err
    assert main(["dlq", "replay", "0"]) == 0 and [letter.offset for letter in published] == [0]


def test_replay_itself_refuses_a_letter_cut_short() -> None:
    with pytest.raises(CutShort) as refused:
        asyncio.run(deadletters.replay(bootstrap="127.0.0.1:9", letters=[too_large(4)]))
    assert refused.value.offsets == [4]
