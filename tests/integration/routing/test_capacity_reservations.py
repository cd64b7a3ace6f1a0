"""Routing's capacity reservations against events it cannot trust blindly, on a real MongoDB.

- an acceptance (or start) of an offer routing never made is skipped: no place, no wait;
- an acceptance and a withdrawal of the same referral handled at the same moment (the retry
  consumer re-running a parked acceptance while the main consumer takes the withdrawal, or two
  replicas during a rebalance) leave no place held by the withdrawn referral.

Every event goes through the handler the running service uses. No broker: what routing stages
stays in its outbox.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
import pytest_asyncio
from signpost.routing.catalogue.models import PROVISIONS
from signpost.routing.catalogue.snapshot import CatalogueSnapshot
from signpost.routing.decisions.service import (
    DECISIONS,
    RESERVATIONS,
    on_referral_event,
    on_referral_events,
    track_capacity,
)
from signpost.routing.decisions.waiting import WAITS
from signpost.shared.events import (
    Envelope,
    EventData,
    OfferAcceptedV1,
    OfferDeclinedV1,
    OfferStartedV1,
    ReferralSubmittedV1,
    ReferralWithdrawnV1,
    new_event,
)
from signpost.shared.mongo import PROCESSED_EVENTS
from signpost.shared.outbox import OUTBOX
from signpost.shared.service import Runtime
from signpost.shared.settings import Settings
from signpost.shared.vocabulary import (
    DeclineReason,
    LevelOfNeed,
    NeedCode,
    WithdrawReason,
    broad_areas,
)
from structlog.testing import capture_logs

from tests.integration.routing.runtimes import offline_settings, routing_runtime, service
from tests.servers import MongoServer

AT = datetime(2026, 11, 2, 9, tzinfo=UTC)
PAIRS = 40  # the race audit's demo lost 39 of 40 such pairs
NEVER_MADE = "offer_never_made"  # signpost_events_skipped_total's reason


CATALOGUE = [
    service("x", NeedCode.ASD, capacity=(6, 6)),  # the first choice for ASD: it has more places
    service("y", NeedCode.ASD, capacity=(5, 6)),  # the next one, after x declines
    service("big", NeedCode.SEMH, capacity=(PAIRS, PAIRS)),
]


@pytest.fixture
def settings(mongodb: MongoServer) -> Settings:
    return offline_settings(mongodb)


@pytest_asyncio.fixture
async def runtime(settings: Settings) -> AsyncIterator[Runtime]:
    async with routing_runtime(settings, CATALOGUE) as runtime:
        yield runtime


def envelope(runtime: Runtime, data: EventData, referral_id: str) -> Envelope[EventData]:
    made: Envelope[EventData] = new_event(data, source="/signpost/intake", tenant=runtime.settings.tenant)
    return made


def submitted(runtime: Runtime, referral_id: str, need: NeedCode) -> Envelope[EventData]:
    data = ReferralSubmittedV1(
        referral_id=referral_id,
        age_years=8,
        locality="Ashley",
        setting_id="URN1",
        need_codes=[need],
        broad_areas=broad_areas([need]),
        level_of_need=LevelOfNeed.EARLY_HELP,
        submitted_at=AT,
        child_ref=f"child-{referral_id}",
    )
    return envelope(runtime, data, referral_id)


def accepted(runtime: Runtime, referral_id: str, provision_id: str) -> Envelope[EventData]:
    data = OfferAcceptedV1(referral_id=referral_id, provision_id=provision_id, organisation_id="org", at=AT)
    return envelope(runtime, data, referral_id)


def withdrawn(runtime: Runtime, referral_id: str) -> Envelope[EventData]:
    data = ReferralWithdrawnV1(referral_id=referral_id, reason=WithdrawReason.OTHER, withdrawn_at=AT)
    return envelope(runtime, data, referral_id)


async def deliver(runtime: Runtime, event: Envelope[EventData]) -> None:
    await on_referral_event(runtime=runtime, envelope=event, catalogue=CatalogueSnapshot())


async def available(runtime: Runtime, provision_id: str) -> int:
    found = await runtime.db[PROVISIONS].find_one({"_id": provision_id})
    assert found is not None
    return int(found["capacity"]["available"])


def skipped(runtime: Runtime, event_type: str) -> float:
    value = runtime.metrics.registry.get_sample_value(
        "signpost_events_skipped_total",
        {"service": runtime.service, "event_type": event_type, "reason": NEVER_MADE},
    )
    return value or 0.0


def commands(runtime: Runtime, name: str) -> float:
    value = runtime.metrics.registry.get_sample_value(
        "signpost_mongodb_commands_total", {"service": runtime.service, "command": name}
    )
    return value or 0.0


async def test_an_acceptance_of_an_offer_routing_never_made_holds_no_place(runtime: Runtime) -> None:
    """The event audit's ghosts: three acceptances of referrals routing never decided took three
    of slt-community's places and announced the change. Now each is skipped, said, and counted."""
    await deliver(runtime, submitted(runtime, "r-1", NeedCode.ASD))  # offered x alone
    before = await available(runtime, "x")
    outbox_before = await runtime.db[OUTBOX].count_documents({})
    ghosts = [accepted(runtime, f"ghost-{n}", "x") for n in range(3)]
    not_offered = accepted(runtime, "r-1", "y")  # a decided referral, but never offered y

    with capture_logs() as logs:
        for event in [*ghosts, not_offered]:
            await deliver(runtime, event)

    assert await available(runtime, "x") == before
    assert await available(runtime, "y") == 5
    assert await runtime.db[OUTBOX].count_documents({}) == outbox_before  # no provision.changed
    assert await runtime.db[RESERVATIONS].count_documents({}) == 0
    assert await runtime.db[WAITS].count_documents({}) == 0  # no clock started on a wait either
    warnings = [(e["referral_id"], e["provision_id"]) for e in logs if e["log_level"] == "warning"]
    assert warnings == [("ghost-0", "x"), ("ghost-1", "x"), ("ghost-2", "x"), ("r-1", "y")]
    assert all("child" not in key for entry in logs for key in entry)  # no child data in the log
    assert skipped(runtime, OfferAcceptedV1.event_type) == 4
    # Marked processed: a redelivery is not retried, warned about or counted again.
    ids = [event.id for event in [*ghosts, not_offered]]
    assert await runtime.db[PROCESSED_EVENTS].count_documents({"_id": {"$in": ids}}) == 4
    with capture_logs() as again:
        await deliver(runtime, ghosts[0])
    assert [e for e in again if e["log_level"] == "warning"] == []
    assert skipped(runtime, OfferAcceptedV1.event_type) == 4

    # The offer routing did make still holds its place.
    await deliver(runtime, accepted(runtime, "r-1", "x"))
    assert await available(runtime, "x") == before - 1


