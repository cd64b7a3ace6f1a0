"""`/metrics` on every service: Prometheus text with route templates, handler timings,
outbox backlog and consumer lag, and no personal data in any label."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from typing import Any

import httpx
from aiokafka import AIOKafkaProducer
from prometheus_client.parser import text_string_to_metric_families
from signpost.analytics.app import create_app as create_analytics
from signpost.intake.app import create_app as create_intake
from signpost.routing.app import create_app as create_routing
from signpost.shared.kafka import ensure_topics
from signpost.shared.mongo import IndexPlan
from signpost.shared.offsets import lag_pairs
from signpost.shared.service import Runtime, create_service_app
from signpost.shared.settings import SERVICE_NAMES, Settings
from signpost.shared.topics import Topics

from signpost.platform.benchkit import GroupLag
from tests.conftest import Tokens, eventually, serving
from tests.factories import CHILD, referral

RECORDS = 5


def samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    return [
        (sample.name, sample.labels, sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    ]


async def test_every_service_exposes_metrics_without_personal_data(settings: Settings) -> None:
    topics = Topics.from_settings(settings)
    practitioner = {"Authorization": f"Bearer {Tokens(settings).practitioner()}"}
    async with AsyncExitStack() as stack:
        intake, routing, analytics = [
            await stack.enter_async_context(serving(factory(settings)))
            for factory in (create_intake, create_routing, create_analytics)
        ]
        created = await intake.post("/v1/referrals", json=referral(), headers=practitioner)
        assert created.status_code == 201, created.text
        referral_id = created.json()["id"]

        async def routed() -> Any:
            found = (await intake.get(f"/v1/referrals/{referral_id}", headers=practitioner)).json()
            return found if found["status"] == "routed" else None

        await eventually(routed, what="routed")
        assert (await intake.get("/v1/referrals/no-such-id", headers=practitioner)).status_code == 404
        assert (await intake.get("/no/such/path")).status_code == 404

        async def analytics_counted() -> list[tuple[str, dict[str, str], float]] | None:
            found = samples((await analytics.get("/metrics")).text)
            handled = {
                labels["event_type"]
                for name, labels, value in found
                if name == "signpost_event_handler_duration_seconds_count" and value >= 1
            }
            return found if "uk.signpost.referral.routed.v1" in handled else None

        await eventually(analytics_counted, what="analytics handler timings")
        for client, service in ((intake, "intake"), (routing, "routing"), (analytics, "analytics")):
            response = await client.get("/metrics")
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/plain; version=")
            text = response.text
            # No id, name, date of birth, postcode or NHS number in any label or value.
            for secret in (
                referral_id,
                CHILD["given_name"],
                CHILD["family_name"],
                "2018-03-14",
                "BS4",
                "9434765919",
            ):
                assert secret.lower() not in text.lower(), (service, secret)
            found = samples(text)
            handled = {
                labels["event_type"]
                for name, labels, _ in found
                if name == "signpost_event_handler_duration_seconds_count" and labels["service"] == service
            }
            assert "uk.signpost.referral.submitted.v1" in handled, (service, handled)
            lag = {
                (labels["group"], labels["topic"])
                for name, labels, _ in found
                if name == "signpost_consumer_lag"
            }
            # Every (group, topic) the service's lag covers: retry groups and analytics' other topics too.
            assert lag == set(lag_pairs(topics, service)), (service, lag)
            assert ("signpost_consumer_lag_readable", {"service": service}, 1.0) in found

        found = samples((await intake.get("/metrics")).text)
        requests = {
            (labels["method"], labels["route"], labels["status"])
            for name, labels, value in found
            if name == "signpost_http_request_duration_seconds_count" and value >= 1
        }
        assert ("POST", "/v1/referrals", "201") in requests
        assert ("GET", "/v1/referrals/{referral_id}", "200") in requests
        assert ("GET", "/v1/referrals/{referral_id}", "404") in requests
        assert ("GET", "<unmatched>", "404") in requests
        assert all("no-such" not in route and "/no/such" not in route for _, route, _ in requests)
        assert ("signpost_outbox_pending", {"service": "intake"}, 0.0) in found
        # Analytics' outbox holds the settings register's changes.
        analytics_found = samples((await analytics.get("/metrics")).text)
        assert ("signpost_outbox_pending", {"service": "analytics"}, 0.0) in analytics_found


async def test_consumer_lag_counts_every_record_of_a_multi_record_batch(settings: Settings) -> None:
    """Tansu answers ListOffsets with the last batch's first offset + 1, hiding the rest of a
    multi-record batch; the lag a service's `/metrics` reports must still count every record
    its group has not read (shared/offsets.py reads the newest records to find the real end)."""
    topics = Topics.from_settings(settings)
    await produce_one_batch(settings, topics.referrals)

    # A service whose group has read nothing yet: it is behind by every record on partition 0.
    runtime = Runtime.build(settings, "routing")
    runtime.consumes_events = True
    app = create_service_app(runtime, title="lag", description="", routers=[], indexes=IndexPlan())
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            found = samples((await client.get("/metrics")).text)
    finally:
        await runtime.client.close()
    lag = {
        labels["partition"]: value
        for name, labels, value in found
        if name == "signpost_consumer_lag" and labels["group"] == topics.group("routing")
    }
    assert lag["0"] == RECORDS, lag
    assert sum(lag.values()) == RECORDS, lag


async def test_the_benchmarks_group_lag_counts_every_record_of_a_multi_record_batch(
    settings: Settings,
) -> None:
    """benchkit.GroupLag decides when the benchmarks' pipeline has caught up: one short, and it would
    say so while records were still unread."""
    topics = Topics.from_settings(settings)
    await produce_one_batch(settings, topics.referrals)
    assert settings.kafka_bootstrap
    lag = GroupLag(settings.kafka_bootstrap, topics)
    await lag.start()
    try:
        assert await lag.lag() == dict.fromkeys(SERVICE_NAMES, RECORDS)
        # The light reading (the broker's reported ends, no record fetched) keeps the real ends found.
        assert await lag.light_lag() == dict.fromkeys(SERVICE_NAMES, RECORDS)
        assert not await lag.none_behind()
    finally:
        await lag.stop()


async def produce_one_batch(settings: Settings, topic: str) -> None:
    """RECORDS records on partition 0 of `topic`, sent together so they share one batch."""
    await ensure_topics(settings)
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, linger_ms=200)
    await producer.start()
    try:
        sent = [await producer.send(topic, b"{}", partition=0) for _ in range(RECORDS)]
        await producer.flush()
        await asyncio.gather(*sent)
    finally:
        await producer.stop()
