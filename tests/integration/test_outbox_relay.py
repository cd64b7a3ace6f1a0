"""The outbox relay on the real broker and database: events handed over at commit go out in commit
order without being read back, anything else is found by polling, publication is marked in batches,
and no event goes out twice because both paths saw it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import pytest
import pytest_asyncio
from pymongo import AsyncMongoClient
from pymongo.errors import OperationFailure
from signpost.routing.app import create_app as create_routing
from signpost.shared import outbox, retention
from signpost.shared.events import Envelope, EventData, event_id_time, first_event_id_at
from signpost.shared.kafka import create_broker, ensure_topics
from signpost.shared.mongo import Database, Document, IndexPlan, Session, drop_index_if_present
from signpost.shared.outbox import (
    LEGACY_PENDING_INDEX,
    OUTBOX,
    PENDING,
    RETIRED_OUTBOX_INDEXES,
    OutboxRelay,
    Staged,
    adopt_legacy_pending,
    pending_count,
    prune_published,
    restage_event,
    stage_events,
    transaction_with_events,
)
from signpost.shared.settings import Settings
from signpost.shared.topics import Topics

from tests.commands import SentCommands
from tests.conftest import eventually, serving
from tests.integration.records import headers_of, records_on, wait_for_records
from tests.integration.test_consumer_failures import event_for


@pytest_asyncio.fixture
async def client(settings: Settings) -> AsyncIterator[AsyncMongoClient[Document]]:
    """A client of the test's own on the shared database server, closed afterwards."""
    client: AsyncMongoClient[Document] = AsyncMongoClient(settings.mongodb_url, tz_aware=True)
    try:
        yield client
    finally:
        await client.close()


QUIET_POLL_S = 600.0  # no poll during a test unless notified: what goes out was handed over


@asynccontextmanager
async def relaying(
    settings: Settings,
    *,
    start: bool = True,
    log_lost: bool = False,
    poll_interval_s: float = QUIET_POLL_S,
    mark_interval_s: float = outbox.MARK_INTERVAL_S,
) -> AsyncIterator[tuple[OutboxRelay, SentCommands]]:
    """A relay of its own (own client, counted), running until the block ends."""
    await ensure_topics(settings)
    commands = SentCommands()
    client: AsyncMongoClient[Document] = AsyncMongoClient(
        settings.mongodb_url, tz_aware=True, event_listeners=[commands]
    )
    broker = create_broker(settings, service="routing")
    await broker.start()
    relay = OutboxRelay(
        db=client[settings.database_name("routing")],
        broker=broker,
        poll_interval_s=poll_interval_s,
        mark_interval_s=mark_interval_s,
    )
    await relay.prepare_replay(log_lost=log_lost)
    task = asyncio.create_task(relay.run()) if start else None
    try:
        yield relay, commands
    finally:
        if task is not None:
            task.cancel()
        await broker.stop()
        await client.close()


async def stage(
    client: AsyncMongoClient[Document], settings: Settings, events: Sequence[Envelope[EventData]]
) -> Staged:
    async def write(session: Session) -> None:
        db = client[settings.database_name("routing")]
        await stage_events(
            db, topic=Topics.from_settings(settings).referrals, envelopes=events, session=session
        )

    _, staged = await transaction_with_events(client, write)
    return staged


async def published_ids(settings: Settings, count: int) -> list[str]:
    records = await wait_for_records(settings, Topics.from_settings(settings).referrals, count)
    return [dict(record.headers)["ce_id"].decode() for record in records]


async def all_marked(client: AsyncMongoClient[Document], settings: Settings) -> bool:
    return await pending_count(client[settings.database_name("routing")]) == 0


async def mark_published(db: Database, events: Sequence[Envelope[EventData]]) -> None:
    """As a relay marks them (without one running)."""
    await db[PENDING].delete_many({"_id": {"$in": [event.id for event in events]}})


