"""Kafka wiring: the broker factory, explicit topic creation, and the event subscribers.

Consumers are at-least-once (offsets commit after the handler succeeds) and made
effectively-once by the handlers' processed-event records. Failures are told apart
(see `signpost.shared.retries`): MongoDB away -> retried in place, in order; a
handler failing on a valid event -> parked on the service's retry topic and retried
later, then dead-lettered; not an event -> dead-lettered at once. A poison message
never blocks its partition. A service may take its events in batches (one transaction
for many); a batch its handler fails on is handled again event by event under the same
rules, so only the event at fault is parked.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeAlias

from aiokafka import ConsumerRecord
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import MessageSizeTooLargeError, TopicAlreadyExistsError, UnknownError
from faststream import AckPolicy
from faststream.kafka import KafkaBroker, KafkaMessage
from faststream.types import DecodedMessage
from signpost.shared.errors import describe_error
from signpost.shared.events import (
    EVENT_TYPES,
    Envelope,
    EventContractError,
    EventData,
    from_kafka,
    header_texts,
)
from signpost.shared.logging import bind_correlation_id, get_logger
from signpost.shared.retries import (
    DEAD_LETTER_HEADERS,
    NOT_AN_EVENT,
    Failure,
    Origin,
    Parked,
    backoff_delay,
    dead_letter_headers,
    is_infrastructure_failure,
    original_headers,
    retry_due,
)
from signpost.shared.settings import Settings
from signpost.shared.topics import RETRYING_SERVICES, Topics

log = get_logger(__name__)

EventHandler = Callable[[Envelope[EventData]], Awaitable[None]]
OtherArea = Callable[[str], None]  # told the type of each event of another area skipped
BatchHandler = Callable[[Sequence[Envelope[EventData]]], Awaitable[None]]
Step = Callable[[KafkaMessage], Awaitable[None]]
Record: TypeAlias = "ConsumerRecord[bytes, bytes]"

# The retry consumer waits for a parked event to fall due in slices this long, then
# reads it again, so stopping the service never waits behind a long retry delay.
RETRY_WAIT_SLICE_S = 1.0
# Batch subscribers: at most this many records per batch, and how long a fetch waits for any
# (FastStream then pauses as long again when there were none: keep it short for latency).
BATCH_MAX_RECORDS = 200
BATCH_POLL_MS = 20
# A dead letter too large for Kafka to take whole (the producer's request size, or the broker's
# message size) keeps this much of its body, and of the headers it came with, and says so:
# otherwise it would be read again and refused again for ever, and its partition never move on.
CUT_BODY_BYTES = 16 * 1024
CUT_HEADER_CHARS = 1024
CUT_HEADERS = 50


def create_broker(settings: Settings, *, service: str) -> KafkaBroker:
    bootstrap, _ = settings.require_servers()
    return KafkaBroker(
        bootstrap,
        client_id=f"signpost-{service}",
        acks="all",
        enable_idempotence=settings.kafka_idempotence,
        request_timeout_ms=settings.kafka_request_timeout_ms,
        # Topics are created explicitly with their final partition counts.
        allow_auto_create_topics=False,
        # On stop, subscribers wait this long for handlers in flight to finish and commit.
        graceful_timeout=settings.shutdown_budget.consumers_s,
        logger=None,
    )


class IdempotenceRefused(RuntimeError):
    """The broker gave no idempotent producer; aiokafka says only UnknownError."""


async def start_broker(broker: KafkaBroker, settings: Settings) -> None:
    """Start the broker's producer and subscribers, saying what to do when the broker refuses an
    idempotent producer (Tansu, the embedded broker, does)."""
    try:
        await broker.start()
    except UnknownError:
        if not settings.kafka_idempotence:
            raise
        raise IdempotenceRefused(
            "the Kafka broker refused an idempotent producer (InitProducerId answered UnknownError): "
            "Tansu, the embedded broker, has none; set SIGNPOST_KAFKA_IDEMPOTENCE=false for it, as "
            "`signpost run` does"
        ) from None


async def ensure_topics(settings: Settings) -> None:
    """Create every topic with its final partition count and the settings' replication factor.

    Existing topics are left as they are. Services run this at start-up as well as
    `signpost migrate`, so whichever reaches the brokers first creates the same topics.
    """
    bootstrap, _ = settings.require_servers()
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap, request_timeout_ms=settings.kafka_request_timeout_ms
    )
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [spec for spec in Topics.from_settings(settings).specs() if spec.name not in existing]
        for spec in missing:
            with suppress(TopicAlreadyExistsError):  # another process created it first
                replicas = settings.topic_replication_factor
                await admin.create_topics(
                    [NewTopic(spec.name, spec.partitions, replicas, topic_configs=spec.config)]
                )
    finally:
        await admin.close()


def subscribe_events(
    broker: KafkaBroker,
    *,
    settings: Settings,
    service: str,
    handler: EventHandler,
    topics: Sequence[str] = (),
    batch_handler: BatchHandler | None = None,
    on_other_area: OtherArea | None = None,
) -> None:
    """Feed every event on `topics` (default: the referrals topic) to `handler`, in the service's group.

    With `batch_handler`, events are read in batches and handed over together (one transaction
    for many); a batch it fails on is handled again event by event with `handler`, so only the
    event at fault is parked for a retry. The retry consumer always takes one event at a time.
    Also subscribes the service's retry consumer, so call this once per service:
    each subscriber costs a consumer-group join of several seconds on Tansu.

    The retry topics are the stream's, which the areas of a region share, so the retry consumer
    passes over another area's parked events (its `ce_tenant` header) before waiting for them to
    fall due or reading them, telling `on_other_area` their type; `handler` skips the main topics'.
    """
    if service not in RETRYING_SERVICES:
        raise ValueError(f"{service} has no retry topic: add it to topics.RETRYING_SERVICES first")
    names = Topics.from_settings(settings)
    consumer = EventConsumer(
        broker=broker,
        settings=settings,
        service=service,
        handler=handler,
        topics=names,
        batch_handler=batch_handler,
        on_other_area=on_other_area,
    )
    common: dict[str, Any] = {
        "auto_offset_reset": "earliest",
        "ack_policy": AckPolicy.NACK_ON_ERROR,
        "session_timeout_ms": settings.kafka_session_timeout_ms,
        "heartbeat_interval_ms": settings.kafka_heartbeat_interval_ms,
        "decoder": _undecoded,
        "parser": _without_null_headers,
    }
    main = topics or [names.referrals]
    # Only the main consumers are on the referral's path; the retry consumer waits for due times anyway.
    events: dict[str, Any] = {**common, "fetch_max_wait_ms": settings.kafka_fetch_max_wait_ms}
    if batch_handler is None:
        broker.subscriber(*main, group_id=names.group(service), title=f"{service}:events", **events)(
            consumer.subscriber_for(consumer.on_event)
        )
    else:
        broker.subscriber(
            *main,
            group_id=names.group(service),
            title=f"{service}:events",
            batch=True,
            max_records=BATCH_MAX_RECORDS,
            batch_timeout_ms=BATCH_POLL_MS,
            **events,
        )(consumer.subscriber_for(consumer.on_batch))
    broker.subscriber(
        names.retry(service), group_id=names.retry_group(service), title=f"{service}:retries", **common
    )(consumer.subscriber_for(consumer.on_retry))


@dataclass(frozen=True)
class EventConsumer:
    """One service's treatment of each message, from its topics and from its retry topic."""

    broker: KafkaBroker
    settings: Settings
    service: str
    handler: EventHandler
    topics: Topics
    batch_handler: BatchHandler | None = None
    on_other_area: OtherArea | None = None

    async def on_event(self, message: KafkaMessage) -> None:
        record = _record(message)
        headers = _headers(record)
        origin = Origin(record.topic, record.partition, record.offset)
        envelope = await self._read(record, headers, origin)
        if envelope is not None:
            await self._handle_or_park(record, headers, origin, envelope)

    async def on_batch(self, message: KafkaMessage) -> None:
        """The batch's events in one call; if that fails on something other than MongoDB being
        away, each event on its own, so only the one at fault is parked (then dead-lettered)."""
        assert self.batch_handler is not None
        batch_handler = self.batch_handler
        events: list[tuple[Record, dict[str, str], Origin, Envelope[EventData]]] = []
        for record in _records(message):
            headers = _headers(record)
            origin = Origin(record.topic, record.partition, record.offset)
            envelope = await self._read(record, headers, origin)
            if envelope is not None:
                events.append((record, headers, origin, envelope))
        if not events:
            return
        envelopes = [envelope for *_, envelope in events]
        try:
            await self._in_place(lambda: batch_handler(envelopes), envelopes[0])
            return
        except Exception as exc:
            log.warning(
                "event batch failed; handling its events one by one",
                events=len(events),
                error=describe_error(exc),
            )
        for record, headers, origin, envelope in events:
            await self._handle_or_park(record, headers, origin, envelope)

    async def _handle_or_park(
        self, record: Record, headers: dict[str, str], origin: Origin, envelope: Envelope[EventData]
    ) -> None:
        try:
            await self._handle(envelope)
        except Exception as exc:
            failure = Failure.first(
                service=self.service, origin=origin, error=describe_error(exc), now=datetime.now(UTC)
            )
            await self._retry_later(record, headers, envelope, failure)

    async def on_retry(self, message: KafkaMessage) -> None:
        record = _record(message)
        headers = _headers(record)
        if self._of_another_area(headers):
            return  # committed at once: not waited for, not read, not dead-lettered again
        try:
            parked = Parked.from_headers(headers)
        except ValueError as exc:
            origin = Origin(record.topic, record.partition, record.offset)
            await self._dead_letter_unreadable(record, headers, origin, f"retry headers: {exc}")
            return
        latest = self._latest_due(record)
        wait_s = parked.wait_s(datetime.now(UTC), latest=latest)
        if wait_s > 0:
            await asyncio.sleep(min(wait_s, RETRY_WAIT_SLICE_S))
            if wait_s > RETRY_WAIT_SLICE_S:
                await message.nack()  # not due yet: read it again, without committing past it
                return
        original = original_headers(headers)
        envelope = await self._read(record, original, parked.failure.origin)
        if envelope is None:
            return
        if latest is not None and parked.not_before > latest:
            log.warning(
                "parked event due later than the longest retry delay after it was parked; retried now",
                event_id=envelope.id,
                not_before=parked.not_before.isoformat(),
            )
        try:
            await self._handle(envelope)
        except Exception as exc:
            await self._retry_later(
                record, original, envelope, parked.failure.again(error=describe_error(exc))
            )
            return
        log.info(
            "parked event handled",
            event_id=envelope.id,
            type=envelope.type,
            attempts=parked.failure.attempts + 1,
        )

    def _of_another_area(self, headers: Mapping[str, str]) -> bool:
        """A record parked by another area's service (each area's retry group reads the shared retry
        topic whole): that area's business, counted as skipped. One without a tenant is this area's
        to dead-letter (every area's would then, as each reads it)."""
        tenant = headers.get("ce_tenant")
        if tenant is None or tenant == self.settings.tenant:
            return False
        event_type = headers.get("ce_type", "")
        event_type = event_type if event_type in EVENT_TYPES else "unknown"  # a label: known values only
        log.debug("parked event of another area skipped", tenant=tenant[:100], type=event_type)
        if self.on_other_area is not None:
            self.on_other_area(event_type)
        return True

    def _latest_due(self, record: Record) -> datetime | None:
        """When a record parked on the retry topic is due at the latest: the longest retry delay
        after it was parked (its timestamp), None when it has none."""
        if record.timestamp < 0:
            return None
        parked_at = datetime.fromtimestamp(record.timestamp / 1000, UTC)
        return retry_due(parked_at, max(self.settings.retry_delays_s))

    def subscriber_for(self, step: Step) -> Step:
        async def consume(message: KafkaMessage) -> None:
            try:
                await step(message)
            except Exception:
                # Only publishing to the retry or dead-letter topic fails here, i.e. Kafka
                # itself is away: pause, then raise so the message is read again.
                log.exception("could not park or dead-letter a message; it will be read again")
                await asyncio.sleep(self.settings.consumer_backoff_max_s)
                raise

        return consume

    async def _read(
        self, record: Record, headers: dict[str, str], origin: Origin
    ) -> Envelope[EventData] | None:
        try:
            return from_kafka(record.value, headers, max_bytes=self.settings.event_max_bytes)
        except EventContractError as exc:
            await self._dead_letter_unreadable(record, headers, origin, exc.reason)
            return None

    async def _handle(self, envelope: Envelope[EventData]) -> None:
        """Run the handler; while MongoDB is away, wait and run it again in place.

        Every other message would fail the same way, so parking this one would
        only reorder the stream: holding the partition keeps order and loses nothing.
        """
        await self._in_place(lambda: self.handler(envelope), envelope)

    async def _in_place(self, call: Callable[[], Awaitable[None]], envelope: Envelope[EventData]) -> None:
        """Run `call`, again and again while MongoDB is away; `envelope` (the first of a batch) is
        named in the log."""
        bind_correlation_id(envelope.correlationid)
        attempt = 0
        while True:
            try:
                await call()
                return
            except Exception as exc:
                if not is_infrastructure_failure(exc):
                    raise
                attempt += 1
                delay = backoff_delay(
                    attempt,
                    initial_s=self.settings.consumer_backoff_initial_s,
                    max_s=self.settings.consumer_backoff_max_s,
                )
                log.warning(
                    "database unavailable; retrying the event in place",
                    attempt=attempt,
                    retry_in_s=delay,
                    error=describe_error(exc),
                    event_id=envelope.id,
                    type=envelope.type,
                )
                await asyncio.sleep(delay)

    async def _retry_later(
        self, record: Record, headers: dict[str, str], envelope: Envelope[EventData], failure: Failure
    ) -> None:
        """Park the event on the retry topic, or dead-letter it once its retries are used up."""
        delay = failure.next_delay(self.settings.retry_delays_s)
        context = {
            "event_id": envelope.id,
            "type": envelope.type,
            "attempts": failure.attempts,
            "error": failure.last_error,
            "origin": str(failure.origin),
        }
        if delay is None:
            log.error("event handler failed on its last attempt; dead-lettered", **context)
            await publish_dead_letter(
                self.broker,
                self.topics.dead_letters,
                value=record.value or b"",
                key=record.key,
                headers={**headers, **failure.dead_letter_headers()},
            )
            return
        log.warning("event handler failed; parked for a retry", retry_in_s=delay, exc_info=True, **context)
        not_before = retry_due(datetime.now(UTC), delay)
        await self._publish(
            self.topics.retry(self.service),
            record,
            {**headers, **failure.retry_headers(not_before=not_before)},
        )

    async def _dead_letter_unreadable(
        self, record: Record, headers: dict[str, str], origin: Origin, reason: str
    ) -> None:
        await dead_letter(
            self.broker,
            topics=self.topics,
            service=self.service,
            record=record,
            headers=headers,
            origin=origin,
            kind=NOT_AN_EVENT,
            error=reason,
        )

    async def _publish(self, topic: str, record: Record, headers: dict[str, str]) -> None:
        """The original bytes and key, so a replay is the message the producer sent."""
        await self.broker.publish(record.value or b"", topic, key=record.key, headers=headers)


