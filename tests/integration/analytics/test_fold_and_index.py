"""The fold and the in-memory index on a real MongoDB: cached copies that went stale, and
an index that follows writes made by another process, one that stops, and its own while it reloads."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import date
from typing import Any, cast

import pytest
from pymongo import AsyncMongoClient
from pymongo.errors import ConnectionFailure
from signpost.analytics.projections.cache import WriteCache
from signpost.analytics.projections.facts import fact_id
from signpost.analytics.projections.fold import fold_batch
from signpost.analytics.projections.follower import FactsFollower, IndexLoading
from signpost.analytics.projections.index import Days, FactIndex
from signpost.analytics.projections.sets import INITIAL_SET, ProjectionSet
from signpost.analytics.projections.writers import WriterLease
from signpost.shared.mongo import Database, Document, Session

from tests.analytics_events import TENANT, lifecycle
from tests.conftest import eventually

LIVE = ProjectionSet(INITIAL_SET)
MARCH: Days = (date(2026, 3, 1), date(2026, 3, 31))


async def test_a_cached_copy_another_writer_changed_is_folded_again_from_mongodb(
    mongo: tuple[AsyncMongoClient[Document], Database],
) -> None:
    client, db = mongo
    events = lifecycle("r1", "completed", child_ref="c1")
    cache, here, other = WriteCache(size=100), WriterLease(db), WriterLease(db)
    await fold_batch(client, db, target=LIVE, envelopes=events[:2], cache=cache, lease=here)
    # Another writer (a rebuild filling the same set, a replica after a rebalance) moves the fact on.
    await fold_batch(client, db, target=LIVE, envelopes=events[2:4], lease=other)
    folded = await fold_batch(client, db, target=LIVE, envelopes=events[4:], cache=cache, lease=here)
    fact = await db[LIVE.facts].find_one({"_id": fact_id(TENANT, "r1")})
    assert fact is not None and fact["version"] == 3 and len(fact["events"]) == len(events)
    assert folded.facts == [fact] and "completed_at" in fact["offers"]["speech-therapy"]
    # The cache holds what was written last, so the next batch starts from it without reading.
    assert cache.get_many(LIVE.facts, [fact["_id"]]) == {fact["_id"]: fact}
    again = await fold_batch(client, db, target=LIVE, envelopes=events, cache=cache, lease=here)
    assert again.changed == 0 and again.facts == []  # every event was folded before


async def test_the_index_follows_facts_written_elsewhere_and_ignores_older_copies(
    mongo: tuple[AsyncMongoClient[Document], Database],
) -> None:
    client, db = mongo
    elsewhere = WriterLease(db)
    await fold_batch(client, db, target=LIVE, envelopes=lifecycle("before", "accepted"), lease=elsewhere)
    follower = FactsFollower(db)
    running = asyncio.create_task(follower.run())
    try:
        index = await follower.index(LIVE, wait_s=30)  # loaded with what was there already

        def submitted() -> int:
            return index.totals(tenant=TENANT, periods=[MARCH])[0].get("submitted", 0)

        async def two_submitted() -> bool:
            return submitted() == 2

        assert submitted() == 1
        # Written by another process: the change stream brings it.
        await fold_batch(
            client, db, target=LIVE, envelopes=lifecycle("elsewhere", "completed"), lease=elsewhere
        )
        await eventually(two_submitted, what="the other process's fact counted")
        # Written here and handed over at once; the change stream's copy of it changes nothing.
        folded = await fold_batch(
            client, db, target=LIVE, envelopes=lifecycle("here", "escalated"), lease=follower.lease
        )
        follower.apply(LIVE, folded.facts)
        assert submitted() == 3
        stale = {**folded.facts[0], "version": 0, "escalated": None}
        follower.apply(LIVE, [stale])
        assert index.totals(tenant=TENANT, periods=[MARCH])[0]["escalated"] == 1
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)


async def test_a_set_still_loading_says_so(mongo: tuple[AsyncMongoClient[Document], Database]) -> None:
    _, db = mongo
    follower = FactsFollower(db)
    with pytest.raises(IndexLoading, match="loading"):
        await follower.index(LIVE, wait_s=0)  # not given a moment to read anything


async def test_replicas_read_each_others_writes_and_a_lone_writer_leaves_the_change_stream_alone(
    mongo: tuple[AsyncMongoClient[Document], Database],
) -> None:
    client, db = mongo
    # Short leases, so they lapse within the test: each follower then pauses its change stream.
    first, second = (FactsFollower(db, lease=WriterLease(db, lease_s=3, margin_s=2)) for _ in range(2))
    running = [asyncio.create_task(first.run())]
    try:
        first_index = await first.index(LIVE, wait_s=30)
        folded = await fold_batch(
            client, db, target=LIVE, envelopes=lifecycle("one", "accepted"), lease=first.lease
        )
        first.apply(LIVE, folded.facts)
        assert not first.reading_changes  # the only writer: nothing to read

        running.append(asyncio.create_task(second.run()))
        second_index = await second.index(LIVE, wait_s=30)

        def counted(index: FactIndex) -> int:
            return index.totals(tenant=TENANT, periods=[MARCH])[0].get("submitted", 0)

        async def both_read(expected: int) -> bool:
            return counted(first_index) == counted(second_index) == expected

        await eventually(lambda: both_read(1), what="the second replica loading the first one's fact")
        # Each replica's writes reach the other's index (and its own, handed over by the fold).
        folded = await fold_batch(
            client, db, target=LIVE, envelopes=lifecycle("two", "completed"), lease=second.lease
        )
        second.apply(LIVE, folded.facts)
        await eventually(lambda: both_read(2), what="the first replica reading the second one's fact")
        folded = await fold_batch(
            client, db, target=LIVE, envelopes=lifecycle("three", "escalated"), lease=first.lease
        )
        first.apply(LIVE, folded.facts)
        await eventually(lambda: both_read(3), what="the second replica reading the first one's fact")

        async def both_paused() -> bool:
            return not first.reading_changes and not second.reading_changes

        await eventually(both_paused, what="both leases lapsing, so neither reads the change stream")
        # Paused, not skipped: a write after the pause is read once its writer renews its lease.
        folded = await fold_batch(
            client, db, target=LIVE, envelopes=lifecycle("four", "accepted"), lease=second.lease
        )
        second.apply(LIVE, folded.facts)
        await eventually(lambda: both_read(4), what="the paused stream resuming where it stopped")
    finally:
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)


class HeldLooks(WriterLease):
    """A follower's lease whose looks at the other writers can be held back: the test decides what
    happens between two of them."""

    def __init__(self, db: Database) -> None:
        super().__init__(db)
        self.gate, self.held = asyncio.Event(), asyncio.Event()
        self.gate.set()

    async def look(self, *, session: Session | None = None) -> bool:
        if not self.gate.is_set():
            self.held.set()
            await self.gate.wait()
        return await super().look(session=session)


async def test_a_writer_that_stops_between_two_looks_still_reaches_the_index(
    mongo: tuple[AsyncMongoClient[Document], Database],
) -> None:
    """A rebuild, or a replica stopping cleanly, releases its lease after its last commit: a follower
    that never saw the lease (or had not read that far) must still read what it wrote."""
    client, db = mongo
    lease = HeldLooks(db)
    follower = FactsFollower(db, lease=lease)
    running = asyncio.create_task(follower.run())

    async def counted() -> bool:
        index = await follower.index(LIVE, wait_s=30)
        return index.totals(tenant=TENANT, periods=[MARCH])[0].get("accepted", 0) == 1

    async def alone_again() -> bool:
        return not follower.reading_changes

    try:
        await follower.index(LIVE, wait_s=30)
        assert not follower.reading_changes  # alone: the stream waits
        lease.gate.clear()
        await asyncio.wait_for(lease.held.wait(), 30)  # no look under way until the gate opens
        # Short, so that it lapses within the test.
        other = WriterLease(db, lease_s=10, margin_s=5)
        await other.ensure()
        await fold_batch(client, db, target=LIVE, envelopes=lifecycle("last", "accepted"), lease=other)
        await other.release()
        lease.gate.set()
        await eventually(counted, what="the stopped writer's last fact counted")
        await eventually(alone_again, what="its lease lapsing, so the stream waits again")
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)


class LostStream:
    """A change stream whose server went away (a failover, a network blip)."""

    alive = True

    async def __aenter__(self) -> LostStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def try_next(self) -> Document | None:
        raise ConnectionFailure("the change stream's server went away")


class ReloadHeld:
    """The live facts as a follower reads them: its first change stream is lost, and the scan of
    the reload that follows waits after passing `fact` until `go_on` is set."""

    def __init__(self, facts: Any, fact: str) -> None:
        self._facts, self._fact = facts, fact
        self.passed, self.go_on = asyncio.Event(), asyncio.Event()
        self._streams = self._scans = 0

    async def watch(self, *args: Any, **kwargs: Any) -> Any:
        self._streams += 1
        return LostStream() if self._streams == 1 else await self._facts.watch(*args, **kwargs)

    async def find(self, *args: Any, **kwargs: Any) -> AsyncIterator[Document]:
        self._scans += 1
        async for fact in self._facts.find(*args, **kwargs):
            yield fact
            if self._scans == 2 and fact["_id"] == self._fact:
                self.passed.set()
                await self.go_on.wait()


class Through:
    """A database whose live facts are read through `facts`; the rest as it is."""

    def __init__(self, db: Database, facts: ReloadHeld) -> None:
        self._db, self._facts = db, facts

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)

    def __getitem__(self, name: str) -> Any:
        return self._facts if name == LIVE.facts else self._db[name]


async def test_a_reloaded_index_keeps_what_this_process_wrote_while_it_was_reloading(
    mongo: tuple[AsyncMongoClient[Document], Database],
) -> None:
    client, db = mongo
    events = lifecycle("mine", "accepted")
    other = WriterLease(db)  # current throughout: the follower reads its change stream
    await fold_batch(client, db, target=LIVE, envelopes=events[:-1], lease=other)
    facts = ReloadHeld(db[LIVE.facts], fact_id(TENANT, "mine"))
    follower = FactsFollower(cast(Database, Through(db, facts)), backoff_initial_s=0.01)
    running = asyncio.create_task(follower.run())

    async def reloaded() -> FactIndex | None:
        index = await follower.index(LIVE, wait_s=30)
        return index if index is not loaded else None

    try:
        await asyncio.wait_for(facts.passed.wait(), 30)  # the stream was lost; the reload passed the fact
        loaded = await follower.index(LIVE, wait_s=0)  # still served while the reload runs
        # Folded here meanwhile: handed over by the fold, and left out of the new change stream.
        folded = await fold_batch(client, db, target=LIVE, envelopes=events[-1:], lease=follower.lease)
        follower.apply(LIVE, folded.facts)
        facts.go_on.set()
        index = await eventually(reloaded, what="the reloaded index served")
        assert index.totals(tenant=TENANT, periods=[MARCH])[0].get("accepted", 0) == 1
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