async def test_handed_over_events_go_out_in_commit_order_without_being_read_back(
    settings: Settings, client: AsyncMongoClient[Document]
) -> None:
    events = [event_for("r-1") for _ in range(5)]  # one key: one partition, so the topic shows the order
    async with relaying(settings) as (relay, commands):

        async def polled() -> bool:
            return bool(commands.names(OUTBOX, PENDING))

        await eventually(polled, what="the relay's first poll")
        commands.clear()
        for event in events:  # five commits, handed over one by one
            relay.committed(await stage(client, settings, [event]))
        assert await published_ids(settings, len(events)) == [e.id for e in events]
        await eventually(lambda: all_marked(client, settings), what="every event marked published")
        assert "find" not in commands.names(OUTBOX, PENDING)  # nothing read back
        assert 1 <= commands.names(OUTBOX, PENDING).count("delete") < len(events)  # marks shared deletes
        assert "update" not in commands.names(OUTBOX, PENDING)  # the events themselves are never rewritten


async def test_events_not_handed_over_are_found_by_polling_and_never_published_twice(
    settings: Settings,
    client: AsyncMongoClient[Document],
) -> None:
    first, marker = event_for("r-2"), event_for("r-2")
    async with relaying(settings) as (relay, _):
        # Staged by a plain transaction (as another process would): only a poll finds it.
        staged = await stage(client, settings, [first])
        relay.notify()
        assert await published_ids(settings, 1) == [first.id]
        # A late hand-off of the same event is skipped: the marker behind it is the next record.
        relay.committed(staged)
        relay.committed(await stage(client, settings, [marker]))
        assert await published_ids(settings, 2) == [first.id, marker.id]


async def test_only_the_committed_attempt_of_a_retried_transaction_is_handed_over(
    settings: Settings, client: AsyncMongoClient[Document]
) -> None:
    db = client[settings.database_name("routing")]
    topic = Topics.from_settings(settings).referrals
    attempts: list[Envelope[EventData]] = []

    async def write(session: Session) -> None:
        event = event_for("r-3")
        attempts.append(event)
        await stage_events(db, topic=topic, envelopes=[event], session=session)
        if len(attempts) == 1:
            failure = OperationFailure("write conflict")
            failure._add_error_label("TransientTransactionError")  # what the driver retries
            raise failure

    _, staged = await transaction_with_events(client, write)
    assert [d["_id"] for d in staged.documents] == [attempts[1].id]
    assert [d["_id"] async for d in db[OUTBOX].find({})] == [attempts[1].id]


