"""How long the services' consumers let the broker hold an empty fetch.

Tansu keeps holding a fetch that found nothing when data arrives meanwhile, so on the
embedded broker each hop may wait up to half of it. FastStream and
aiokafka keep the value only in private fields, so these tests read those: if an upgrade
moves them, the test fails and the wiring needs looking at again.
"""

from typing import Any

import pytest
from faststream.kafka import KafkaBroker
from signpost.analytics.projections.consumer import create_consumer
from signpost.shared.kafka import subscribe_events
from signpost.shared.settings import Settings
from signpost.shared.topics import Topics

AIOKAFKA_DEFAULT_MS = 500


async def _ignore(_: Any) -> None:
    return None


def _fetch_waits(settings: Settings, **batching: Any) -> dict[str | None, int]:
    broker = KafkaBroker("127.0.0.1:9")  # never connected
    subscribe_events(broker, settings=settings, service="routing", handler=_ignore, **batching)
    return {s.group_id: s._connection_args["fetch_max_wait_ms"] for s in broker.subscribers}  # type: ignore[attr-defined]


def test_event_consumers_wait_as_configured_and_the_retry_consumer_keeps_the_default() -> None:
    settings = Settings(_env_file=None, kafka_fetch_max_wait_ms=37)
    topics = Topics.from_settings(settings)
    expected = {topics.group("routing"): 37, topics.retry_group("routing"): AIOKAFKA_DEFAULT_MS}
    assert _fetch_waits(settings) == expected
    assert _fetch_waits(settings, batch_handler=_ignore) == expected


def test_only_the_services_with_a_retry_topic_subscribe_a_retry_consumer() -> None:
    """Analytics retries a failed batch in place: no retry topic is created for it, so its
    consumer must not subscribe one (a client would have the broker create it with defaults)."""
    settings = Settings(_env_file=None)
    retry_topics = {spec.name for spec in Topics.from_settings(settings).specs() if ".retry." in spec.name}
    assert retry_topics == {"signpost.retry.intake", "signpost.retry.routing"}
    with pytest.raises(ValueError, match="analytics has no retry topic"):
        subscribe_events(KafkaBroker("127.0.0.1:9"), settings=settings, service="analytics", handler=_ignore)


async def test_analytics_projection_consumer_waits_as_configured() -> None:
    settings = Settings(
        _env_file=None,
        kafka_bootstrap="127.0.0.1:9",
        mongodb_url="mongodb://127.0.0.1:9",
        kafka_fetch_max_wait_ms=37,
    )
    consumer = create_consumer(settings, group="analytics")
    try:
        assert consumer._fetch_max_wait_ms == 37
    finally:
        await consumer.stop()  # never started; closing it keeps the ResourceWarning away
