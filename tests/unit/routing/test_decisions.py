"""Routing's decisions as pure functions of a submission (or a decline) and a catalogue snapshot."""

from __future__ import annotations

from signpost.routing.decisions.service import _decide
from signpost.routing.matching import Catalogue
from signpost.shared.events import Envelope, EventData, ReferralRoutedV1, ReferralSubmittedV1, new_event
from signpost.shared.vocabulary import NeedCode

from tests.unit.routing.test_matching import provision, referral


def decide(submitted: ReferralSubmittedV1, catalogue: Catalogue) -> ReferralRoutedV1:
    envelope: Envelope[EventData] = new_event(
        submitted, source="/signpost/intake", tenant="E06000023", subject="r-1"
    )
    decision = _decide(envelope, submitted, snapshot=catalogue, served={}, min_cycles=2).decision
    assert isinstance(decision, ReferralRoutedV1)
    return decision


def test_needs_no_provision_meets_are_named_even_when_others_are_routed() -> None:
    decision = decide(referral(NeedCode.ASD, NeedCode.SEMH), Catalogue([provision("asd-only", NeedCode.ASD)]))
    assert [o.provision_id for o in decision.offers] == ["asd-only"]
    assert decision.unmet_needs == [NeedCode.SEMH]
