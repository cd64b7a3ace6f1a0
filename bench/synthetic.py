"""Synthetic Local Offer catalogues and referrals for the benchmarks: the national mix of needs,
so index buckets are realistically uneven. Seeded: the same seed gives the same data."""

from __future__ import annotations

import random
from datetime import UTC, datetime

from signpost.routing.catalogue.models import WHOLE_AREA, Capacity, Provision
from signpost.shared.events import ReferralSubmittedV1
from signpost.shared.vocabulary import LevelOfNeed, NeedCode, NeedsDomain, Sector, broad_areas

SIZES = (100, 1_000, 10_000)
LOCALITIES = [f"locality-{i}" for i in range(12)]
# Roughly the national mix of primary needs (school census).
NEED_WEIGHTS = {
    NeedCode.ASD: 31.5, NeedCode.SLCN: 21.3, NeedCode.SEMH: 20.7, NeedCode.MLD: 10.6, NeedCode.SLD: 3.9,
    NeedCode.PD: 3.9, NeedCode.SPLD: 2.4, NeedCode.HI: 1.4, NeedCode.PMLD: 1.3, NeedCode.OTH: 1.2,
    NeedCode.VI: 0.8, NeedCode.MSI: 0.3,
}  # fmt: skip


def needs(rng: random.Random, most: int) -> list[NeedCode]:
    picked = rng.choices(list(NEED_WEIGHTS), weights=list(NEED_WEIGHTS.values()), k=rng.randint(1, most))
    return list(dict.fromkeys(picked))


def provisions(size: int, rng: random.Random) -> list[Provision]:
    made = []
    for i in range(size):
        low = rng.randint(0, 14)
        maximum = rng.randint(5, 60)
        made.append(
            Provision(
                id=f"prov-{i:05d}",
                name=f"Provision {i}",
                organisation=f"Organisation {i % 97}",
                organisation_id=f"org-{i % 97}",
                sector=rng.choice(list(Sector)),
                need_codes=needs(rng, 3),
                min_age=low,
                max_age=min(25, low + rng.randint(3, 18)),
                localities=[WHOLE_AREA] if rng.random() < 0.3 else rng.sample(LOCALITIES, rng.randint(1, 3)),
                levels_of_need=rng.sample(list(LevelOfNeed), rng.randint(1, 4)),
                capacity=Capacity(available=rng.randint(0, maximum), maximum=maximum),
                waiting_weeks=round(rng.uniform(0, 26), 1),
                active=rng.random() > 0.05,
            )
        )
    return made


def referral(rng: random.Random, i: int) -> ReferralSubmittedV1:
    codes = needs(rng, 3)
    return ReferralSubmittedV1(
        referral_id=f"r-{i}",
        age_years=rng.randint(0, 18),
        locality=rng.choice(LOCALITIES),
        setting_id="URN1",
        need_codes=codes,
        broad_areas=broad_areas(codes),
        needs_profile={domain: rng.randint(0, 4) for domain in NeedsDomain},
        level_of_need=rng.choice([LevelOfNeed.EARLY_HELP, LevelOfNeed.TARGETED, LevelOfNeed.SPECIALIST]),
        sharing_scope=rng.sample(list(Sector), rng.randint(2, 4)),
        submitted_at=datetime.now(UTC),
        child_ref=f"child-{i % 500}",  # some children come back: continuity is looked up
    )
