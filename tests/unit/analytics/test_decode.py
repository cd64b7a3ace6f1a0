"""Analytics reads its records as intake and routing do: what is not an event is set aside with the reason."""

from __future__ import annotations

import json

from aiokafka import ConsumerRecord
from signpost.analytics.projections.consumer import decode
from signpost.shared.events import Envelope, EventData, to_kafka_headers, to_kafka_value

from tests.analytics_events import lifecycle

LIMIT = 1024


def record(envelope: Envelope[EventData], value: bytes, offset: int) -> ConsumerRecord[bytes, bytes]:
    headers = [(name, text.encode()) for name, text in to_kafka_headers(envelope).items()]
    return ConsumerRecord("referrals", 0, offset, 0, 0, None, value, None, 0, len(value), headers)


def test_a_body_over_the_event_size_limit_is_set_aside_unread_and_the_rest_are_read() -> None:
    submitted = lifecycle("r-1", "routed")[0]
    body = to_kafka_value(submitted)
    padded = json.dumps({**json.loads(body), "padding": "x" * LIMIT}).encode()

    events, invalid = decode([record(submitted, padded, 0), record(submitted, body, 1)], max_bytes=LIMIT)

    assert [(r.offset, envelope.id) for r, envelope in events] == [(1, submitted.id)]
    [(oversized, reason)] = invalid
    assert oversized.offset == 0 and f"over the {LIMIT}-byte limit" in reason
