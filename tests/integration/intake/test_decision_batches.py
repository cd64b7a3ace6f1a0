"""Intake records a batch of routing's decisions in one transaction on the real database: in order,
each once, with one write for the batch's referrals; a referral that moved meanwhile writes none.
Routing's answer to a declined offer is never lost: the referral waits open for it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from functools import partial
from typing import Any

import pytest
from signpost.intake.consumer import on_referral_events
from signpost.intake.offers.models import CompleteRequest, DeclineRequest
from signpost.intake.offers.service import offer_move
from signpost.intake.referrals.models import REFERRALS, WithdrawRequest
from signpost.intake.referrals.moves import withdrawal
from signpost.intake.referrals.service import (
    ConcurrentChange,
    ReferralChange,
    change_referral,
    routing_decision_change,
    save_referral_changes,
)
from signpost.intake.subscriptions.dispatcher import WebhookDispatcher
from signpost.intake.subscriptions.models import ALL_EVENTS, DELIVERIES, SUBSCRIPTIONS
from signpost.shared.auth.principal import Principal, Role
from signpost.shared.events import (
    Envelope,
    EventData,
    Offer,
    ReferralRoutedV1,
    ReferralUnmatchedV1,
    ReferralWithdrawnV1,
    from_kafka,
    new_event,
)
from signpost.shared.lifecycle import Move, ReferralStatus
from signpost.shared.mongo import PROCESSED_EVENTS, Document, Session, in_transaction
from signpost.shared.outbox import OUTBOX
from signpost.shared.service import Runtime
from signpost.shared.settings import Settings
from signpost.shared.vocabulary import DeclineReason, NeedCode, NeedsDomain, Outcome, Sector, WithdrawReason

from tests.unit.shared.test_events import submitted as submitted_event

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
TENANT = "E06000023"


@pytest.fixture
async def runtime(settings: Settings) -> AsyncIterator[Runtime]:
    runtime = Runtime.build(settings.model_copy(update={"tenant": TENANT}), "intake")
    runtime.enable_outbox()  # agencies' moves stage events, which wait in the outbox: no relay runs here
    yield runtime
    await runtime.client.close()


def submitted(referral_id: str) -> dict[str, Any]:
    return {"_id": referral_id, "tenant": TENANT, "status": "submitted", "offers": [], "unmet_needs": [],
            "timeline": [], "submitted_at": NOW}  # fmt: skip


def speech_offer(provision_id: str) -> Offer:
    return Offer(provision_id=provision_id, provision_name="Speech drop-in", organisation="NHS",
                 organisation_id="nhs-1", sector=Sector.HEALTH, needs_met=[NeedCode.SLCN], explanation="nearest")  # fmt: skip


def routed(
    referral_id: str, provision_id: str, *, replaces: str | None = None, unmet: Sequence[NeedCode] = ()
) -> Envelope[EventData]:
    data = ReferralRoutedV1(
        referral_id=referral_id,
        offers=[speech_offer(provision_id)],
        routed_at=NOW,
        replaces_provision_id=replaces,
        unmet_needs=list(unmet),
    )
    return new_event(data, source="/signpost/routing", tenant=TENANT)


def unmatched(referral_id: str, *, declined: str | None = None) -> Envelope[EventData]:
    data = ReferralUnmatchedV1(referral_id=referral_id, unmet_needs=[NeedCode.SLCN], locality="Eston",
                               reason="no provision", decided_at=NOW, declined_provision_id=declined)  # fmt: skip
    return new_event(data, source="/signpost/routing", tenant=TENANT)


def offered(referral_id: str, status: str, *offers: tuple[str, str]) -> dict[str, Any]:
    """A referral stored with (provision id, status) offers, all to agency nhs-1."""
    stored = [{**speech_offer(provision).model_dump(mode="json"), "status": st} for provision, st in offers]
    return {**submitted(referral_id), "status": status, "offers": stored}


AGENCY = Principal(subject="u-1", role=Role.AGENCY, organisation="nhs-1", tenant=TENANT)


async def agency_moves(
    runtime: Runtime,
    referral_id: str,
    provision_id: str,
    move: Move,
    details: DeclineRequest | CompleteRequest,
) -> Document:
    decide = partial(offer_move, provision_id=provision_id, organisation="nhs-1", move=move, details=details)
    return await change_referral(
        runtime=runtime, referral_id=referral_id, principal=AGENCY, correlation_id="c-1", decide=decide
    )


async def decline(runtime: Runtime, referral_id: str, provision_id: str) -> Document:
    return await agency_moves(
        runtime, referral_id, provision_id, Move.DECLINE, DeclineRequest(reason=DeclineReason.NO_CAPACITY)
    )


async def feed(runtime: Runtime, envelope: Envelope[EventData]) -> Document:
    """Routing's answer through intake's consumer; the referral as it is then."""
    await on_referral_events(runtime=runtime, envelopes=[envelope], dispatcher=WebhookDispatcher(runtime))
    found = await runtime.db[REFERRALS].find_one({"_id": envelope.subject})
    assert found is not None
    return found


async def test_a_batch_of_decisions_is_recorded_in_order_each_once(runtime: Runtime) -> None:
    await runtime.db[REFERRALS].insert_many([submitted("r-1"), submitted("r-2")])
    first, late = routed("r-1", "p-1"), unmatched("r-1")
    own: Envelope[EventData] = new_event(submitted_event("r-3"), source="/signpost/intake", tenant=TENANT)
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
    again: Envelope[EventData] = new_event(submitted_event("r-5"), source="/signpost/intake", tenant=TENANT)
    before = {doc["_id"] async for doc in runtime.db[PROCESSED_EVENTS].find({})}

    await on_referral_events(runtime=runtime, envelopes=[again], dispatcher=WebhookDispatcher(runtime))

    assert {doc["_id"] async for doc in runtime.db[PROCESSED_EVENTS].find({})} == before


async def test_a_submission_replayed_beside_its_decision_owes_no_webhook_either(runtime: Runtime) -> None:
    """A submission consumed alone, then its decision; then both again in one batch (a replay after
    a broker loss, or a re-publish while intake lags): the submission is still owed to no agency."""
    await runtime.db[REFERRALS].insert_one(submitted("r-10"))
    await runtime.db[SUBSCRIPTIONS].insert_one(
        {"_id": "s-1", "tenant": TENANT, "organisation": "nhs-1", "event_types": [ALL_EVENTS], "active": True}
    )
    submission: Envelope[EventData] = new_event(
        submitted_event("r-10"), source="/signpost/intake", tenant=TENANT
    )
    decision = routed("r-10", "p-1")

    for batch in ([submission], [decision], [submission, decision]):
        await on_referral_events(runtime=runtime, envelopes=batch, dispatcher=WebhookDispatcher(runtime))

    delivered = [doc["event_id"] async for doc in runtime.db[DELIVERIES].find({"referral_id": "r-10"})]
    assert delivered == [decision.id]


async def test_a_decline_after_the_rest_of_the_package_completed_keeps_its_replacement(
    runtime: Runtime,
) -> None:
    """A completed, B declined: routing re-routes B's needs, and the new offer joins an open referral."""
    await runtime.db[REFERRALS].insert_one(
        offered("r-6", "in_progress", ("p-1", "completed"), ("p-2", "routed"))
    )

    declined = await decline(runtime, "r-6", "p-2")
    after = await feed(runtime, routed("r-6", "p-3", replaces="p-2"))

    assert [(o["provision_id"], o["status"]) for o in after["offers"]] == [
        ("p-1", "completed"),
        ("p-2", "declined"),
        ("p-3", "routed"),
    ]
    assert (declined["status"], after["status"]) == ("in_progress", "in_progress")  # never closed meanwhile
    assert after["timeline"][-1]["type"] == ReferralRoutedV1.event_type


