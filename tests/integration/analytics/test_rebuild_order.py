"""A rebuild racing the live consumer: events folded live while the replay runs must not reach the
rebuilt set ahead of a referral's earlier events, which the fold needs in log order (facts.py).

The scenario of the race audit (/tmp/race_audit/rebuild_order_race.py), with the real live consumer:
right after the rebuild has measured the log's ends, a practitioner withdraws referral X, an agency
declines one of referral Y's two offers and routing answers that the other still meets its needs,
and routing replaces referral Z's declined offer (declined before the rebuild).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import pytest
from aiokafka import TopicPartition
from signpost.analytics.projections import sets
from signpost.analytics.projections.facts import AWAITING_ROUTING, fact_id
from signpost.analytics.projections.sets import ProjectionSet, read_pointer
from signpost.analytics.rebuild import service
from signpost.analytics.rebuild.compare import comparable
from signpost.analytics.rebuild.service import rebuild
from signpost.shared.events import Envelope, EventData, ReferralRoutedV1, ReferralUnmatchedV1
from signpost.shared.mongo import Database, Document
from signpost.shared.offsets import StreamInspector, Watermarks
from signpost.shared.settings import Settings
from signpost.shared.vocabulary import DeclineReason, NeedCode, Sector, WithdrawReason

from signpost.platform.lifecycles import ReferralEvents, offer
from tests.analytics_events import T0, TENANT
from tests.conftest import eventually
from tests.integration.analytics.conftest import Analytics

DAY = timedelta(days=1)
NEEDS = [NeedCode("SLCN")]
FIRST = offer("speech-therapy", sector=Sector.HEALTH, needs_met=NEEDS, organisation_id="a1")
SECOND = offer("ot-service", sector=Sector.HEALTH, needs_met=NEEDS, organisation_id="a2")
THIRD = offer("language-unit", sector=Sector.EDUCATION, needs_met=NEEDS, organisation_id="a3")


def referral(referral_id: str) -> ReferralEvents:
    return ReferralEvents(referral_id, tenant=TENANT, source="tests")


def submitted(events: ReferralEvents) -> Envelope[EventData]:
    return events.submitted(
        at=T0, needs=NEEDS, locality="Ashley", setting_id="URN100001", child_ref="", needs_profile={}
    )


def race_events() -> tuple[list[Envelope[EventData]], list[Envelope[EventData]]]:
    """The events on the log before the rebuild starts, and those published while it replays."""
    x, y, z = referral("ref-X"), referral("ref-Y"), referral("ref-Z")
    before = [
        submitted(x),
        x.routed(at=T0 + DAY, offers=[FIRST]),
        submitted(y),
        y.routed(at=T0 + DAY, offers=[FIRST, SECOND]),
        submitted(z),
        z.routed(at=T0 + DAY, offers=[FIRST]),
        z.declined(FIRST, at=T0 + 2 * DAY, reason=DeclineReason.NO_CAPACITY),
    ]
    during = [
        x.withdrawn(at=T0 + 2 * DAY, reason=WithdrawReason.OTHER),
        y.declined(FIRST, at=T0 + 2 * DAY, reason=DeclineReason.NO_CAPACITY),
        y.envelope(
            ReferralUnmatchedV1(
                referral_id="ref-Y",
                unmet_needs=[],
                locality="Ashley",
                reason="declined; the package's other offers meet its needs",
                decided_at=T0 + 2 * DAY,
                declined_provision_id=FIRST.provision_id,
            )
        ),
        z.envelope(
            ReferralRoutedV1(
                referral_id="ref-Z",
                offers=[THIRD],
                routed_at=T0 + 3 * DAY,
                replaces_provision_id=FIRST.provision_id,
            )
        ),
    ]
    return before, during


async def folded_live(analytics: Analytics) -> None:
    """Until the live consumer has folded (into every set it folds into) and committed the whole
    referrals topic: it commits a batch's offsets once the batch is in all of them."""
    inspector = StreamInspector(analytics.settings)
    await inspector.start()
    try:
        partitions = await inspector.partitions([analytics.topics.referrals])
        ends = {tp: marks.high for tp, marks in (await inspector.watermarks(partitions)).items()}
        group = analytics.topics.group("analytics")

        async def probe() -> bool:
            committed = await inspector.committed(group, partitions)
            return all(committed.get(tp, 0) >= end for tp, end in ends.items())

        await eventually(probe, what="the live consumer committed the referrals topic")
    finally:
        await inspector.close()


