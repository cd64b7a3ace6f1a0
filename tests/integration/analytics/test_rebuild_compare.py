"""A rebuild's comparison on a real database: a document that differs only while a batch lands
in one set and then the other is not a difference; one that keeps differing is."""

from __future__ import annotations

import uuid
from types import SimpleNamespace

import pytest
from signpost.analytics.projections.sets import ProjectionSet
from signpost.analytics.rebuild import compare
from signpost.analytics.rebuild.compare import compare_sets
from signpost.shared.mongo import create_client
from signpost.shared.settings import Settings


async def test_only_documents_that_keep_differing_stand(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = create_client(settings)
    db = client[f"compare-{uuid.uuid4().hex[:8]}"]
    rebuilt, active = ProjectionSet("rebuilt"), ProjectionSet("active")
    try:
        await db[rebuilt.facts].insert_many(
            [{"_id": "wrong", "n": 1}, {"_id": "landing", "n": 2}, {"_id": "b", "n": 3}]
        )
        await db[active.facts].insert_many(
            [{"_id": "wrong", "n": 9}, {"_id": "landing", "n": 1}, {"_id": "b", "n": 3}]
        )

        async def batches_land(_: float) -> None:
            """Between two looks the live consumer's batch reaches the second set, and the next
            batch is halfway: in one set, not yet in the other."""
            await db[active.facts].update_one({"_id": "landing"}, {"$set": {"n": 2}})
            await db[rebuilt.facts].update_one({"_id": "b"}, {"$set": {"n": 4}})

        monkeypatch.setattr(compare, "asyncio", SimpleNamespace(sleep=batches_land))
        comparison = await compare_sets(db, rebuilt, active)
    finally:
        await client.drop_database(db.name)
        await client.close()

    [difference] = comparison.differences
    assert (difference.collection, difference.differing, difference.examples) == (
        "referral_facts",
        1,
        ["wrong"],
    )
    assert comparison.documents == 3