async def test_a_decline_nothing_can_replace_completes_the_package_with_its_needs_unmet(
    runtime: Runtime,
) -> None:
    await runtime.db[REFERRALS].insert_one(
        offered("r-7", "in_progress", ("p-1", "completed"), ("p-2", "routed"))
    )

    await decline(runtime, "r-7", "p-2")
    after = await feed(runtime, unmatched("r-7", declined="p-2"))

    assert (after["status"], after["unmet_needs"]) == ("completed", ["SLCN"])
    assert after["timeline"][-1]["type"] == ReferralUnmatchedV1.event_type


async def test_every_offer_declined_waits_for_each_answer_before_it_is_unmatched(runtime: Runtime) -> None:
    await runtime.db[REFERRALS].insert_one(offered("r-8", "routed", ("p-1", "routed"), ("p-2", "routed")))
    await decline(runtime, "r-8", "p-1")
    await decline(runtime, "r-8", "p-2")

    assert (await feed(runtime, unmatched("r-8", declined="p-1")))[
        "status"
    ] == "declined"  # p-2 may be re-routed
    assert (await feed(runtime, unmatched("r-8", declined="p-2")))["status"] == "unmatched"


async def test_offers_declined_before_routing_answers_were_marked_read_as_answered(runtime: Runtime) -> None:
    """Whether routing's answer to such a decline is still to come is not known; waiting for one that
    came long ago would hold the referral open for ever, so it closes as it always did."""
    await runtime.db[REFERRALS].insert_one(
        offered("r-9", "in_progress", ("p-1", "in_progress"), ("p-2", "declined"))
    )
    completion = CompleteRequest(
        outcome=Outcome.NEEDS_MET, needs_profile_after={NeedsDomain.COMMUNICATION_AND_INTERACTION: 1}
    )

    assert (await agency_moves(runtime, "r-9", "p-1", Move.COMPLETE, completion))["status"] == "completed"


