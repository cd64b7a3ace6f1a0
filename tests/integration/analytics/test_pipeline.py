"""The pipelined fold (projections/pipeline.py) on a real MongoDB and Kafka: a batch folded while
the one before commits counts every event once, a failure leaves nothing derived from work that
was not stored, and the consumer commits offsets only after the batch's transaction and fetches no
more than SIGNPOST_ANALYTICS_BATCH_MAX events a batch."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Sequence
from contextlib import asynccontextmanager
from datetime import date
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from pymongo import AsyncMongoClient
from signpost.analytics.app import create_app
from signpost.analytics.projections import consumer
from signpost.analytics.projections.cache import WriteCache
from signpost.analytics.projections.facts import fact_id
from signpost.analytics.projections.fold import fold_batch
from signpost.analytics.projections.follower import FactsFollower
from signpost.analytics.projections.index import Days, FactIndex
from signpost.analytics.projections.pipeline import FoldPipeline, PipelineFailed
from signpost.analytics.projections.sets import INITIAL_SET, ProjectionSet
from signpost.analytics.projections.writers import WriterLease
from signpost.shared.events import Envelope, EventData
from signpost.shared.kafka import ensure_topics
from signpost.shared.mongo import Database, Document
from signpost.shared.retries import is_infrastructure_failure
from signpost.shared.settings import Settings

from tests.analytics_events import TENANT, lifecycle
from tests.commands import SentCommands
from tests.conftest import Tokens, eventually, serving, settings_for
from tests.integration.analytics.conftest import Analytics
from tests.integration.records import committed_offsets
from tests.integration.test_batch_consumer import publish_before_consuming
from tests.servers import KafkaServer, MongoServer

LIVE = ProjectionSet(INITIAL_SET)
MARCH: Days = (date(2026, 3, 1), date(2026, 3, 31))
Events = list[Envelope[EventData]]


def in_steps(referrals: Sequence[Events]) -> list[Events]:
    """Batch k holds the k-th event of every referral: each batch changes what the one before wrote."""
    return [[events[k] for events in referrals if k < len(events)] for k in range(max(map(len, referrals)))]


def counted(index: FactIndex) -> dict[str, int]:
    return index.totals(tenant=TENANT, periods=[MARCH])[0]


async def stored_facts(db: Database) -> dict[str, Document]:
    return {fact["_id"]: fact async for fact in db[LIVE.facts].find({})}


@asynccontextmanager
async def following(db: Database) -> AsyncIterator[FactsFollower]:
    """A running follower of `db`'s live set, its index loaded."""
    follower = FactsFollower(db)
    running = asyncio.create_task(follower.run())
    try:
        await follower.index(LIVE, wait_s=30)
        # As its loop does every second: this writer knows it is alone from now on.
        await follower.lease.look()
        yield follower
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)


@pytest.fixture
async def follower(mongo: tuple[AsyncMongoClient[Document], Database]) -> AsyncIterator[FactsFollower]:
    async with following(mongo[1]) as follower:
        yield follower


async def test_each_batch_folded_while_the_one_before_commits_counts_every_event_once(
    mongo: tuple[AsyncMongoClient[Document], Database], follower: FactsFollower
) -> None:
    client, db = mongo
    referrals = [lifecycle(f"r{n}", "completed", child_ref=f"c{n}") for n in range(3)]
    batches = in_steps(referrals)
    index = await follower.index(LIVE, wait_s=30)
    pipeline: FoldPipeline[int] = FoldPipeline(client, db, facts=follower, cache=WriteCache(size=100))
    returned = [await pipeline.push(n, batch, targets=[LIVE]) for n, batch in enumerate(batches)]
    returned.append(await pipeline.flush())
    # Each push hands back the batch before it, committed.
    assert returned == [[], *([n] for n in range(len(batches)))]
    # Every batch was written as folded ahead: from what the one before was still writing.
    assert pipeline.committed == pipeline.written_ahead == len(batches)
    facts = await stored_facts(db)
    for n, events in enumerate(referrals):
        fact = facts[fact_id(TENANT, f"r{n}")]
        assert fact["events"] == [event.id for event in events] and fact["version"] == len(events)
    totals = counted(index)
    assert totals["submitted"] == totals["accepted"] == totals["completed"] == 3

    # Delivered again (after a failure, a rebalance): nothing changes.
    for n, batch in enumerate(batches):
        await pipeline.push(n, batch, targets=[LIVE])
    await pipeline.flush()
    assert await stored_facts(db) == facts and counted(index) == totals


