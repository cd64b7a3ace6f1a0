"""The ops view on a real broker: lag rises while a consumer is stopped and falls to 0 when it
comes back; throughput, last event times, dead letters; only ops and admin may read it."""

from __future__ import annotations

from collections.abc import Awaitable
from contextlib import AsyncExitStack
from typing import Any

import httpx
from aiokafka import AIOKafkaProducer
from signpost.analytics.app import create_app as create_analytics
from signpost.routing.app import create_app as create_routing
from signpost.shared.events import Envelope, EventData, new_event, to_kafka_headers, to_kafka_value
from signpost.shared.settings import SERVICE_NAMES, Settings
from signpost.shared.topics import Topics

from signpost.platform.processes import free_port
from tests.conftest import Tokens, eventually, serving
from tests.unit.shared.test_events import submitted

FAST_SAMPLING = {"ops_sample_interval_s": 0.2}


def fast(settings: Settings) -> Settings:
    return settings.model_copy(update=FAST_SAMPLING)


async def publish_referrals(settings: Settings, count: int, *, start: int = 0) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    await producer.start()
    try:
        for n in range(start, start + count):
            event: Envelope[EventData] = new_event(
                submitted(f"ops-{n}"), source="/tests", tenant=settings.tenant
            )
            await producer.send_and_wait(
                Topics.from_settings(settings).referrals,
                to_kafka_value(event),
                key=event.subject.encode(),
                headers=[(k, v.encode()) for k, v in to_kafka_headers(event).items()],
            )
    finally:
        await producer.stop()


async def group_lag(
    analytics: httpx.AsyncClient, headers: dict[str, str], group: str, *, records: int | None = None
) -> int | None:
    """The group's total lag, once the sampled log holds `records` records (when given)."""
    view = (await analytics.get("/v1/ops", headers=headers)).json()
    if (
        records is not None
        and sum(row["retained"] for row in view["topics"] if "referrals" in row["topic"]) != records
    ):
        return None
    rows = [row for row in view["lag"] if row["group"] == group]
    return sum(row["lag"] for row in rows) if rows else None


async def test_lag_rises_while_a_consumer_is_stopped_and_falls_to_zero_when_it_returns(
    settings: Settings,
) -> None:
    settings = fast(settings)
    ops = {"Authorization": f"Bearer {Tokens(settings).token('ops', 'la-digital')}"}
    topics = Topics.from_settings(settings)
    routing_group = topics.group("routing")
    async with AsyncExitStack() as stack:
        analytics = await stack.enter_async_context(serving(create_analytics(settings)))
        async with serving(create_routing(settings)):
            await publish_referrals(settings, 3)
            # Three submissions and routing's three decisions, all read by routing.
            await eventually(
                lambda: _equals(group_lag(analytics, ops, routing_group, records=6), 0),
                what="routing caught up",
            )
        # Routing is stopped: what arrives now waits for it.
        await publish_referrals(settings, 5, start=3)
        await eventually(
            lambda: _equals(group_lag(analytics, ops, routing_group, records=11), 5), what="lag of 5"
        )
        view = (await analytics.get("/v1/ops", headers=ops)).json()
        behind = [row for row in view["lag"] if row["group"] == routing_group and row["lag"]]
        assert all(row["topic"] == topics.referrals for row in behind)
        assert all(row["high_watermark"] - row["committed"] == row["lag"] for row in behind)
        assert {p["lag"][routing_group] for p in view["history"][-1:]} == {5}

        async with serving(create_routing(settings)):
            await eventually(
                lambda: _equals(group_lag(analytics, ops, routing_group, records=16), 0),
                timeout_s=60,
                what="routing caught up again",
            )
        # Analytics consumed everything too: its own lag is 0 once it has.
        await eventually(
            lambda: _equals(group_lag(analytics, ops, topics.group("analytics"), records=16), 0),
            what="analytics caught up",
        )


async def test_throughput_last_event_and_dead_letters(settings: Settings) -> None:
    settings = fast(settings)
    admin = {"Authorization": f"Bearer {Tokens(settings).admin()}"}
    topics = Topics.from_settings(settings)
    async with serving(create_analytics(settings)) as analytics:

        async def sampled() -> bool:
            return bool((await analytics.get("/v1/ops", headers=admin)).json()["history"])

        await eventually(sampled, what="a first sample, before anything arrives")
        await publish_referrals(settings, 4)
        producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
        await producer.start()
        try:
            await producer.send_and_wait(topics.referrals, b"not an event", key=b"junk")
        finally:
            await producer.stop()

        async def settled() -> dict[str, Any] | None:
            view = (await analytics.get("/v1/ops", headers=admin)).json()
            by_topic = {topic["topic"]: topic for topic in view["topics"]}
            referrals = by_topic.get(topics.referrals)
            if referrals and referrals["retained"] == 5 and view["dead_letters"]["total"] == 1:
                return view if view["dead_letters"]["by_service"] == {"analytics": 1} else None
            return None

        view = await eventually(settled, what="five records and one dead letter sampled")
        referrals = next(topic for topic in view["topics"] if topic["topic"] == topics.referrals)
        assert referrals["partitions"] == settings.topic_partitions
        assert referrals["last_event_at"] is not None
        assert {topic["topic"] for topic in view["topics"]} == {spec.name for spec in topics.specs()}
        # Five records arrived while sampling: some sample saw them arrive.
        assert sum(point["events_per_second"].get(topics.referrals, 0) for point in view["history"]) > 0
        assert view["error"] is None
        assert [service["service"] for service in view["health"]] == ["intake", "routing", "analytics"]


async def test_only_ops_and_admin_may_read_the_ops_view(settings: Settings) -> None:
    tokens = Tokens(settings)
    # The services' own addresses, on free ports: a developer's `./signpost run` on the default
    # ports 8001-8003 would answer there.
    nowhere = {f"{service}_url": f"http://127.0.0.1:{free_port()}" for service in SERVICE_NAMES}
    async with serving(create_analytics(fast(settings).model_copy(update=nowhere))) as analytics:
        assert (await analytics.get("/v1/ops")).status_code == 401
        for role, organisation in (("analyst", "la-insight"), ("practitioner", "school-ashley-primary")):
            refused = await analytics.get(
                "/v1/ops", headers={"Authorization": f"Bearer {tokens.token(role, organisation)}"}
            )
            assert refused.status_code == 403, refused.text
        for token in (tokens.token("ops", "la-digital"), tokens.admin()):
            answered = await analytics.get("/v1/ops/health", headers={"Authorization": f"Bearer {token}"})
            assert answered.status_code == 200
            # Nothing listens at the services' addresses: each says so.
            assert {service["status"] for service in answered.json()} == {"unreachable"}
            # In words an operator acts on, not the HTTP client's exception name (ConnectError).
            assert {service["checks"]["http"].split(" (")[0] for service in answered.json()} == {
                "not answering"
            }


async def _equals(awaitable: Awaitable[int | None], expected: int) -> bool:
    return await awaitable == expected
