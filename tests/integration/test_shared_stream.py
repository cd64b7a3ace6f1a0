"""Two local areas on one Kafka stream (same topics), each with its own databases: each area's
services read every event in groups of their own and act on their own area's alone.

One partition, so the old shared groups (`signpost-routing` for every area) would give all of
the stream to one area's routing, which would decide the other area's referral with its own
catalogue; and every event stays in order, so an area's own later event proves it has read the
other area's earlier one."""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import Any

import httpx
import pytest
from aiokafka.structs import TopicPartition
from signpost.intake.app import create_app as create_intake
from signpost.intake.consumer import on_referral_events
from signpost.intake.referrals.models import REFERRALS
from signpost.intake.subscriptions.dispatcher import WebhookDispatcher
from signpost.routing.app import create_app as create_routing
from signpost.shared.events import new_event
from signpost.shared.kafka import create_broker, ensure_topics
from signpost.shared.metrics import OTHER_AREA
from signpost.shared.offsets import carry_over_offsets, commit_offsets, stream_inspector
from signpost.shared.service import Runtime
from signpost.shared.settings import Settings
from signpost.shared.topics import RETRYING_SERVICES, Topics

from tests.conftest import Tokens, eventually, serving
from tests.factories import referral
from tests.integration.intake.test_decision_batches import routed, submitted
from tests.publishing import publish_event
from tests.unit.shared.test_events import submitted as submitted_event

HEALTH_ONLY = {"family_agrees_to_early_help": True, "lawful_basis": "consent", "sharing_scope": ["health"]}
NEIGHBOUR = "E06000024"
SLT = "slt-community"  # in both areas' starter catalogue, under the same id


def areas(settings: Settings) -> tuple[Settings, Settings]:
    """This area and a neighbour on the same topics, each with databases of its own."""
    here = settings.model_copy(update={"topic_partitions": 1})
    neighbour = here.model_copy(update={"tenant": NEIGHBOUR, "database_prefix": f"{here.database_prefix}n"})
    return here, neighbour


def skipped(app: Any, event_type: str) -> float:
    runtime: Runtime = app.state.runtime
    value = runtime.metrics.registry.get_sample_value(
        "signpost_events_skipped_total",
        {"service": runtime.service, "event_type": event_type, "reason": OTHER_AREA},
    )
    return value or 0.0