async def facts(db: Database, target: ProjectionSet, referral_ids: Sequence[str]) -> dict[str, Document]:
    found = {}
    for referral_id in referral_ids:
        document = await db[target.facts].find_one({"_id": fact_id(TENANT, referral_id)})
        assert document is not None, f"{referral_id} is missing from {target.name}"
        found[referral_id] = comparable(document)
    return found


def database(analytics: Analytics) -> Database:
    db: Database = analytics.client._transport.app.state.runtime.db  # type: ignore[attr-defined]
    return db


async def test_events_folded_live_while_the_rebuild_replays_are_folded_after_the_earlier_ones(
    analytics: Analytics, monkeypatch: pytest.MonkeyPatch
) -> None:
    before, during = race_events()
    await analytics.publish(before)
    await folded_live(analytics)
    db = database(analytics)
    measured = service._watermarks
    calls = 0

    async def then_the_live_events(
        settings: Settings, partitions: list[TopicPartition]
    ) -> dict[TopicPartition, Watermarks]:
        nonlocal calls
        marks = await measured(settings, partitions)
        calls += 1
        if calls == 1:  # the ends the replay reads up to are measured: now the live events arrive
            await analytics.publish(during)
            await folded_live(analytics)
        return marks

    monkeypatch.setattr(service, "_watermarks", then_the_live_events)
    report = await rebuild(analytics.settings)

    assert report.comparison is not None
    assert report.comparison.identical, [
        difference.describe() for difference in report.comparison.differences
    ]
    referrals = ("ref-X", "ref-Y", "ref-Z")
    rebuilt = await facts(db, ProjectionSet(report.active), referrals)
    assert rebuilt == await facts(db, ProjectionSet(report.replaced), referrals)
    # What folding the log in order says, as the live set did:
    x, y, z = (rebuilt[name] for name in referrals)
    assert x["routed_at"] is not None and x["withdrawn_at"] is not None
    assert FIRST.provision_id in x["offers"]
    assert y["unmatched"] is False and sorted(y["offers"]) == sorted(
        [FIRST.provision_id, SECOND.provision_id]
    )
    assert not z["offers"][FIRST.provision_id].get(AWAITING_ROUTING, False)
    assert THIRD.provision_id in z["offers"]
    assert (await read_pointer(db)).active.name == report.active


async def test_a_live_batch_past_where_the_rebuilt_set_has_got_waits_for_the_replay(
    analytics: Analytics, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Just before the hand-over, X's withdrawal and Y's decline arrive: the live consumer folds them
    into the active set alone. Just after it, routing's answer to Y's decline arrives, on the same
    partition: the live consumer's batch starts past where the replay has got, so it waits for the
    replay to fold the decline, and the answer goes into the rebuilt set after it."""
    before, during = race_events()
    await analytics.publish(before)
    await folded_live(analytics)
    db = database(analytics)
    answer = during[2]
    seen: dict[str, Any] = {}

    async def around_the_hand_over(db: Database, name: str) -> None:
        await analytics.publish(during[:2])
        await folded_live(analytics)
        await sets.hand_over(db, name)
        await analytics.publish(during[2:])
        active = (await read_pointer(db)).active

        async def in_the_active_set() -> bool:
            found = await db[active.facts].find_one({"_id": fact_id(TENANT, "ref-Y")})
            return found is not None and answer.id in found["events"]

        await eventually(in_the_active_set, what="routing's answer folded into the active set")
        seen["building"] = await db[ProjectionSet(name).facts].find_one({"_id": fact_id(TENANT, "ref-Y")})

    monkeypatch.setattr(service, "hand_over", around_the_hand_over)
    report = await rebuild(analytics.settings)

    assert seen["building"] is not None and answer.id not in seen["building"]["events"]  # it waited
    assert report.comparison is not None
    assert report.comparison.identical, [
        difference.describe() for difference in report.comparison.differences
    ]
    referrals = ("ref-X", "ref-Y", "ref-Z")
    rebuilt = await facts(db, ProjectionSet(report.active), referrals)
    assert rebuilt == await facts(db, ProjectionSet(report.replaced), referrals)
    assert rebuilt["ref-X"]["withdrawn_at"] is not None and rebuilt["ref-X"]["routed_at"] is not None
    assert rebuilt["ref-Y"]["unmatched"] is False

    # The live consumer carries on into the rebuilt set, now active.
    later = referral("ref-W")
    await analytics.publish([submitted(later), later.routed(at=T0 + DAY, offers=[FIRST])])
    await folded_live(analytics)
    found = await db[ProjectionSet(report.active).facts].find_one({"_id": fact_id(TENANT, "ref-W")})
    assert found is not None and found["routed_at"] is not None
