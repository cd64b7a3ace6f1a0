"""Simulated agencies: calibrated acceptance and declines, and services that differ in what they achieve."""

from __future__ import annotations

from collections import Counter
from statistics import fmean, pstdev
from typing import Any

from signpost.shared.vocabulary import NeedsDomain, Outcome

from signpost.platform.demo.agencies import AgencyBehaviour
from signpost.platform.demo.area import DemoProvision, LocalArea
from signpost.platform.demo.calibration import Calibration
from tests.unit.demo.conftest import SAMPLES, tolerance


def offer_of(provision: DemoProvision) -> dict[str, Any]:
    """An offer as `GET /v1/offers` lists it (the fields the agencies read)."""
    return {
        "provision_name": provision.name,
        "sector": provision.sector.value,
        "needs_met": [need.value for need in provision.need_codes],
        "needs_profile": {
            NeedsDomain.COMMUNICATION_AND_INTERACTION.value: 3,
            NeedsDomain.FAMILY_AND_HOME.value: 2,
        },
    }


def test_acceptance_and_decline_reasons_match_the_calibration(
    area: LocalArea, calibration: Calibration
) -> None:
    agencies = AgencyBehaviour(area, calibration, seed=1)
    slt = next(p for p in area.provisions if p.key.startswith("community-slt"))
    decisions = [agencies.decide(offer_of(slt)) for _ in range(SAMPLES)]
    p = calibration.agencies.accept_share
    accepted = sum(d.accept for d in decisions)
    assert abs(accepted / SAMPLES - p) <= tolerance(p, SAMPLES)
    declines = Counter(d.reason for d in decisions if not d.accept)
    n = sum(declines.values())
    reasons = calibration.agencies.decline_reasons
    for reason, share in reasons.items():
        assert abs(declines[reason] / n - share) <= tolerance(share, n, checks=len(reasons)), reason
    assert all(d.reason is None for d in decisions if d.accept)
    low, high = calibration.agencies.support_weeks
    assert all(low * 7 <= d.support_for.days <= high * 7 for d in decisions)
    # Support starts within about the service's waiting time.
    mean_wait_weeks = fmean(d.start_after.days / 7 for d in decisions)
    assert abs(mean_wait_weeks - slt.waiting_weeks) <= 0.1 * slt.waiting_weeks + 0.5


def test_services_with_a_larger_effect_improve_needs_more(area: LocalArea, calibration: Calibration) -> None:
    agencies = AgencyBehaviour(area, calibration, seed=2)
    ranked = sorted(
        (
            p
            for p in area.provisions
            if p.need_codes and any(c.value in ("SLCN", "ASD") for c in p.need_codes)
        ),
        key=lambda p: p.effect,
    )
    weakest, strongest = ranked[0], ranked[-1]
    assert strongest.effect - weakest.effect >= 0.4

    def improvements(provision: DemoProvision) -> list[int]:
        offer = offer_of(provision)
        completions = [agencies.complete(offer) for _ in range(1000)]
        assert {c.outcome for c in completions} >= {Outcome.NEEDS_MET, Outcome.PARTLY_MET}
        return [
            sum(offer["needs_profile"].values()) - sum(c.needs_profile_after.values())
            for c in completions
            if c.outcome is not Outcome.DISENGAGED
        ]

    weak, strong = improvements(weakest), improvements(strongest)
    standard_error = (pstdev(weak) ** 2 / len(weak) + pstdev(strong) ** 2 / len(strong)) ** 0.5
    assert fmean(strong) - fmean(weak) > 4 * standard_error
    for score in (*weak, *strong):
        assert -2 <= score <= 5  # re-scores stay on the 0-4 scale