async def test_a_failed_batch_takes_the_one_folded_on_top_of_it_down_with_it_leaving_nothing_behind(
    mongo: tuple[AsyncMongoClient[Document], Database], follower: FactsFollower
) -> None:
    client, db = mongo
    referrals = [lifecycle(f"r{n}", "completed") for n in range(2)]
    submitted, routed, accepted, *later = in_steps(referrals)
    ids = [fact_id(TENANT, f"r{n}") for n in range(2)]
    index, cache = await follower.index(LIVE, wait_s=30), WriteCache(size=100)
    pipeline: FoldPipeline[str] = FoldPipeline(client, db, facts=follower, cache=cache)
    await pipeline.push("submitted", submitted, targets=[LIVE])
    assert await pipeline.flush() == ["submitted"]
    copies, before = cache.get_many(LIVE.facts, ids), counted(index)
    # MongoDB now refuses a routed referral, so the batch of routings fails in its transaction,
    # after the batch of acceptances has been folded on top of what it was writing.
    await db.command("collMod", LIVE.facts, validator={"routed_at": None})
    assert await pipeline.push("routed", routed, targets=[LIVE]) == []
    with pytest.raises(PipelineFailed) as failed:
        await pipeline.push("accepted", accepted, targets=[LIVE])
    assert failed.value.committed == [] and failed.value.failed == ["routed", "accepted"]
    assert not is_infrastructure_failure(failed.value.error)
    # Nothing derived from either batch: the cache holds the copies from before, the index the counts.
    assert cache.get_many(LIVE.facts, ids) == copies and counted(index) == before
    assert [fact["version"] for fact in (await stored_facts(db)).values()] == [1, 1]

    await db.command("collMod", LIVE.facts, validator={})
    for name, batch in [("routed", routed), ("accepted", accepted), *(("later", batch) for batch in later)]:
        await pipeline.push(name, batch, targets=[LIVE])
    await pipeline.flush()
    facts = await stored_facts(db)
    for n, events in enumerate(referrals):
        assert facts[ids[n]]["events"] == [event.id for event in events]
    totals = counted(index)
    assert totals["submitted"] == totals["routed"] == totals["accepted"] == totals["completed"] == 2


async def test_a_batch_folded_on_one_that_had_to_fold_again_is_folded_again_too(
    mongo: tuple[AsyncMongoClient[Document], Database], follower: FactsFollower
) -> None:
    client, db = mongo
    submitted, routed, accepted, started, completed = lifecycle("r1", "completed")
    index, cache = await follower.index(LIVE, wait_s=30), WriteCache(size=100)
    pipeline: FoldPipeline[str] = FoldPipeline(client, db, facts=follower, cache=cache)
    await pipeline.push("submitted", [submitted], targets=[LIVE])
    await pipeline.flush()
    # Another writer (a rebuild, a replica after a rebalance) moves the fact on: the cached copy is stale.
    await fold_batch(client, db, target=LIVE, envelopes=[routed], lease=WriterLease(db))
    await pipeline.push("accepted", [accepted], targets=[LIVE])  # folded from the stale copy
    await pipeline.push("started", [started], targets=[LIVE])  # folded from what that would write
    await pipeline.push("completed", [completed], targets=[LIVE])
    await pipeline.flush()
    fact = (await stored_facts(db))[fact_id(TENANT, "r1")]
    assert fact["events"] == [e.id for e in (submitted, routed, accepted, started, completed)]
    assert fact["version"] == 5
    # The acceptances' transaction folded again from MongoDB, so the starts, folded from what it
    # would have written, were folded again in theirs; the completions were folded once the starts
    # had committed, and written as folded.
    assert (pipeline.committed, pipeline.written_ahead) == (4, 2)

    async def all_counted() -> bool:
        return counted(index).get("completed") == 1 and counted(index).get("routed") == 1

    await eventually(all_counted, what="the index counting every move once")


