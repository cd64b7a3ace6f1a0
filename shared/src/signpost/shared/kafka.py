"""Kafka wiring: the broker factory, explicit topic creation, and the event subscriber.

Consumers are at-least-once (offsets commit after the handler succeeds; a failure
rewinds the partition) and made effectively-once by the handlers' processed-event
records. A message that is not a valid event goes to the dead-letter topic with
its original bytes and headers, and consumption moves on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextlib import suppress
from typing import Any

from aiokafka import ConsumerRecord
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from faststream import AckPolicy
from faststream.kafka import KafkaBroker, KafkaMessage
from signpost.shared.events import (
    Envelope,
    EventContractError,
    EventData,
    from_kafka,
    to_kafka_headers,
    to_kafka_value,
)
from signpost.shared.logging import bind_correlation_id, get_logger
from signpost.shared.settings import Settings
from signpost.shared.topics import Topics

log = get_logger(__name__)

EventHandler = Callable[[Envelope[EventData]], Awaitable[None]]

# A failing handler (say MongoDB is briefly away) is retried after this pause
# rather than in a tight loop; poison messages never get here (they are dead-lettered).
HANDLER_FAILURE_PAUSE_S = 1.0


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
        logger=None,
    )


async def ensure_topics(settings: Settings) -> None:
    """Create every topic with its final partition count; existing topics are left as they are."""
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
                await admin.create_topics(
                    [NewTopic(spec.name, spec.partitions, 1, topic_configs=spec.config)]
                )
    finally:
        await admin.close()


async def publish_event(broker: KafkaBroker, *, topic: str, envelope: Envelope[Any]) -> None:
    await broker.publish(
        to_kafka_value(envelope),
        topic,
        key=envelope.subject.encode(),
        headers=to_kafka_headers(envelope),
    )


def subscribe_events(
    broker: KafkaBroker,
    *,
    settings: Settings,
    service: str,
    handler: EventHandler,
) -> None:
    """Feed every referral event to `handler` within the service's consumer group."""
    topics = Topics.from_settings(settings)

    @broker.subscriber(
        topics.referrals,
        group_id=topics.group(service),
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.NACK_ON_ERROR,
        session_timeout_ms=settings.kafka_session_timeout_ms,
        heartbeat_interval_ms=settings.kafka_heartbeat_interval_ms,
        title=f"{service}:referral-events",
    )
    async def on_referral_event(message: KafkaMessage) -> None:
        try:
            envelope = from_kafka(message.body, message.headers)
        except EventContractError as exc:
            await dead_letter(broker, topics=topics, message=message, error=exc.reason, service=service)
            return
        bind_correlation_id(envelope.correlationid)
        try:
            await handler(envelope)
        except Exception:
            log.exception("event handler failed; will retry", event_id=envelope.id, type=envelope.type)
            await asyncio.sleep(HANDLER_FAILURE_PAUSE_S)
            raise


async def dead_letter(
    broker: KafkaBroker, *, topics: Topics, message: KafkaMessage, error: str, service: str
) -> None:
    raw = message.raw_message
    assert not isinstance(raw, tuple)
    await dead_letter_record(broker, topics=topics, record=raw, error=error, service=service)


async def dead_letter_record(
    broker: KafkaBroker, *, topics: Topics, record: ConsumerRecord[Any, Any], error: str, service: str
) -> None:
    """`dead_letter` for a record read with aiokafka directly (batch consumers)."""
    raw = record
    headers = {key: value.decode("utf-8", "replace") for key, value in raw.headers}
    headers.update(
        {
            "dlq_error": error,
            "dlq_service": service,
            "dlq_topic": raw.topic,
            "dlq_partition": str(raw.partition),
            "dlq_offset": str(raw.offset),
        }
    )
    log.warning(
        "dead-lettered a message that is not a valid event",
        error=error,
        topic=raw.topic,
        partition=raw.partition,
        offset=raw.offset,
    )
    await broker.publish(raw.value or b"", topics.dead_letters, key=raw.key, headers=headers)
