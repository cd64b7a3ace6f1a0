"""A fixed area and a few thousand generated referrals, shared by the demo's unit tests."""

from __future__ import annotations

import math
from datetime import date
from statistics import NormalDist

import pytest

from signpost.platform.demo.area import LocalArea, build_area
from signpost.platform.demo.calendar import period
from signpost.platform.demo.calibration import Calibration, load_calibration
from signpost.platform.demo.referrals import GeneratedReferral, ReferralGenerator

SAMPLES = 4000
TODAY = date(2026, 11, 24)
# Every share in these tests is checked at once: a family-wise false alarm rate of 1 in 1,000
# (Bonferroni over the checks in one test) keeps a correct generator green for any seed.
FAMILY_WISE_ALPHA = 0.001


def tolerance(p: float, n: int, *, checks: int = 1) -> float:
    """How far an observed share of n independent draws may stray from p: z binomial standard errors."""
    z = NormalDist().inv_cdf(1 - FAMILY_WISE_ALPHA / (2 * checks))
    return z * math.sqrt(p * (1 - p) / n)


@pytest.fixture(scope="session")
def area() -> LocalArea:
    return build_area(2025)


@pytest.fixture(scope="session")
def calibration() -> Calibration:
    return load_calibration()


def generate(
    area: LocalArea, calibration: Calibration, seed: int, n: int = SAMPLES
) -> list[GeneratedReferral]:
    generator = ReferralGenerator(area, calibration, seed=seed, today=TODAY)
    return list(generator.stream(generator.schedule(period("year"), n)))


@pytest.fixture(scope="session")
def referrals(area: LocalArea, calibration: Calibration) -> list[GeneratedReferral]:
    return generate(area, calibration, seed=11)


@pytest.fixture(scope="session")
def first_referrals(referrals: list[GeneratedReferral]) -> list[GeneratedReferral]:
    """Children referred for the first time: independent draws (a re-referral repeats a child)."""
    return [r for r in referrals if not r.re_referral]