async def dead_letter(
    broker: KafkaBroker,
    *,
    topics: Topics,
    service: str,
    record: Record,
    kind: str,
    error: str,
    headers: dict[str, str] | None = None,
    origin: Origin | None = None,
    attempts: int = 0,
) -> None:
    """Send `record`'s original bytes, key and headers to the dead-letter topic with why.

    `headers`/`origin` default to the record's own; a parked retry passes the original ones.
    """
    origin = origin or Origin(record.topic, record.partition, record.offset)
    log.warning("dead-lettered a message", kind=kind, error=error, origin=str(origin))
    extra = dead_letter_headers(kind=kind, error=error, service=service, origin=origin, attempts=attempts)
    await publish_dead_letter(
        broker,
        topics.dead_letters,
        value=record.value or b"",
        key=record.key,
        headers={**(_headers(record) if headers is None else headers), **extra},
    )


async def publish_dead_letter(
    broker: KafkaBroker, topic: str, *, value: bytes, key: bytes | None, headers: dict[str, str]
) -> None:
    """Publish a dead letter whole or, when Kafka refuses it as too large, cut short (`cut_short`)."""
    try:
        await broker.publish(value, topic, key=key, headers=headers)
        return
    except MessageSizeTooLargeError:
        log.warning(
            "dead letter too large to publish whole; publishing it cut short",
            bytes=len(value),
            origin=f"{headers.get('dlq_topic')}[{headers.get('dlq_partition')}]@{headers.get('dlq_offset')}",
        )
    cut_value, cut_headers = cut_short(value, headers)
    await broker.publish(cut_value, topic, key=key, headers=cut_headers)