def test_needs_a_route_leaves_unmet_are_recorded_and_a_reroute_adds_its_own() -> None:
    first = routing_decision_change(
        envelope=routed("r-20", "slt", unmet=[NeedCode.SEMH]), referral=submitted("r-20")
    )
    assert first is not None and first.changes["unmet_needs"] == ["SEMH"]

    referral = {**offered("r-20", "declined", ("slt", "declined")), "unmet_needs": ["SEMH"]}
    again = routed("r-20", "slt-2", replaces="slt", unmet=[NeedCode.SEMH, NeedCode.SPLD])
    rerouted = routing_decision_change(envelope=again, referral=referral)
    assert rerouted is not None and rerouted.changes["unmet_needs"] == ["SEMH", "SPLD"]


def test_a_decision_reaching_an_erased_referral_is_ignored() -> None:
    """Its child's details are gone: offering it would send agencies a referral nobody can act on,
    and unsetting `erased_at` would read as if it had never been erased."""
    declined = {**offered("r-21", "unmatched", ("slt", "declined")), "erased_at": NOW}
    again = routed("r-21", "slt-2", replaces="slt")
    assert routing_decision_change(envelope=again, referral={**declined, "erased_at": None}) is not None
    assert routing_decision_change(envelope=again, referral=declined) is None


PRACTITIONER = Principal(subject="u-2", role=Role.PRACTITIONER, organisation="school-1", tenant=TENANT)


async def withdrawn_from(runtime: Runtime, referral_id: str) -> ReferralStatus | None:
    """Withdraw the referral as its practitioner does; the status its staged event says it was
    withdrawn from."""
    decide = partial(withdrawal, request=WithdrawRequest(reason=WithdrawReason.OTHER))
    await change_referral(
        runtime=runtime, referral_id=referral_id, principal=PRACTITIONER, correlation_id="c-2", decide=decide
    )
    [staged] = await runtime.db[OUTBOX].find({"key": referral_id}).to_list()
    data = from_kafka(staged["value"], staged["headers"]).data
    assert isinstance(data, ReferralWithdrawnV1)
    return data.withdrawn_from


async def test_a_withdrawal_says_what_it_was_withdrawn_from_so_a_decision_read_after_it_offers_nothing(
    runtime: Runtime,
) -> None:
    """Routing's decision is on the log before the withdrawal, but intake's consumer reads it after:
    intake ignores it, and the withdrawal's event tells analytics that it did."""
    await runtime.db[REFERRALS].insert_many(
        [
            {**submitted("r-30"), "organisation": "school-1"},
            {**offered("r-31", "routed", ("p-1", "routed")), "organisation": "school-1"},
        ]
    )
    assert await withdrawn_from(runtime, "r-30") is ReferralStatus.SUBMITTED
    after = await feed(runtime, routed("r-30", "p-1"))
    assert (after["status"], after["offers"]) == ("withdrawn", [])
    assert await withdrawn_from(runtime, "r-31") is ReferralStatus.ROUTED