async def test_new_referrals_facts_are_not_looked_up_and_a_wrong_guess_is_folded_again(
    settings: Settings,
) -> None:
    reads = SentCommands()
    client: AsyncMongoClient[Document] = AsyncMongoClient(
        settings.mongodb_url, tz_aware=True, event_listeners=[reads]
    )
    db = client[settings.database_name("analytics")]
    try:
        async with following(db) as follower:
            index = await follower.index(LIVE, wait_s=30)
            reads.clear()  # the index's own load
            pipeline: FoldPipeline[str] = FoldPipeline(client, db, facts=follower, cache=WriteCache(size=100))
            fresh = [lifecycle(f"n{n}", "routed")[0] for n in range(3)]
            await pipeline.push("fresh", fresh, targets=[LIVE])
            await pipeline.flush()
            assert not reads.named("find", LIVE.facts), (
                "facts this process has never seen are new: MongoDB is not asked"
            )

            # A fact this process has not seen (written behind its back): the guess is wrong, the
            # insert fails on its `_id`, and the batch is folded again from what MongoDB holds.
            submitted, routed = lifecycle("hidden", "routed")
            await fold_batch(client, db, target=LIVE, envelopes=[submitted], lease=follower.lease)
            await pipeline.push("routed", [routed], targets=[LIVE])
            await pipeline.flush()
            fact = (await stored_facts(db))[fact_id(TENANT, "hidden")]
            assert fact["events"] == [submitted.id, routed.id] and fact["version"] == 2
            assert reads.named("find", LIVE.facts)
            assert counted(index)["submitted"] == 4
    finally:
        await client.close()


async def test_the_consumer_commits_offsets_only_after_the_batch_is_stored(
    kafka: KafkaServer, pausable_mongodb: MongoServer, dev_key_file: Path
) -> None:
    settings = settings_for(
        kafka,
        pausable_mongodb,
        auth_dev_key_file=dev_key_file,
        topic_partitions=1,
        consumer_backoff_initial_s=0.1,
        consumer_backoff_max_s=0.5,
    )
    control = pausable_mongodb.control
    assert control is not None
    client: AsyncMongoClient[Document] = AsyncMongoClient(settings.mongodb_url, tz_aware=True)
    db = client[settings.database_name("analytics")]
    events = [event for n in range(20) for event in lifecycle(f"p{n}", "accepted")]
    first, rest = events[:4], events[4:]

    async def all_stored(count: int) -> bool:
        facts = await stored_facts(db)
        return sum(len(fact["events"]) for fact in facts.values()) == count

    try:
        async with serving(create_app(settings)) as http:
            producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
            await producer.start()
            try:
                feed = Analytics(settings, http, producer)
                await feed.publish(first)
                await eventually(lambda: all_stored(len(first)), what="the first events stored")
                await eventually(
                    lambda: _is(committed_offsets(settings, service="analytics"), len(first)),
                    what="offsets committed",
                )
                control.pause()
                try:
                    await feed.publish(rest)
                    await asyncio.sleep(3)  # the consumer fetches them, and cannot store them
                    assert await committed_offsets(settings, service="analytics") == len(first)
                finally:
                    control.resume()
                await eventually(lambda: all_stored(len(events)), what="every event stored")
                await eventually(
                    lambda: _is(committed_offsets(settings, service="analytics"), len(events)),
                    what="every offset committed",
                )
            finally:
                await producer.stop()
        facts = await stored_facts(db)
        assert all(len(fact["events"]) == len(set(fact["events"])) == 3 for fact in facts.values())
        assert len(facts) == 20
    finally:
        await client.drop_database(db.name)
        await client.close()


async def test_no_batch_folds_more_events_than_analytics_batch_max(
    kafka: KafkaServer, mongodb: MongoServer, dev_key_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Forty events wait on the topic before analytics starts, so one fetch could take them all:
    with SIGNPOST_ANALYTICS_BATCH_MAX at 5, each batch folds at most five."""
    settings = settings_for(kafka, mongodb, auth_dev_key_file=dev_key_file, analytics_batch_max=5)
    batch_sizes: list[int] = []

    class Measured(consumer.Fetched):  # the consumer's own batch, its size noted
        def __post_init__(self, max_bytes: int) -> None:
            super().__post_init__(max_bytes)
            batch_sizes.append(len(self.events))

    monkeypatch.setattr(consumer, "Fetched", Measured)
    events = [event for n in range(20) for event in lifecycle(f"b{n}", "routed")]  # two each
    await ensure_topics(settings)
    await publish_before_consuming(settings, events)
    admin = {"Authorization": f"Bearer {Tokens(settings).admin()}"}
    async with serving(create_app(settings)) as http:

        async def all_routed() -> bool:
            answer = await http.get("/v1/pulse", headers=admin)  # all-time: it takes no period
            return answer.status_code == 200 and answer.json()["by_outcome"].get("routed") == 20

        await eventually(all_routed, what="every referral counted as routed")
    assert max(batch_sizes) <= 5 and sum(batch_sizes) >= len(events), batch_sizes


async def _is(value: Awaitable[int], expected: int) -> bool:
    return await value == expected
