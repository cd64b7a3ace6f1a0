"""Intake records a batch of routing's decisions in one transaction on the real database: in order,
each once, with one write for the batch's referrals; a referral that moved meanwhile writes none."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from signpost.intake.consumer import on_referral_events
from signpost.intake.referrals.models import REFERRALS
from signpost.intake.referrals.service import (
    ConcurrentChange,
    ReferralChange,
    routing_decision_change,
    save_referral_changes,
)
from signpost.intake.subscriptions.dispatcher import WebhookDispatcher
from signpost.shared.events import (
    Envelope,
    EventData,
    Offer,
    ReferralRoutedV1,
    ReferralUnmatchedV1,
    new_event,
)
from signpost.shared.mongo import PROCESSED_EVENTS, Session, in_transaction
from signpost.shared.service import Runtime
from signpost.shared.settings import Settings
from signpost.shared.vocabulary import NeedCode, Sector

from tests.unit.shared.test_events import submitted as submitted_event

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
TENANT = "E06000023"


@pytest.fixture
async def runtime(settings: Settings) -> AsyncIterator[Runtime]:
    runtime = Runtime.build(settings.model_copy(update={"tenant": TENANT}), "intake")
    yield runtime
    await runtime.client.close()


def submitted(referral_id: str) -> dict[str, Any]:
    return {"_id": referral_id, "tenant": TENANT, "status": "submitted", "offers": [], "unmet_needs": [],
            "timeline": [], "submitted_at": NOW}  # fmt: skip


def routed(referral_id: str, provision_id: str) -> Envelope[EventData]:
    offer = Offer(provision_id=provision_id, provision_name="Speech drop-in", organisation="NHS",
                  organisation_id="nhs-1", sector=Sector.HEALTH, needs_met=[NeedCode.SLCN], explanation="nearest")  # fmt: skip
    data = ReferralRoutedV1(referral_id=referral_id, offers=[offer], routed_at=NOW)
    return new_event(data, source="/signpost/routing", tenant=TENANT, subject=referral_id)


def unmatched(referral_id: str) -> Envelope[EventData]:
    data = ReferralUnmatchedV1(referral_id=referral_id, unmet_needs=[NeedCode.SLCN], locality="Eston",
                               reason="no provision", decided_at=NOW)  # fmt: skip
    return new_event(data, source="/signpost/routing", tenant=TENANT, subject=referral_id)


async def test_a_batch_of_decisions_is_recorded_in_order_each_once(runtime: Runtime) -> None:
    await runtime.db[REFERRALS].insert_many([submitted("r-1"), submitted("r-2")])
    first, late = routed("r-1", "p-1"), unmatched("r-1")
    own: Envelope[EventData] = new_event(
        submitted_event("r-3"), source="/signpost/intake", tenant=TENANT, subject="r-3"
    )
    batch: list[Envelope[EventData]] = [
        own,
        first,
        routed("r-2", "p-2"),
        first,
        late,
    ]  # a redelivery, then a late decision

    await on_referral_events(runtime=runtime, envelopes=batch, dispatcher=WebhookDispatcher(runtime))

    r1, r2 = await runtime.db[REFERRALS].find({}, sort=[("_id", 1)]).to_list()
    assert (r1["status"], [o["provision_id"] for o in r1["offers"]]) == ("routed", ["p-1"])
    assert [entry["type"] for entry in r1["timeline"]] == [
        ReferralRoutedV1.event_type
    ]  # unmatched: illegal now
    assert (r2["status"], [o["provision_id"] for o in r2["offers"]]) == ("routed", ["p-2"])
    # A submission of a referral offered to no agency changes nothing here and leaves no trace.
    processed = {doc["_id"] async for doc in runtime.db[PROCESSED_EVENTS].find({})}
    assert processed == {e.id for e in batch} - {own.id}


async def test_a_referral_that_moved_meanwhile_fails_the_whole_batch_of_changes(runtime: Runtime) -> None:
    await runtime.db[REFERRALS].insert_many([submitted("r-3"), submitted("r-4")])
    changes = [
        routing_decision_change(envelope=routed(name, "p-1"), referral=submitted(name))
        for name in ("r-3", "r-4")
    ]
    await runtime.db[REFERRALS].update_one({"_id": "r-4"}, {"$set": {"status": "withdrawn"}})

    async def write(session: Session) -> None:
        await save_referral_changes(
            runtime=runtime, changes=[c for c in changes if isinstance(c, ReferralChange)], session=session
        )

    with pytest.raises(ConcurrentChange):
        await in_transaction(runtime.client, write)
    statuses = {d["_id"]: d["status"] async for d in runtime.db[REFERRALS].find({})}
    assert statuses == {"r-3": "submitted", "r-4": "withdrawn"}  # r-3's change went with the transaction


async def test_a_submission_delivered_again_after_its_referral_was_offered_owes_nothing(
    runtime: Runtime,
) -> None:
    """A submission comes before any decision in its partition, so at first it owes agencies no
    webhook; delivered again once the referral is offered (reconciliation, a replay) it owes none
    either, and it is not even looked up."""
    await runtime.db[REFERRALS].insert_one(submitted("r-5"))
    await on_referral_events(
        runtime=runtime, envelopes=[routed("r-5", "p-1")], dispatcher=WebhookDispatcher(runtime)
    )
    again: Envelope[EventData] = new_event(
        submitted_event("r-5"), source="/signpost/intake", tenant=TENANT, subject="r-5"
    )
    before = {doc["_id"] async for doc in runtime.db[PROCESSED_EVENTS].find({})}

    await on_referral_events(runtime=runtime, envelopes=[again], dispatcher=WebhookDispatcher(runtime))

    assert {doc["_id"] async for doc in runtime.db[PROCESSED_EVENTS].find({})} == before