def cut_short(value: bytes, headers: Mapping[str, str]) -> tuple[bytes, dict[str, str]]:
    """A dead letter small enough for Kafka: the body's first `CUT_BODY_BYTES`, the dead letter's
    own `dlq_*` headers, the first `CUT_HEADERS` of the others, every header to `CUT_HEADER_CHARS`,
    and `dlq_error` saying what was cut (a replay of it would be refused again)."""
    ours = [(name, text) for name, text in headers.items() if name in DEAD_LETTER_HEADERS]
    theirs = [(name, text) for name, text in headers.items() if name not in DEAD_LETTER_HEADERS]
    kept = {name[:CUT_HEADER_CHARS]: text[:CUT_HEADER_CHARS] for name, text in [*theirs[:CUT_HEADERS], *ours]}
    what = []
    if len(value) > CUT_BODY_BYTES:
        what.append(f"body cut to its first {CUT_BODY_BYTES} of {len(value)} bytes")
    if len(theirs) > CUT_HEADERS or any(
        len(name) > CUT_HEADER_CHARS or len(text) > CUT_HEADER_CHARS for name, text in headers.items()
    ):
        what.append(f"headers cut to {CUT_HEADERS} besides its own, of {CUT_HEADER_CHARS} characters at most")
    kept["dlq_error"] = (
        f"{kept.get('dlq_error', '')}; too large to dead-letter whole: {', '.join(what) or 'nothing to cut'}"
    )
    return value[:CUT_BODY_BYTES], kept


