"""How far a set being rebuilt has been folded into each partition, on a real MongoDB: a live batch
folds into it only once everything before the batch is in (sets.py, fold_batch's `in_order`)."""

from __future__ import annotations

import asyncio

import pytest
from pymongo import AsyncMongoClient
from signpost.analytics.projections import fold
from signpost.analytics.projections.facts import fact_id
from signpost.analytics.projections.fold import fold_batch
from signpost.analytics.projections.sets import (
    POSITIONS_COLLECTION,
    ProjectionSet,
    abandon,
    hand_over,
    read_pointer,
    start_building,
    start_positions,
)
from signpost.analytics.projections.writers import WriterLease
from signpost.shared.mongo import Database, Document

from tests.analytics_events import TENANT, lifecycle

BUILDING = ProjectionSet("r20261208000000abcd")
REFERRALS = ("signpost.referrals", 0)


async def handed_over(db: Database) -> None:
    await start_building(db, BUILDING.name)
    await start_positions(db, BUILDING, {REFERRALS: 0})
    await hand_over(db, BUILDING.name)


async def test_a_live_batch_waits_for_the_replay_to_fold_what_comes_before_it(
    mongo: tuple[AsyncMongoClient[Document], Database],
) -> None:
    client, db = mongo
    await handed_over(db)
    submitted, routed, withdrawn = lifecycle("r1", "withdrawn")
    live, replay = WriterLease(db), WriterLease(db)

    # The live consumer's batch holds offset 2; the set has nothing yet.
    waiting = asyncio.create_task(
        fold_batch(
            client, db, target=BUILDING, envelopes=[withdrawn], lease=live, in_order={REFERRALS: (2, 3)}
        )
    )
    await asyncio.sleep(0.3)
    assert not waiting.done()
    assert await db[BUILDING.facts].find_one({"_id": fact_id(TENANT, "r1")}) is None

    await fold_batch(
        client, db, target=BUILDING, envelopes=[submitted, routed], lease=replay, in_order={REFERRALS: (0, 2)}
    )
    folded = await asyncio.wait_for(waiting, 10)

    assert folded.changed == 1
    fact = await db[BUILDING.facts].find_one({"_id": fact_id(TENANT, "r1")})
    assert fact is not None and fact["routed_at"] is not None and fact["withdrawn_at"] is not None
    assert fact["offers"]  # the routing decision was folded before the withdrawal, as on the log
    position = await db[POSITIONS_COLLECTION].find_one({"set": BUILDING.name})
    assert position is not None and position["next"] == 3

    # A batch the set already holds (read again after a rebalance, say) changes nothing, waits for nothing.
    again = await fold_batch(
        client, db, target=BUILDING, envelopes=[routed, withdrawn], lease=live, in_order={REFERRALS: (1, 3)}
    )
    assert again.changed == 0


async def test_a_set_abandoned_while_a_batch_waits_for_it_takes_nothing(
    mongo: tuple[AsyncMongoClient[Document], Database],
) -> None:
    client, db = mongo
    await handed_over(db)
    waiting = asyncio.create_task(
        fold_batch(
            client,
            db,
            target=BUILDING,
            envelopes=lifecycle("r1", "withdrawn")[2:],
            lease=WriterLease(db),
            in_order={REFERRALS: (2, 3)},
        )
    )
    await asyncio.sleep(0.2)
    assert await abandon(db, BUILDING.name)
    folded = await asyncio.wait_for(waiting, 10)
    assert folded.changed == 0 and await db[BUILDING.facts].count_documents({}) == 0


async def test_a_set_that_does_not_catch_up_is_abandoned_rather_than_stalling_the_live_consumer(
    mongo: tuple[AsyncMongoClient[Document], Database], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, db = mongo
    await handed_over(db)
    monkeypatch.setattr(fold, "CATCH_UP_WAIT_S", 0.3)
    folded = await fold_batch(
        client,
        db,
        target=BUILDING,
        envelopes=lifecycle("r1", "withdrawn")[2:],
        lease=WriterLease(db),
        in_order={REFERRALS: (2, 3)},
    )
    assert folded.changed == 0
    pointer = await read_pointer(db)
    assert pointer.building is None and pointer.targets() == [pointer.active]
