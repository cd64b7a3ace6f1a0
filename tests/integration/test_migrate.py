"""`signpost migrate` on real servers: every topic and every service's indexes, idempotently."""

from __future__ import annotations

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import TopicPartition
from pymongo import AsyncMongoClient
from signpost.intake.offers import keys
from signpost.intake.referrals.models import REFERRALS
from signpost.shared.kafka import ensure_topics
from signpost.shared.offsets import commit_offsets, stream_inspector
from signpost.shared.outbox import OUTBOX
from signpost.shared.settings import SERVICE_NAMES, Settings
from signpost.shared.topics import Topics

from signpost.platform.cli import main
from signpost.platform.migrate import index_plan, migrate, migrate_at_start


async def partitions_by_topic(settings: Settings) -> dict[str, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics(
            [spec.name for spec in Topics.from_settings(settings).specs()]
        )
    finally:
        await admin.close()
    return {topic["topic"]: len(topic["partitions"]) for topic in described}


async def test_migrate_creates_every_topic_and_index_and_can_run_again(settings: Settings) -> None:
    await migrate(settings)
    await migrate(settings)  # a second release's job changes nothing

    expected = {spec.name: spec.partitions for spec in Topics.from_settings(settings).specs()}
    assert await partitions_by_topic(settings) == expected

    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(settings.mongodb_url)
    try:
        for service in SERVICE_NAMES:
            plan, app = index_plan(settings, service)
            await app.state.runtime.client.close()
            db = client[settings.database_name(service)]
            for collection, models in plan.indexes.items():
                existing = {
                    tuple(index["key"].items()) async for index in await db[collection].list_indexes()
                }
                for model in models:
                    assert tuple(model.document["key"].items()) in existing, (service, collection)
            # Every service's outbox, analytics' too: retention finds what to delete by it.
            outbox = {tuple(index["key"].items()) async for index in await db[OUTBOX].list_indexes()}
            assert (("created_at", 1),) in outbox, service
    finally:
        await client.close()


def test_migrate_without_servers_says_what_to_set(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("SIGNPOST_KAFKA_BOOTSTRAP", raising=False)
    monkeypatch.delenv("SIGNPOST_MONGODB_URL", raising=False)
    assert main(["migrate"]) == 2
    assert "set SIGNPOST_KAFKA_BOOTSTRAP and SIGNPOST_MONGODB_URL" in capsys.readouterr().err


async def test_migrate_drops_the_analytics_collections_earlier_releases_kept(settings: Settings) -> None:
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(settings.mongodb_url)
    db = client[settings.database_name("analytics")]
    try:
        # As a deployment from before the projections were rebuilt around the facts left it:
        # the active set and an older rebuilt one, each with period buckets and per-child times.
        obsolete = {
            "live_buckets",
            "live_children",
            "r20260101090000ab12_buckets",
            "r20260101090000ab12_children",
        }
        kept = {"live_referral_facts", "live_tenants", "projection_sets"}
        for collection in obsolete | kept:
            await db[collection].insert_one({"_id": "from an earlier release"})

        await migrate(settings)
        await migrate(settings)  # nothing left to drop the second time

        remaining = set(await db.list_collection_names())
        assert kept <= remaining
        assert not obsolete & remaining
        assert await db["live_referral_facts"].count_documents({}) == 1
    finally:
        await client.close()


def offers(*statuses: str) -> list[dict[str, str]]:
    return [
        {"organisation_id": f"org-{n % 2}", "provision_id": f"p{n}", "status": s}
        for n, s in enumerate(statuses)
    ]


async def test_migrate_writes_the_inbox_keys_of_referrals_stored_before_them(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(keys, "BACKFILL_CHUNK", 2)  # several chunks
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(settings.mongodb_url)
    db = client[settings.database_name("intake")]
    try:
        # As an earlier release stored them: no keys; and one already keyed, as this release writes.
        await db[REFERRALS].insert_many(
            [
                {"_id": "r1", "offers": []},
                {"_id": "r2", "offers": offers("routed")},
                {"_id": "r3", "offers": offers("accepted", "declined", "accepted")},
                {"_id": "r4", "offers": offers("completed"), "offer_keys": ["org-0|completed"]},
                {"_id": "r5", "offers": offers("withdrawn", "withdrawn")},
            ]
        )

        await migrate(settings)

        stored = {doc["_id"]: doc["offer_keys"] async for doc in db[REFERRALS].find()}
        assert stored == {
            "r1": [],
            "r2": ["org-0|routed"],
            "r3": ["org-0|accepted", "org-1|declined"],
            "r4": ["org-0|completed"],
            "r5": ["org-0|withdrawn", "org-1|withdrawn"],
        }
        assert await keys.backfill_offer_keys(db) == 0  # run again: nothing left to write
    finally:
        await client.close()


async def test_a_start_writes_only_missing_inbox_keys_and_migrate_stale_ones_too(settings: Settings) -> None:
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(settings.mongodb_url)
    db = client[settings.database_name("intake")]
    try:
        await db[REFERRALS].insert_many(
            [
                {"_id": "unkeyed", "offers": offers("routed")},  # stored before intake kept keys
                # An older release's pod accepted the offer during a rolling upgrade, keeping the old keys.
                {"_id": "stale", "offers": offers("accepted"), "offer_keys": ["org-0|routed"]},
            ]
        )

        async def stored() -> dict[object, object]:
            return {doc["_id"]: doc["offer_keys"] async for doc in db[REFERRALS].find()}

        await migrate_at_start(settings)  # what `signpost run` applies as it starts
        assert await stored() == {"unkeyed": ["org-0|routed"], "stale": ["org-0|routed"]}

        await migrate(settings)
        assert await stored() == {"unkeyed": ["org-0|routed"], "stale": ["org-0|accepted"]}
    finally:
        await client.close()


async def test_migrate_carries_the_groups_offsets_over_to_their_names_with_the_tenant(
    settings: Settings,
) -> None:
    """The upgrade to consumer groups named with the tenant: migrate gives each service's new group
    the committed offsets of its old name (`{prefix}signpost-{service}`), so nothing is replayed."""
    topics = Topics.from_settings(settings)
    await ensure_topics(settings)
    first = TopicPartition(topics.referrals, 0)
    for number, service in enumerate(SERVICE_NAMES, start=1):
        await commit_offsets(
            settings, group=f"{settings.topic_prefix}signpost-{service}", offsets={first: number}
        )
    await migrate(settings)
    async with stream_inspector(settings) as inspector:
        for number, service in enumerate(SERVICE_NAMES, start=1):
            assert topics.group(service) == f"{settings.topic_prefix}signpost-{settings.tenant}-{service}"
            assert await inspector.committed(topics.group(service), [first]) == {first: number}