async def _without_null_headers(
    raw: Record | tuple[Record, ...], parse: Callable[[Any], Awaitable[KafkaMessage]]
) -> KafkaMessage:
    """FastStream's own parser decodes every header's value, and Kafka allows a header without
    one: it failed before any handler ran, rewinding its partition for ever. Such a header is
    dropped first, as `header_texts` reads it: no header at all (a null `ce_type` is a missing one)."""
    for record in raw if isinstance(raw, tuple) else (raw,):
        if any(value is None for _, value in record.headers):
            record.headers = [(name, value) for name, value in record.headers if value is not None]
    return await parse(raw)


async def _undecoded(message: KafkaMessage) -> DecodedMessage:
    """Leave the body alone: `from_kafka` reads it. FastStream's own decoder parses a
    JSON content-type eagerly, and a malformed body then fails before any handler
    runs, rewinding its partition forever."""
    return message.body


def _record(message: KafkaMessage) -> Record:
    raw = message.raw_message
    assert not isinstance(raw, tuple), "a batch goes to on_batch"
    return raw


def _records(message: KafkaMessage) -> tuple[Record, ...]:
    raw = message.raw_message
    return raw if isinstance(raw, tuple) else (raw,)


def _headers(record: Record) -> dict[str, str]:
    return header_texts(record.headers)