async def test_each_area_routes_its_own_referrals_with_its_own_catalogue(settings: Settings) -> None:
    here, neighbour = areas(settings)
    assert Topics.from_settings(here).referrals == Topics.from_settings(neighbour).referrals
    for service in ("intake", "routing", "analytics"):
        assert Topics.from_settings(here).group(service) != Topics.from_settings(neighbour).group(service)
        assert Topics.from_settings(here).retry_group(service) != Topics.from_settings(neighbour).retry_group(
            service
        )

    async with AsyncExitStack() as stack:
        apps: dict[str, dict[str, Any]] = {}
        clients: dict[str, dict[str, httpx.AsyncClient]] = {}
        for area in (here, neighbour):
            apps[area.tenant] = {"intake": create_intake(area), "routing": create_routing(area)}
            clients[area.tenant] = {
                name: await stack.enter_async_context(serving(app)) for name, app in apps[area.tenant].items()
            }
        tokens = {area.tenant: Tokens(area) for area in (here, neighbour)}

        def auth(tenant: str, token: str) -> dict[str, str]:
            assert tokens[tenant]  # the token is that area's (its `tenant` claim)
            return {"Authorization": f"Bearer {token}"}

        # The neighbour's speech and language therapy waits 2 weeks; here it waits 6.
        theirs = clients[NEIGHBOUR]["routing"]
        admin = auth(NEIGHBOUR, tokens[NEIGHBOUR].admin())
        provision = (await theirs.get(f"/v1/provisions/{SLT}")).json()
        changed = await theirs.put(
            f"/v1/provisions/{SLT}", json={**provision, "waiting_weeks": 2}, headers=admin
        )
        assert changed.status_code == 200, changed.text

        async def submit(tenant: str) -> str:
            practitioner = auth(tenant, tokens[tenant].practitioner())
            body = referral(need_codes=["SLCN"], consent=HEALTH_ONLY)
            created = await clients[tenant]["intake"].post("/v1/referrals", json=body, headers=practitioner)
            assert created.status_code == 201, created.text
            return str(created.json()["id"])

        async def routed_view(tenant: str, referral_id: str) -> dict[str, Any] | None:
            practitioner = auth(tenant, tokens[tenant].practitioner())
            view = (
                await clients[tenant]["intake"].get(f"/v1/referrals/{referral_id}", headers=practitioner)
            ).json()
            return dict(view) if view["status"] == "routed" else None

        ours, their = await submit(here.tenant), await submit(NEIGHBOUR)
        mine = await eventually(lambda: routed_view(here.tenant, ours), what="this area's referral routed")
        other = await eventually(
            lambda: routed_view(NEIGHBOUR, their), what="the neighbour's referral routed"
        )
        assert [o["provision_id"] for o in mine["offers"]] == [SLT]
        assert "about 6 weeks' wait" in mine["offers"][0]["explanation"]  # this area's catalogue
        assert [o["provision_id"] for o in other["offers"]] == [SLT]
        assert "about 2 weeks' wait" in other["offers"][0]["explanation"]  # the neighbour's

        # Each area's routing decided, and stored, its own referral alone.
        for tenant, own, not_own in ((here.tenant, ours, their), (NEIGHBOUR, their, ours)):
            admin_here = auth(tenant, tokens[tenant].admin())
            decisions = clients[tenant]["routing"]
            assert (await decisions.get(f"/v1/decisions/{own}", headers=admin_here)).status_code == 200
            assert (await decisions.get(f"/v1/decisions/{not_own}", headers=admin_here)).status_code == 404
        assert skipped(apps[here.tenant]["routing"], "uk.signpost.referral.submitted.v1") >= 1
        assert skipped(apps[NEIGHBOUR]["routing"], "uk.signpost.referral.submitted.v1") >= 1

        async def available(tenant: str) -> int:
            found = (await clients[tenant]["routing"].get(f"/v1/provisions/{SLT}")).json()
            return int(found["capacity"]["available"])

        before = await available(here.tenant)
        neighbour_before = await available(NEIGHBOUR)
        # The neighbour's agency takes its place; then this area's agency takes one here. On one
        # partition in order: once this area's routing holds its own place, it has read the other.
        slt_there = auth(NEIGHBOUR, tokens[NEIGHBOUR].agency("nhs-community-slt"))
        accepted = await clients[NEIGHBOUR]["intake"].post(
            f"/v1/referrals/{their}/offers/{SLT}/accept", headers=slt_there
        )
        assert accepted.status_code == 200, accepted.text
        await eventually(
            lambda: _equals(available(NEIGHBOUR), neighbour_before - 1), what="the neighbour's place held"
        )
        slt_here = auth(here.tenant, tokens[here.tenant].agency("nhs-community-slt"))
        accepted = await clients[here.tenant]["intake"].post(
            f"/v1/referrals/{ours}/offers/{SLT}/accept", headers=slt_here
        )
        assert accepted.status_code == 200, accepted.text
        await eventually(lambda: _below(available(here.tenant), before), what="this area's place held")
        assert await available(here.tenant) == before - 1  # one place: its own, not the neighbour's too
        assert await available(NEIGHBOUR) == neighbour_before - 1
        assert skipped(apps[here.tenant]["routing"], "uk.signpost.referral.offer_accepted.v1") >= 1

    # Both areas' groups committed on the one referrals topic, each under its own name.
    async with stream_inspector(here) as inspector:
        topic = inspector.topics.referrals
        for area in (here, neighbour):
            for service in ("intake", "routing"):
                group = Topics.from_settings(area).group(service)
                assert await inspector.committed(group, [TopicPartition(topic, 0)]), group


async def _equals(probe: Any, expected: int) -> bool:
    return bool(await probe == expected)


async def _below(probe: Any, limit: int) -> bool:
    return bool(await probe < limit)


