"""The retry consumer and the areas sharing a stream: the retry topics are the stream's, and each
area's retry group reads them whole, so another area's parked events must be passed over at once,
before waiting for them to fall due and before reading them (no second dead letter)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from aiokafka.structs import ConsumerRecord
from faststream.kafka import KafkaBroker, KafkaMessage
from signpost.shared.events import Envelope, EventData, new_event, to_kafka_headers, to_kafka_value
from signpost.shared.kafka import EventConsumer
from signpost.shared.retries import Failure, Origin
from signpost.shared.settings import Settings
from signpost.shared.topics import Topics

from tests.unit.shared.test_events import submitted

OURS, THEIRS = "E06000023", "E06000024"


@dataclass
class FakeMessage:
    raw_message: ConsumerRecord[bytes, bytes]
    nacked: int = 0

    async def nack(self) -> None:
        self.nacked += 1


@dataclass
class FakeBroker:
    published: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    async def publish(self, value: bytes, topic: str, *, key: bytes | None, headers: dict[str, str]) -> None:
        self.published.append((topic, headers))


@dataclass
class Area:
    settings: Settings
    broker: FakeBroker = field(default_factory=FakeBroker)
    handled: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def consumer(self) -> EventConsumer:
        async def handler(envelope: Envelope[EventData]) -> None:
            self.handled.append(envelope.id)

        return EventConsumer(
            broker=cast(KafkaBroker, self.broker),
            settings=self.settings,
            service="routing",
            handler=handler,
            topics=Topics.from_settings(self.settings),
            on_other_area=self.skipped.append,
        )


def parked_record(tenant: str, *, due_in: timedelta, retry_headers: bool = True) -> FakeMessage:
    """A submitted event of `tenant` parked by its routing on the shared retry topic."""
    event: Envelope[EventData] = new_event(submitted(), source="/routing", tenant=tenant)
    now = datetime.now(UTC)
    failure = Failure.first(
        service="routing", origin=Origin("signpost.referrals", 0, 7), error="boom", now=now
    )
    headers = {**to_kafka_headers(event)}
    if retry_headers:
        headers |= failure.retry_headers(not_before=now + due_in)
    record: ConsumerRecord[bytes, bytes] = ConsumerRecord(
        topic="signpost.retry.routing",
        partition=0,
        offset=3,
        timestamp=int(now.timestamp() * 1000),
        timestamp_type=0,
        key=b"r-1",
        value=to_kafka_value(event),
        checksum=None,
        serialized_key_size=3,
        serialized_value_size=10,
        headers=[(name, text.encode()) for name, text in headers.items()],
    )
    return FakeMessage(record)


def area(tenant: str) -> Area:
    return Area(Settings(_env_file=None, tenant=tenant, retry_delays_s=(30, 300)))


async def test_another_areas_parked_event_not_yet_due_is_skipped_and_committed_at_once() -> None:
    ours = area(OURS)
    message = parked_record(THEIRS, due_in=timedelta(seconds=30))
    await ours.consumer().on_retry(cast(KafkaMessage, cast(Any, message)))
    assert message.nacked == 0  # returned normally: committed, not read again for a second each time
    assert ours.handled == [] and ours.broker.published == []
    assert ours.skipped == ["uk.signpost.referral.submitted.v1"]  # counted like the main consumer's skips


async def test_another_areas_malformed_retry_record_is_not_dead_lettered_again() -> None:
    ours = area(OURS)
    message = parked_record(THEIRS, due_in=timedelta(0), retry_headers=False)
    await ours.consumer().on_retry(cast(KafkaMessage, cast(Any, message)))
    assert ours.broker.published == [] and ours.skipped == ["uk.signpost.referral.submitted.v1"]


async def test_this_areas_parked_event_is_still_retried_or_waited_for() -> None:
    ours = area(OURS)
    due = parked_record(OURS, due_in=timedelta(0))
    await ours.consumer().on_retry(cast(KafkaMessage, cast(Any, due)))
    assert len(ours.handled) == 1 and ours.skipped == []
    later = parked_record(OURS, due_in=timedelta(seconds=30))
    await ours.consumer().on_retry(cast(KafkaMessage, cast(Any, later)))
    assert later.nacked == 1 and len(ours.handled) == 1  # not due: read again later
    malformed = parked_record(OURS, due_in=timedelta(0), retry_headers=False)
    await ours.consumer().on_retry(cast(KafkaMessage, cast(Any, malformed)))
    assert [topic for topic, _ in ours.broker.published] == ["signpost.dead-letters"]
