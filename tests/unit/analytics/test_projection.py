from datetime import UTC, datetime

from signpost.analytics.pulse.projection import increments_for
from signpost.shared.events import Offer, ReferralRoutedV1, ReferralUnmatchedV1
from signpost.shared.vocabulary import NeedCode, Sector

from tests.unit.shared.test_events import submitted

NOW = datetime(2026, 11, 2, tzinfo=UTC)


def test_submission_counts_once_and_once_per_need() -> None:
    assert increments_for(submitted()) == {"submitted": 1, "by_need_code.SLCN": 1, "by_need_code.SEMH": 1}


def test_decisions_count_by_outcome() -> None:
    offer = Offer(
        provision_id="p",
        provision_name="p",
        organisation="o",
        organisation_id="o",
        sector=Sector.HEALTH,
        needs_met=[NeedCode.SLCN],
        explanation="x",
    )
    assert increments_for(ReferralRoutedV1(referral_id="r", offers=[offer], routed_at=NOW)) == {
        "by_outcome.routed": 1
    }
    unmatched = ReferralUnmatchedV1(
        referral_id="r", unmet_needs=[NeedCode.PMLD], locality="A", reason="none", decided_at=NOW
    )
    assert increments_for(unmatched) == {"by_outcome.unmatched": 1}


def test_escalations_count_by_reason() -> None:
    from signpost.shared.events import ReferralEscalatedV1
    from signpost.shared.vocabulary import EscalationReason

    escalated = ReferralEscalatedV1(
        referral_id="r", reason=EscalationReason.SAFEGUARDING, locality="A", setting_id="S", escalated_at=NOW
    )
    assert increments_for(escalated) == {"by_outcome.escalated_safeguarding": 1}