async def test_intake_ignores_another_areas_decision_about_a_referral_id_of_its_own(
    settings: Settings,
) -> None:
    """Referral ids are only unique within an area's database: a neighbour's decision carrying the
    same id must not move this area's referral, even if it reaches the handler."""
    runtime = Runtime.build(settings, "intake")
    runtime.enable_outbox()
    try:
        await runtime.db[REFERRALS].insert_one({**submitted("r-shared"), "tenant": settings.tenant})
        theirs = routed("r-shared", SLT).model_copy(update={"tenant": NEIGHBOUR})
        await on_referral_events(runtime=runtime, envelopes=[theirs], dispatcher=WebhookDispatcher(runtime))
        stored = await runtime.db[REFERRALS].find_one({"_id": "r-shared"})
        assert stored is not None
        assert stored["status"] == "submitted" and stored["offers"] == []
        ours = routed("r-shared", SLT).model_copy(update={"tenant": settings.tenant})
        await on_referral_events(runtime=runtime, envelopes=[ours], dispatcher=WebhookDispatcher(runtime))
        stored = await runtime.db[REFERRALS].find_one({"_id": "r-shared"})
        assert stored is not None and stored["status"] == "routed"
    finally:
        await runtime.client.close()


@pytest.mark.parametrize("service", ["routing", "analytics"])
async def test_a_group_named_before_the_tenant_hands_its_offsets_on(settings: Settings, service: str) -> None:
    """The upgrade: committed offsets under the former name (`{prefix}signpost-{service}`) become
    the new group's, once; a group that has its own is left alone. Routing's retry group too;
    analytics has none (it retries a batch in place)."""
    topics = Topics.from_settings(settings)
    former = topics.former_groups(service)
    assert former[topics.group(service)] == f"{settings.topic_prefix}signpost-{service}"
    await ensure_topics(settings)
    referrals = [TopicPartition(topics.referrals, p) for p in range(topics.partitions)]
    await commit_offsets(
        settings, group=former[topics.group(service)], offsets={referrals[0]: 7, referrals[2]: 3}
    )
    expected = {topics.group(service): 2}
    if service in RETRYING_SERVICES:
        old_retry = former[topics.retry_group(service)]
        assert old_retry == f"{settings.topic_prefix}signpost-{service}-retry"
        retries = [TopicPartition(topics.retry(service), 0)]
        await commit_offsets(settings, group=old_retry, offsets={retries[0]: 2})
        expected[topics.retry_group(service)] = 1
    else:
        assert list(former) == [topics.group(service)]

    assert await carry_over_offsets(settings, service) == expected
    async with stream_inspector(settings) as inspector:
        assert await inspector.committed(topics.group(service), referrals) == {
            referrals[0]: 7,
            referrals[2]: 3,
        }
        if service in RETRYING_SERVICES:
            assert await inspector.committed(topics.retry_group(service), retries) == {retries[0]: 2}

    # The new group moves on; the former one is stale and never copied again.
    await commit_offsets(settings, group=topics.group(service), offsets={referrals[0]: 9})
    assert await carry_over_offsets(settings, service) == {}
    async with stream_inspector(settings) as inspector:
        assert (await inspector.committed(topics.group(service), referrals))[referrals[0]] == 9


async def test_routing_starts_where_its_former_group_left_off(settings: Settings) -> None:
    """Routing started on a stream its pre-upgrade group had read up to a point decides only what
    came after: nothing is replayed (the submission read before the upgrade is not decided again)."""
    settings = settings.model_copy(update={"topic_partitions": 1})
    topics = Topics.from_settings(settings)
    only = TopicPartition(topics.referrals, 0)
    await ensure_topics(settings)
    broker = create_broker(settings, service="test")
    async with broker:
        await broker.start()
        for referral_id in ("r-before", "r-after"):
            event = new_event(submitted_event(referral_id), source="/tests", tenant=settings.tenant)
            await publish_event(broker, topic=topics.referrals, envelope=event)
    # The release before this one had read (and decided) the first submission.
    await commit_offsets(settings, group=f"{settings.topic_prefix}signpost-routing", offsets={only: 1})

    admin = {"Authorization": f"Bearer {Tokens(settings).admin()}"}
    app = create_routing(settings)
    async with serving(app) as routing:

        async def decided(referral_id: str) -> bool:
            return (await routing.get(f"/v1/decisions/{referral_id}", headers=admin)).status_code == 200

        await eventually(lambda: decided("r-after"), what="the submission after the upgrade decided")
        assert not await decided("r-before")  # not replayed

        async with stream_inspector(settings) as inspector:

            async def read_on() -> bool:  # 2 or more: routing's own decision follows on the topic
                return (await inspector.committed(topics.group("routing"), [only])).get(only, 0) >= 2

            await eventually(read_on, what="the new group's offset past both submissions")
