"""The generator reproduces the calibration within sampling error, and the same seed gives the same referrals."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import TypeVar

import pytest
from signpost.intake.referrals.models import ReferralRequest
from signpost.shared.vocabulary import LevelOfNeed, NeedCode

from signpost.platform.demo.area import LocalArea
from signpost.platform.demo.calendar import PERIODS, TERMS, intensity, period
from signpost.platform.demo.calibration import Calibration
from signpost.platform.demo.referrals import GeneratedReferral, ReferralGenerator, _age_fits
from tests.unit.demo.conftest import SAMPLES, TODAY, generate, tolerance

K = TypeVar("K")


def assert_shares(observed: Counter[K], expected: dict[K, float], n: int) -> None:
    for key, p in expected.items():
        share = observed[key] / n
        assert abs(share - p) <= tolerance(p, n, checks=len(expected)), (key, share, p, n)


def test_primary_needs_match_the_calibrated_mix(
    first_referrals: list[GeneratedReferral], calibration: Calibration
) -> None:
    n = len(first_referrals)
    assert n > SAMPLES * 0.7
    assert_shares(
        Counter(r.primary_need for r in first_referrals), calibration.expected_primary_need_shares(), n
    )


def test_specialist_referrals_have_the_ehc_plan_mix_and_slcn_leads_at_sen_support(
    first_referrals: list[GeneratedReferral], calibration: Calibration
) -> None:
    specialist = [r for r in first_referrals if r.level is LevelOfNeed.SPECIALIST]
    assert_shares(
        Counter(r.primary_need for r in specialist), dict(calibration.need_ehc_plan), len(specialist)
    )
    assert calibration.need_ehc_plan[NeedCode.ASD] == max(calibration.need_ehc_plan.values())
    support = Counter(r.primary_need for r in first_referrals if r.level is not LevelOfNeed.SPECIALIST)
    assert support.most_common(1)[0][0] is NeedCode.SLCN


def test_levels_sex_and_safeguarding_match(
    referrals: list[GeneratedReferral], first_referrals: list[GeneratedReferral], calibration: Calibration
) -> None:
    n = len(first_referrals)
    assert_shares(Counter(r.level for r in first_referrals), dict(calibration.level_of_need), n)
    male = sum(r.child.male for r in first_referrals)
    assert abs(male / n - calibration.male_share) <= tolerance(calibration.male_share, n)
    safeguarding = sum(r.safeguarding for r in referrals)  # drawn afresh for every referral
    p = calibration.safeguarding_share
    assert abs(safeguarding / len(referrals) - p) <= tolerance(p, len(referrals))


def test_a_child_is_referred_again_within_a_year_only_once_the_earlier_referral_would_have_closed(
    referrals: list[GeneratedReferral], calibration: Calibration
) -> None:
    shortest_support = timedelta(weeks=calibration.agencies.support_weeks[0])
    repeats = [r for r in referrals if r.re_referral]
    assert repeats
    for repeat in repeats:
        earlier = [r.at for r in referrals if r.child is repeat.child and r.at < repeat.at]
        assert earlier, repeat.number
        gap = repeat.at - earlier[-1]
        assert shortest_support <= gap <= timedelta(days=365), (repeat.number, gap)


@pytest.mark.parametrize("name", PERIODS)
def test_about_a_fifth_are_re_referrals_in_any_period_at_its_calibrated_volume(
    name: str, area: LocalArea, calibration: Calibration
) -> None:
    """None can come in a period's first weeks, so later referrals make the share up."""
    generator = ReferralGenerator(area, calibration, seed=5, today=TODAY)
    chosen = period(name)
    referrals = list(generator.stream(generator.schedule(chosen, generator.expected_count(chosen))))
    p, n = calibration.re_referral_share, len(referrals)
    assert abs(sum(r.re_referral for r in referrals) / n - p) <= tolerance(p, n)


def test_ages_are_weighted_to_school_age(
    first_referrals: list[GeneratedReferral], calibration: Calibration
) -> None:
    ages = Counter(r.age_years for r in first_referrals)
    assert min(ages) >= 0 and max(ages) <= 25
    school_age = sum(ages[a] for a in range(5, 17)) / len(first_referrals)
    assert school_age > 0.7
    assert ages[9] > ages[3] > ages[0] and ages[9] > ages[20]


def test_no_need_is_given_a_child_too_young_for_it(referrals: list[GeneratedReferral]) -> None:
    """SpLD and MLD under 5, autism under 2: as a secondary need no more than as the primary one."""
    assert any(r.age_years < 5 and len(r.need_codes) > 1 for r in referrals)
    for referral in referrals:
        for need in referral.need_codes:
            assert _age_fits(referral.age_years, need, referral.level), (referral.age_years, need)


def test_referrals_follow_the_school_terms(calibration: Calibration, area: LocalArea) -> None:
    generator = ReferralGenerator(area, calibration, seed=3, today=TODAY)
    year = period("year")
    arrivals = generator.schedule(year, SAMPLES)
    weights = {day: intensity(day, calibration.seasonality) for day in year.days}
    in_term = {day for day in year.days if any(term.in_school(day) for term in TERMS.values())}
    p = sum(weights[day] for day in in_term) / sum(weights.values())
    observed = sum(at.date() in in_term for at in arrivals) / len(arrivals)
    assert abs(observed - p) <= tolerance(p, len(arrivals))
    assert p > 0.85  # schools refer in term time
    christmas = intensity(TERMS["autumn"].end.replace(day=24), calibration.seasonality)
    before_christmas = intensity(TERMS["autumn"].end.replace(day=10), calibration.seasonality)
    assert christmas < before_christmas


def test_same_seed_same_referrals_other_seed_others(area: LocalArea, calibration: Calibration) -> None:
    first = [r.body for r in generate(area, calibration, seed=5, n=200)]
    again = [r.body for r in generate(area, calibration, seed=5, n=200)]
    other = [r.body for r in generate(area, calibration, seed=6, n=200)]
    assert first == again
    assert first != other


def test_every_referral_is_one_intake_accepts(referrals: list[GeneratedReferral]) -> None:
    for referral in referrals:
        request = ReferralRequest.model_validate(referral.body)
        assert request.need_codes[0] is referral.primary_need
        assert referral.setting.min_age <= referral.age_years <= referral.setting.max_age