async def test_beyond_the_hand_over_limit_the_relay_polls_instead(
    settings: Settings, client: AsyncMongoClient[Document], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(outbox, "MAX_HANDED", 2)
    events = [event_for("r-4") for _ in range(3)]
    async with relaying(settings, start=False) as (relay, _):
        for event in events:  # Kafka "away": nothing published while they are handed over
            relay.committed(await stage(client, settings, [event]))
        task = asyncio.create_task(relay.run())
        try:
            assert await published_ids(settings, 3) == [e.id for e in events]
        finally:
            task.cancel()


async def test_the_periodic_poll_takes_only_events_no_relay_is_handling(
    settings: Settings, client: AsyncMongoClient[Document], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past its first round a relay polls only for events staged over `POLL_GRACE_S` ago (left by a
    process that stopped, or queued again): one staged a moment ago by another process is that
    process's relay's to publish."""
    monkeypatch.setattr(outbox, "POLL_GRACE_S", 3600.0)
    db = client[settings.database_name("routing")]
    left, recent = event_for("r-6"), event_for("r-7")
    async with relaying(settings, poll_interval_s=0.2) as (_, commands):

        async def polled() -> bool:
            return "find" in commands.names(OUTBOX, PENDING)

        await eventually(polled, what="the relay's first poll")
        await stage(client, settings, [left, recent])  # not handed over: another process's
        # `left` as if staged two hours ago (ids are UUIDv7: their text carries the time).
        two_hours_ago = first_event_id_at(time.time() - 7200)
        for collection in (OUTBOX, PENDING):
            document = await db[collection].find_one_and_delete({"_id": left.id})
            assert document is not None
            await db[collection].insert_one({**document, "_id": two_hours_ago})
        records = await wait_for_records(settings, Topics.from_settings(settings).referrals, 1)
        assert [record.key for record in records] == [b"r-6"]
        assert await db[PENDING].count_documents({"_id": recent.id}) == 1


async def test_a_poll_reads_on_past_a_full_page_of_events_the_relay_holds(
    settings: Settings, client: AsyncMongoClient[Document], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Events a relay has published but not yet marked are still pending in the outbox. A full page
    of them must not hide what lies behind it: the poll reads on from the page's last id."""
    monkeypatch.setattr(outbox, "BATCH_SIZE", 2)
    an_hour_ago = time.time() - 3600

    def staged_at(event: Envelope[EventData], seconds_before: float) -> Envelope[EventData]:
        return event.model_copy(update={"id": first_event_id_at(an_hour_ago - seconds_before)})

    held = [staged_at(event_for("r-8"), 3), staged_at(event_for("r-8"), 2)]
    behind = staged_at(event_for("r-9"), 1)
    async with relaying(settings, poll_interval_s=0.2, mark_interval_s=QUIET_POLL_S) as (relay, commands):

        async def polled() -> bool:
            return "find" in commands.names(OUTBOX, PENDING)

        await eventually(polled, what="the relay's first poll")
        relay.committed(await stage(client, settings, held))  # published at once, never marked
        assert await published_ids(settings, 2) == [event.id for event in held]
        await stage(client, settings, [behind])  # another process's: found only by polling
        assert sorted(await published_ids(settings, 3)) == [*(event.id for event in held), behind.id]


def staged_days_ago(event: Envelope[EventData], days: float) -> Envelope[EventData]:
    """The event as if staged `days` ago (ids are UUIDv7: their text carries the time); `backdate`
    gives its outbox document the same staging time once staged."""
    return event.model_copy(update={"id": first_event_id_at(time.time() - days * 24 * 3600)})


async def backdate(db: Database, events: Sequence[Envelope[EventData]]) -> None:
    for event in events:
        await db[OUTBOX].update_one({"_id": event.id}, {"$set": {"created_at": event_id_time(event.id)}})


async def test_retention_deletes_only_events_staged_before_the_cutoff_and_published(
    settings: Settings, client: AsyncMongoClient[Document], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(retention, "PRUNE_CHUNK", 2)  # several chunks
    db = client[settings.database_name("routing")]
    old = [staged_days_ago(event_for("r-10"), 8 + n / 10) for n in range(5)]
    recent, old_but_pending = staged_days_ago(event_for("r-11"), 6), staged_days_ago(event_for("r-12"), 9)
    await stage(client, settings, [*old, old_but_pending, recent])
    await backdate(db, [*old, old_but_pending, recent])
    await mark_published(db, [*old, recent])
    assert await prune_published(db, before=datetime.now(UTC) - timedelta(days=7)) == 5
    assert sorted([d["_id"] async for d in db[OUTBOX].find({})]) == sorted([recent.id, old_but_pending.id])
    assert [d["_id"] async for d in db[PENDING].find({})] == [old_but_pending.id]


async def test_a_running_relay_prunes_soon_after_it_starts_not_only_after_a_full_interval(
    settings: Settings, client: AsyncMongoClient[Document], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(retention, "PRUNE_FIRST_DELAY_S", 0.1)  # PRUNE_INTERVAL_S stays ten minutes
    db = client[settings.database_name("routing")]
    old = staged_days_ago(event_for("r-13"), 8)
    await stage(client, settings, [old])
    await backdate(db, [old])
    await mark_published(db, [old])
    async with relaying(settings):

        async def pruned() -> bool:
            return await db[OUTBOX].count_documents({"_id": old.id}) == 0

        await eventually(pruned, what="the first retention pass")


async def test_told_the_broker_lost_its_log_a_relay_sends_every_published_event_again_oldest_first(
    settings: Settings, client: AsyncMongoClient[Document], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(outbox, "BATCH_SIZE", 2)  # the replay's pages, more than one
    db = client[settings.database_name("routing")]
    forgotten = [event_for("r-15") for _ in range(3)]  # one key: one partition, so the topic shows the order
    pending = event_for("r-15")
    await stage(client, settings, forgotten)
    # Published to a broker that has since lost its log: the topic is empty.
    await mark_published(db, forgotten)
    await stage(client, settings, [pending])
    async with relaying(settings, log_lost=True):
        # The replay sends everything kept, the pending event too, which then goes out as pending.
        assert await published_ids(settings, 5) == [*(e.id for e in forgotten), pending.id, pending.id]
        await eventually(lambda: all_marked(client, settings), what="the pending event marked")
        await asyncio.sleep(0.5)  # nothing more goes out
        assert len(await published_ids(settings, 5)) == 5


async def test_a_replay_ends_at_the_newest_event_kept_when_it_began(
    settings: Settings, client: AsyncMongoClient[Document]
) -> None:
    """What is staged after the replay began (a fresh deployment's first requests: its group has
    no offsets either) goes out once, as pending, not once more by the replay."""
    db = client[settings.database_name("routing")]
    forgotten, later = event_for("r-18"), event_for("r-18")
    await stage(client, settings, [forgotten])
    await mark_published(db, [forgotten])
    async with relaying(settings, start=False, log_lost=True) as (relay, _):
        await stage(client, settings, [later])  # before the replay reads the outbox
        relay.notify()
        running = asyncio.create_task(relay.run())
        assert await published_ids(settings, 2) == [forgotten.id, later.id]
        await eventually(lambda: all_marked(client, settings), what="the later event marked")
        await asyncio.sleep(0.5)  # nothing more goes out
        running.cancel()
    assert len(await records_on(settings, Topics.from_settings(settings).referrals)) == 2


async def test_relayed_and_replayed_events_carry_their_correlation_id_in_faststreams_header_too(
    settings: Settings, client: AsyncMongoClient[Document]
) -> None:
    """FastStream adds a `correlation_id` header to what it publishes: a random one unless told."""
    db = client[settings.database_name("routing")]
    forgotten, pending = event_for("r-16"), event_for("r-16")
    await stage(client, settings, [forgotten])
    await mark_published(db, [forgotten])
    await stage(client, settings, [pending])
    async with relaying(settings, log_lost=True):
        # The replay sends both, then the pending one goes out as pending.
        records = await wait_for_records(settings, Topics.from_settings(settings).referrals, 3)
    sent = [headers_of(record) for record in records]
    assert [headers["ce_id"] for headers in sent] == [forgotten.id, pending.id, pending.id]
    assert [headers["correlation_id"] for headers in sent] == [
        forgotten.correlationid,
        pending.correlationid,
        pending.correlationid,
    ]


async def test_a_replay_cut_short_goes_on_from_its_last_page_at_the_next_start(
    settings: Settings, client: AsyncMongoClient[Document], monkeypatch: pytest.MonkeyPatch
) -> None:
    """By the next start this service's consumer has committed offsets on the new log, so only the
    replay's own record says that the rest of what the broker lost has still to go out."""
    monkeypatch.setattr(outbox, "BATCH_SIZE", 2)
    db = client[settings.database_name("routing")]
    forgotten = [event_for("r-17") for _ in range(5)]
    await stage(client, settings, forgotten)
    await mark_published(db, forgotten)
    first_page_sent = asyncio.Event()
    async with relaying(settings, start=False, log_lost=True) as (relay, _):
        send = relay._send

        async def first_page_then_stop(page: list[Document]) -> None:
            if first_page_sent.is_set():
                await asyncio.Event().wait()  # stopped here, as by a deploy, before the next page goes
            await send(page)
            first_page_sent.set()

        monkeypatch.setattr(relay, "_send", first_page_then_stop)
        replaying = asyncio.create_task(relay.run())
        await first_page_sent.wait()
        await eventually(lambda: _replayed_past(db, forgotten[1].id), what="the first page recorded")
        replaying.cancel()
    assert await published_ids(settings, 2) == [e.id for e in forgotten[:2]]

    async with relaying(settings, log_lost=False):
        assert await published_ids(settings, 5) == [e.id for e in forgotten]
        await eventually(lambda: _replay_finished(db), what="the replay's record gone once it is done")


async def _replayed_past(db: Database, event_id: str) -> bool:
    return await db[outbox.REPLAY].count_documents({"after": event_id}) == 1


async def _replay_finished(db: Database) -> bool:
    return await db[outbox.REPLAY].count_documents({}) == 0


async def test_the_retired_ttl_index_is_dropped_where_an_earlier_version_made_it(
    settings: Settings, client: AsyncMongoClient[Document]
) -> None:
    db = client[settings.database_name("routing")]
    plan = IndexPlan({}, retired={OUTBOX: RETIRED_OUTBOX_INDEXES})
    await db[OUTBOX].create_index("created_at", name="published_ttl", expireAfterSeconds=60)
    await plan.apply(db)
    await plan.apply(db)  # again, with nothing left to drop
    names = {index["name"] async for index in await db[OUTBOX].list_indexes()}
    assert "published_ttl" not in names


async def test_a_retired_index_another_replica_dropped_first_is_no_error(
    settings: Settings, client: AsyncMongoClient[Document]
) -> None:
    """Two replicas starting together both list the index, then both drop it."""
    db = client[settings.database_name("routing")]
    await db[OUTBOX].create_index("created_at", name="published_ttl", expireAfterSeconds=60)
    await drop_index_if_present(db[OUTBOX], "published_ttl")
    await drop_index_if_present(db[OUTBOX], "published_ttl")  # the slower replica's drop
    assert "published_ttl" not in {index["name"] async for index in await db[OUTBOX].list_indexes()}


async def test_an_earlier_outboxs_pending_events_are_adopted_at_start_up_and_published(
    settings: Settings,
    client: AsyncMongoClient[Document],
) -> None:
    """Before `outbox_pending`, pending events had a null `published_at`, read by an index of it."""
    db = client[settings.database_name("routing")]
    published, pending = event_for("r-16"), event_for("r-16")
    await stage(client, settings, [published, pending])
    await db[PENDING].delete_many({})  # as the earlier version stored them:
    await db[OUTBOX].update_one({"_id": published.id}, {"$set": {"published_at": datetime.now(UTC)}})
    await db[OUTBOX].update_one({"_id": pending.id}, {"$set": {"published_at": None}})
    await db[OUTBOX].create_index([("published_at", 1), ("_id", 1)], name=LEGACY_PENDING_INDEX)
    async with serving(create_routing(settings)):
        # A service whose consumer group is new first sends everything kept again (both events);
        # then its relay publishes what is pending, which is the adopted event, and marks it.
        async def sent_again_as_pending() -> bool:
            records = await records_on(settings, Topics.from_settings(settings).referrals)
            return [dict(record.headers)["ce_id"].decode() for record in records].count(pending.id) == 2

        await eventually(sent_again_as_pending, what="the adopted event published by the relay")
        await eventually(lambda: all_marked(client, settings), what="the adopted event marked")
    names = {index["name"] async for index in await db[OUTBOX].list_indexes()}
    assert LEGACY_PENDING_INDEX not in names
    assert await adopt_legacy_pending(db) == 0  # done once: without the index, nothing is read


async def test_a_published_event_queued_again_goes_out_again_and_one_gone_cannot_be(
    settings: Settings,
    client: AsyncMongoClient[Document],
) -> None:
    db = client[settings.database_name("routing")]
    kept = event_for("r-17")
    await stage(client, settings, [kept])
    await mark_published(db, [kept])

    async def restage(session: Session) -> list[bool]:
        return [await restage_event(db, event_id=e, session=session) for e in (kept.id, "gone")]

    (answers, staged) = await transaction_with_events(client, restage)
    assert answers == [True, False] and staged.restaged
    assert await pending_count(db) == 1
    # Pending again, so retention leaves it be however old it is.
    assert await prune_published(db, before=datetime.now(UTC) + timedelta(days=1)) == 0
    async with relaying(settings):
        assert await published_ids(settings, 1) == [kept.id]
        await eventually(lambda: all_marked(client, settings), what="the event marked again")
