"""Routing's decisions after declines and acceptances, on a real MongoDB.

Every event goes through the handler the running service uses; decisions are read back from
routing's own records. No broker: the events routing stages stay in its outbox.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
import pytest_asyncio
from signpost.routing.catalogue.models import PROVISIONS
from signpost.routing.catalogue.snapshot import CatalogueSnapshot
from signpost.routing.decisions.service import DECISIONS, on_referral_event, on_referral_events
from signpost.shared.events import (
    Envelope,
    EventData,
    OfferAcceptedV1,
    OfferCompletedV1,
    OfferDeclinedV1,
    ReferralSubmittedV1,
    ReferralWithdrawnV1,
    new_event,
)
from signpost.shared.outbox import OUTBOX
from signpost.shared.service import Runtime
from signpost.shared.settings import Settings
from signpost.shared.vocabulary import (
    DeclineReason,
    LevelOfNeed,
    NeedCode,
    Outcome,
    WithdrawReason,
    broad_areas,
)
from structlog.testing import capture_logs

from tests.integration.routing.runtimes import offline_settings, routing_runtime, service
from tests.servers import MongoServer

AT = datetime(2026, 11, 2, 9, tzinfo=UTC)


CATALOGUE = [
    service("x", NeedCode.ASD, NeedCode.SLCN, capacity=(9, 10)),
    service("y", NeedCode.SLCN, NeedCode.SEMH, capacity=(1, 10)),
    service("z-slt", NeedCode.SLCN),
    service("w-best", NeedCode.MLD, capacity=(10, 10)),  # outscores a and b, even with continuity
    service("a", NeedCode.MLD),
    service("b", NeedCode.MLD),  # a's twin: without continuity, a wins on id
]


@pytest.fixture
def settings(mongodb: MongoServer) -> Settings:
    return offline_settings(mongodb)


@pytest_asyncio.fixture
async def runtime(settings: Settings) -> AsyncIterator[Runtime]:
    async with routing_runtime(settings, CATALOGUE) as runtime:
        yield runtime


class Loop:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime, self.catalogue = runtime, CatalogueSnapshot()

    def _envelope(self, data: EventData, referral_id: str) -> Envelope[EventData]:
        envelope: Envelope[EventData] = new_event(data, source="/signpost/intake", tenant="E06000023")
        return envelope

    def submitted(self, referral_id: str, *needs: NeedCode, child: str = "child-1") -> Envelope[EventData]:
        data = ReferralSubmittedV1(
            referral_id=referral_id,
            age_years=8,
            locality="Ashley",
            setting_id="URN1",
            need_codes=list(needs),
            broad_areas=broad_areas(list(needs)),
            level_of_need=LevelOfNeed.EARLY_HELP,
            submitted_at=AT,
            child_ref=child,
        )
        return self._envelope(data, referral_id)

    async def submit(self, referral_id: str, *needs: NeedCode, child: str = "child-1") -> dict[str, Any]:
        envelope = self.submitted(referral_id, *needs, child=child)
        await on_referral_event(runtime=self.runtime, envelope=envelope, catalogue=self.catalogue)
        return await self.decision(referral_id)

    async def decline(self, referral_id: str, provision_id: str) -> None:
        data = OfferDeclinedV1(
            referral_id=referral_id,
            provision_id=provision_id,
            organisation_id="org",
            at=AT,
            reason=DeclineReason.NO_CAPACITY,
        )
        envelope = self._envelope(data, referral_id)
        await on_referral_event(runtime=self.runtime, envelope=envelope, catalogue=self.catalogue)

    async def accept(self, referral_id: str, provision_id: str) -> None:
        data = OfferAcceptedV1(
            referral_id=referral_id, provision_id=provision_id, organisation_id="org", at=AT
        )
        await self.deliver(self._envelope(data, referral_id))

    async def complete(self, referral_id: str, provision_id: str) -> None:
        data = OfferCompletedV1(
            referral_id=referral_id,
            provision_id=provision_id,
            organisation_id="org",
            at=AT,
            outcome=Outcome.NEEDS_MET,
            needs_profile_after={},
        )
        await self.deliver(self._envelope(data, referral_id))

    async def withdraw(self, referral_id: str) -> None:
        data = ReferralWithdrawnV1(referral_id=referral_id, reason=WithdrawReason.NEEDS_MET, withdrawn_at=AT)
        await self.deliver(self._envelope(data, referral_id))

    async def deliver(self, envelope: Envelope[EventData]) -> None:
        await on_referral_event(runtime=self.runtime, envelope=envelope, catalogue=self.catalogue)

    async def available(self, provision_id: str) -> int:
        found = await self.runtime.db[PROVISIONS].find_one({"_id": provision_id})
        assert found is not None
        return int(found["capacity"]["available"])

    async def decision(self, referral_id: str) -> dict[str, Any]:
        found = await self.runtime.db[DECISIONS].find_one({"_id": referral_id})
        assert found is not None
        return dict(found)


def offered(data: dict[str, Any]) -> list[tuple[str, list[str]]]:
    return [(o["provision_id"], o["needs_met"]) for o in data["offers"]]


async def test_a_decline_re_routes_only_the_needs_no_live_offer_covers(runtime: Runtime) -> None:
    loop = Loop(runtime)
    first = await loop.submit("r-1", NeedCode.ASD, NeedCode.SLCN, NeedCode.SEMH)
    assert offered(first["data"]) == [("x", ["ASD", "SLCN"]), ("y", ["SLCN", "SEMH"])]
    await loop.decline("r-1", "y")
    # x still covers SLCN: only SEMH needs another provision, and no untried one covers it,
    # so the SLCN-only service is not offered and SEMH is named as unmet.
    [after] = (await loop.decision("r-1"))["reroutes"]
    assert after["type"] == "uk.signpost.referral.unmatched.v1"
    assert (after["data"]["unmet_needs"], after["data"]["declined_provision_id"]) == (["SEMH"], "y")

    # x declines too: nothing live covers ASD or SLCN now; the SLCN service takes SLCN, ASD is named.
    await loop.decline("r-1", "x")
    [_, last] = (await loop.decision("r-1"))["reroutes"]
    assert last["type"] == "uk.signpost.referral.routed.v1"
    assert offered(last["data"]) == [("z-slt", ["SLCN"])]
    assert (last["data"]["replaces_provision_id"], last["data"]["unmet_needs"]) == ("x", ["ASD"])


async def test_continuity_counts_only_provisions_that_supported_the_child(runtime: Runtime) -> None:
    loop = Loop(runtime)
    first = await loop.submit("r-1", NeedCode.MLD)
    assert offered(first["data"]) == [("w-best", ["MLD"])]
    await loop.decline("r-1", "w-best")
    await loop.decline("r-1", "a")  # the re-route's offer, declined in turn
    await loop.accept("r-1", "b")  # b, the next one, supports the child
    rerouted = [r["data"]["offers"][0]["provision_id"] for r in (await loop.decision("r-1"))["reroutes"]]
    assert rerouted == ["a", "b"]

    # A later referral: w-best declined and a declined; only b has supported this child.
    later = (await loop.submit("r-2", NeedCode.MLD))["data"]["offers"][0]
    assert later["provision_id"] == "w-best"
    assert "supported this child before" not in later["explanation"]
    await loop.decline("r-2", "w-best")
    [again] = (await loop.decision("r-2"))["reroutes"]
    [offer] = again["data"]["offers"]
    assert offer["provision_id"] == "b"  # continuity, not a's lower id
    assert "has supported this child before" in offer["explanation"]

    # Offers made to a sibling submission in the same batch have supported nobody yet.
    siblings = [
        loop.submitted("r-3", NeedCode.MLD, child="child-2"),
        loop.submitted("r-4", NeedCode.MLD, child="child-2"),
    ]
    await on_referral_events(runtime=runtime, envelopes=siblings, catalogue=loop.catalogue)
    second = (await loop.decision("r-4"))["data"]["offers"][0]
    assert "supported this child before" not in second["explanation"]


async def test_a_repeated_submission_whose_decision_event_is_gone_is_logged(runtime: Runtime) -> None:
    """Intake re-publishes a submission it heard no decision for; when routing's decision event has
    left the outbox meanwhile it cannot be announced again, and that must not pass in silence."""
    loop = Loop(runtime)
    decided = await loop.submit("r-gone", NeedCode.ASD)
    await runtime.db[OUTBOX].delete_one({"_id": decided["event_id"]})
    with capture_logs() as logs:
        await on_referral_event(
            runtime=runtime, envelope=loop.submitted("r-gone", NeedCode.ASD), catalogue=loop.catalogue
        )
    assert [(entry["log_level"], entry["referral_id"]) for entry in logs] == [("warning", "r-gone")]
    assert "no longer in the outbox" in logs[0]["event"]


async def test_a_withdrawal_delivered_before_its_acceptance_holds_no_place(runtime: Runtime) -> None:
    """Intake's replicas each relay their own outbox, so a referral's events may arrive out of order:
    the practitioner's withdrawal before the agency's acceptance it followed."""
    loop = Loop(runtime)
    assert offered((await loop.submit("r-1", NeedCode.ASD))["data"]) == [("x", ["ASD"])]
    before = await loop.available("x")
    await loop.withdraw("r-1")
    await loop.accept("r-1", "x")
    assert await loop.available("x") == before
    await loop.accept("r-1", "x")  # delivered again under another event id
    assert await loop.available("x") == before


async def test_a_completion_delivered_before_its_acceptance_holds_no_place(runtime: Runtime) -> None:
    loop = Loop(runtime)
    await loop.submit("r-1", NeedCode.ASD)
    before = await loop.available("x")
    await loop.complete("r-1", "x")
    await loop.accept("r-1", "x")
    assert await loop.available("x") == before
    await loop.withdraw("r-1")  # nothing held: nothing given back beyond what was there
    assert await loop.available("x") == before


async def test_places_in_order_are_held_once_and_given_back_once(runtime: Runtime) -> None:
    loop = Loop(runtime)
    await loop.submit("r-1", NeedCode.ASD)
    await loop.submit("r-2", NeedCode.ASD, child="child-2")
    before = await loop.available("x")
    await loop.accept("r-1", "x")
    await loop.accept("r-1", "x")  # under another event id: still one place
    await loop.accept("r-2", "x")
    assert await loop.available("x") == before - 2
    await loop.complete("r-1", "x")
    await loop.complete("r-1", "x")
    assert await loop.available("x") == before - 1
    await loop.withdraw("r-2")
    await loop.accept("r-1", "x")  # a late redelivery after the end
    assert await loop.available("x") == before
