"""Routing's decisions as pure functions of a submission (or a decline) and a catalogue snapshot."""

from __future__ import annotations

from datetime import UTC, datetime

from signpost.routing.decisions.service import _decide, _reroute, _Routed, needs_to_reroute
from signpost.routing.matching import Catalogue
from signpost.shared.events import (
    Envelope,
    EventData,
    OfferDeclinedV1,
    ReferralRoutedV1,
    ReferralUnmatchedV1,
    new_event,
)
from signpost.shared.mongo import Document
from signpost.shared.vocabulary import DeclineReason, NeedCode, NeedsDomain

from tests.unit.routing.test_matching import provision, referral

NOW = datetime(2026, 11, 3, 9, tzinfo=UTC)


def decided(catalogue: Catalogue, *needs: NeedCode, profile: dict[NeedsDomain, int] | None = None) -> _Routed:
    submitted = referral(*needs, profile=profile)
    envelope: Envelope[EventData] = new_event(submitted, source="/signpost/intake", tenant="E06000023")
    return _decide(envelope, submitted, snapshot=catalogue, served_before=frozenset(), min_cycles=2)


def test_needs_no_provision_meets_are_named_even_when_others_are_routed() -> None:
    decision = decided(Catalogue([provision("asd-only", NeedCode.ASD)]), NeedCode.ASD, NeedCode.SEMH).decision
    assert isinstance(decision, ReferralRoutedV1)
    assert [o.provision_id for o in decision.offers] == ["asd-only"]
    assert decision.unmet_needs == [NeedCode.SEMH]


PACKAGE = [
    provision("x", NeedCode.ASD, NeedCode.SLCN, capacity=(9, 10)),
    provision("y", NeedCode.SLCN, NeedCode.SEMH, capacity=(1, 10)),
]


def decline(
    record: Document, provision_id: str, catalogue: Catalogue, served_before: frozenset[str] = frozenset()
) -> ReferralRoutedV1 | ReferralUnmatchedV1:
    needs = needs_to_reroute(record, provision_id)
    assert needs is not None
    declined = OfferDeclinedV1(
        referral_id="r-1",
        provision_id=provision_id,
        organisation_id="org",
        at=NOW,
        reason=DeclineReason.OTHER,
    )
    return _reroute(record, declined, needs, snapshot=catalogue, served_before=served_before, now=NOW)


def test_a_decline_re_routes_only_what_no_live_offer_covers() -> None:
    # x still covers SLCN: with nothing untried for SEMH, SEMH alone is unmet.
    alone = Catalogue(PACKAGE)
    record = decided(alone, NeedCode.ASD, NeedCode.SLCN, NeedCode.SEMH).record()
    assert record["provision_ids"] == ["x", "y"]
    assert needs_to_reroute(record, "y") == [NeedCode.SEMH]
    answer = decline(record, "y", alone)
    assert isinstance(answer, ReferralUnmatchedV1)
    assert (answer.unmet_needs, answer.declined_provision_id) == ([NeedCode.SEMH], "y")

    # A service for SLCN alone is no replacement: x still meets SLCN.
    with_slt = Catalogue([*PACKAGE, provision("z-slt", NeedCode.SLCN)])
    with_slt_record = decided(with_slt, NeedCode.ASD, NeedCode.SLCN, NeedCode.SEMH).record()
    assert with_slt_record["provision_ids"] == ["x", "y"]
    assert decline(with_slt_record, "y", with_slt) == answer

    # Once y's decline is answered, x's decline re-routes both its needs: z takes SLCN, ASD is named.
    after_y = {**record, "reroutes": [{"data": answer.model_dump(mode="json")}]}
    assert needs_to_reroute(after_y, "x") == [NeedCode.ASD, NeedCode.SLCN]
    rerouted = decline(after_y, "x", with_slt)
    assert isinstance(rerouted, ReferralRoutedV1)
    assert [(o.provision_id, o.needs_met) for o in rerouted.offers] == [("z-slt", [NeedCode.SLCN])]
    assert (rerouted.replaces_provision_id, rerouted.unmet_needs) == ("x", [NeedCode.ASD])


def test_a_decline_whose_needs_the_package_still_meets_is_answered_with_nothing_unmet() -> None:
    # Autism weighs most: a's free places win it the first round; b then comes for SEMH, and covers ASD too.
    catalogue = Catalogue(
        [provision("a", NeedCode.ASD, capacity=(10, 10)), provision("b", NeedCode.ASD, NeedCode.SEMH)]
    )
    profile = {NeedsDomain.COMMUNICATION_AND_INTERACTION: 4, NeedsDomain.SOCIAL_EMOTIONAL_MENTAL_HEALTH: 1}
    record = decided(catalogue, NeedCode.ASD, NeedCode.SEMH, profile=profile).record()
    assert [(o["provision_id"], o["needs_met"]) for o in record["offers"]] == [
        ("a", ["ASD"]),
        ("b", ["ASD", "SEMH"]),
    ]
    assert needs_to_reroute(record, "a") == []
    answer = decline(record, "a", catalogue)
    assert isinstance(answer, ReferralUnmatchedV1) and answer.unmet_needs == []
    assert answer.reason == "declined by a; the package's other offers meet its needs"
    assert needs_to_reroute(record, "not-offered") is None


def test_a_re_route_favours_a_provision_that_has_supported_the_child() -> None:
    catalogue = Catalogue(
        [
            provision("a", NeedCode.MLD, capacity=(10, 10)),
            provision("b", NeedCode.MLD),
            provision("c", NeedCode.MLD),
        ]
    )
    record = decided(catalogue, NeedCode.MLD).record()
    assert record["provision_ids"] == ["a"]
    for served_before, chosen in [(frozenset(), "b"), (frozenset({"c"}), "c")]:  # b and c tie: b on id
        again = decline(record, "a", catalogue, served_before)
        assert isinstance(again, ReferralRoutedV1)
        [offer] = again.offers
        assert offer.provision_id == chosen
        assert ("has supported this child before" in offer.explanation) is (chosen == "c")
