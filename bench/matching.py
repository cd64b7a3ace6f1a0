"""Matching speed: p50/p99 per referral against catalogues of 100, 1,000 and 10,000 provisions,
and referrals/s per process excluding database writes.

    uv run python bench/matching.py [--referrals 2000] [--seed 7]

Targets (issue 4): p99 < 2 ms at 10,000 provisions; >= 2,000 referrals/s excluding writes.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from datetime import UTC, datetime

from signpost.routing.catalogue.models import WHOLE_AREA, Capacity, Provision
from signpost.routing.matching import Catalogue, match_referral
from signpost.shared.events import ReferralSubmittedV1
from signpost.shared.vocabulary import LevelOfNeed, NeedCode, NeedsDomain, Sector, broad_areas

LOCALITIES = [f"locality-{i}" for i in range(12)]
# Roughly the national mix of primary needs, so index buckets are realistically uneven.
NEED_WEIGHTS = {
    NeedCode.ASD: 31.5, NeedCode.SLCN: 21.3, NeedCode.SEMH: 20.7, NeedCode.MLD: 10.6, NeedCode.SLD: 3.9,
    NeedCode.PD: 3.9, NeedCode.SPLD: 2.4, NeedCode.HI: 1.4, NeedCode.PMLD: 1.3, NeedCode.OTH: 1.2,
    NeedCode.VI: 0.8, NeedCode.MSI: 0.3,
}  # fmt: skip


def needs(rng: random.Random, most: int) -> list[NeedCode]:
    picked = rng.choices(list(NEED_WEIGHTS), weights=list(NEED_WEIGHTS.values()), k=rng.randint(1, most))
    return list(dict.fromkeys(picked))


def catalogue(size: int, rng: random.Random) -> Catalogue:
    provisions = []
    for i in range(size):
        low = rng.randint(0, 14)
        maximum = rng.randint(5, 60)
        provisions.append(
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
    return Catalogue(provisions)


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
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--referrals", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    referrals = [referral(rng, i) for i in range(args.referrals)]
    print(f"{'provisions':>10} {'p50 ms':>8} {'p99 ms':>8} {'referrals/s':>12} {'offers/referral':>16}")
    for size in (100, 1_000, 10_000):
        snapshot = catalogue(size, rng)
        for child in referrals[:50]:  # warm up
            match_referral(child, snapshot)
        timings, offers = [], 0
        started = time.perf_counter()
        for child in referrals:
            t0 = time.perf_counter()
            offers += len(match_referral(child, snapshot).offers)
            timings.append((time.perf_counter() - t0) * 1000)
        elapsed = time.perf_counter() - started
        p99 = statistics.quantiles(timings, n=100)[98]
        print(
            f"{size:>10} {statistics.median(timings):>8.3f} {p99:>8.3f} "
            f"{len(referrals) / elapsed:>12.0f} {offers / len(referrals):>16.2f}"
        )


if __name__ == "__main__":
    main()
