"""Publishing one event straight to Kafka, as a producer without an outbox would: the services
always publish through their outbox relay, so only tests put events on a topic this way."""

from __future__ import annotations

from typing import Any

from faststream.kafka import KafkaBroker
from signpost.shared.events import Envelope, to_kafka_headers, to_kafka_value


async def publish_event(broker: KafkaBroker, *, topic: str, envelope: Envelope[Any]) -> None:
    await broker.publish(
        to_kafka_value(envelope),
        topic,
        key=envelope.subject.encode(),
        headers=to_kafka_headers(envelope),
        # FastStream's own `correlation_id` header, else a random one that disagrees with ce_correlationid.
        correlation_id=envelope.correlationid,
    )