async def test_a_start_of_an_offer_routing_never_made_is_skipped(runtime: Runtime) -> None:
    """A start holds no place, but it would leave half a wait behind, which a later acceptance of
    the same never-made offer could complete into the provision's public waiting time."""
    start = envelope(
        runtime,
        OfferStartedV1(referral_id="ghost-s", provision_id="x", organisation_id="org", at=AT),
        "ghost-s",
    )
    with capture_logs() as logs:
        await deliver(runtime, start)
    assert await runtime.db[WAITS].count_documents({}) == 0
    assert [(e["referral_id"], e["provision_id"]) for e in logs if e["log_level"] == "warning"] == [
        ("ghost-s", "x")
    ]
    assert skipped(runtime, OfferStartedV1.event_type) == 1
    assert await runtime.db[PROCESSED_EVENTS].count_documents({"_id": start.id}) == 1


async def test_an_acceptance_of_an_offer_a_re_route_made_holds_a_place(runtime: Runtime) -> None:
    """The decision record keeps the first decision's offers and each re-route's: an offer made
    after a decline is one routing made."""
    await deliver(runtime, submitted(runtime, "r-1", NeedCode.ASD))
    decline = OfferDeclinedV1(
        referral_id="r-1", provision_id="x", organisation_id="org", at=AT, reason=DeclineReason.NO_CAPACITY
    )
    await deliver(runtime, envelope(runtime, decline, "r-1"))
    [reroute] = (await runtime.db[DECISIONS].find_one({"_id": "r-1"}) or {})["reroutes"]
    assert [o["provision_id"] for o in reroute["data"]["offers"]] == ["y"]

    await deliver(runtime, accepted(runtime, "r-1", "y"))
    assert await available(runtime, "y") == 4
    start = OfferStartedV1(referral_id="r-1", provision_id="y", organisation_id="org", at=AT)
    await deliver(runtime, envelope(runtime, start, "r-1"))
    assert await runtime.db[WAITS].count_documents({"_id": "r-1:y", "weeks": {"$ne": None}}) == 1
    assert skipped(runtime, OfferAcceptedV1.event_type) == skipped(runtime, OfferStartedV1.event_type) == 0

    # A withdrawal still leaves its released record, which a late acceptance finds: no place.
    await deliver(runtime, withdrawn(runtime, "r-1"))
    assert await available(runtime, "y") == 5
    await deliver(runtime, accepted(runtime, "r-1", "x"))  # declined, but once offered
    assert await available(runtime, "x") == 6


async def test_an_acceptance_and_a_withdrawal_handled_at_once_leave_no_place_held(runtime: Runtime) -> None:
    """Each pair is handled concurrently, as the retry consumer and the main consumer (or two
    replicas in a rebalance) may: the withdrawal must never miss the place the acceptance takes."""
    referrals = [f"r-{n}" for n in range(PAIRS)]
    await on_referral_events(
        runtime=runtime,
        envelopes=[submitted(runtime, referral_id, NeedCode.SEMH) for referral_id in referrals],
        catalogue=CatalogueSnapshot(),
    )
    for referral_id in referrals:
        await asyncio.gather(
            track_capacity(runtime=runtime, envelope=accepted(runtime, referral_id, "big")),
            track_capacity(runtime=runtime, envelope=withdrawn(runtime, referral_id)),
        )

    held = await runtime.db[RESERVATIONS].find({"state": "held"}, {"_id": 1}).to_list()
    assert held == []
    assert await available(runtime, "big") == PAIRS
    withdrawals = await runtime.db[RESERVATIONS].count_documents({"provision_id": "*", "state": "released"})
    assert withdrawals == PAIRS
    # They did run at once: one of a pair was aborted on a write conflict and run again.
    assert commands(runtime, "abortTransaction") > 0
