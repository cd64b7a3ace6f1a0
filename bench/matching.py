"""Matching speed: p50/p99 per referral against catalogues of 100, 1,000 and 10,000 provisions,
and referrals/s per process excluding database writes.

    uv run python bench/matching.py [--referrals 2000] [--repeats 5] [--seed 7]

Targets (issue 4): p99 < 2 ms at 10,000 provisions; >= 2,000 referrals/s excluding writes.
Each figure is the median over the repeats (the machine is shared: single runs are noisy).
`cpu p99` counts only this process's CPU time, so it is not inflated when another process
takes the core mid-referral; `p99` is wall-clock time.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

from signpost.routing.matching import Catalogue, match_referral
from signpost.shared.events import ReferralSubmittedV1
from synthetic import SIZES, provisions, referral


def run(snapshot: Catalogue, referrals: list[ReferralSubmittedV1], *, warm_up: int = 50) -> dict[str, float]:
    for child in referrals[:warm_up]:
        match_referral(child, snapshot)
    wall, cpu, offers = [], [], 0
    started = time.perf_counter()
    for child in referrals:
        t0, c0 = time.perf_counter(), time.process_time()
        offers += len(match_referral(child, snapshot).offers)
        wall.append((time.perf_counter() - t0) * 1000)
        cpu.append((time.process_time() - c0) * 1000)
    elapsed = time.perf_counter() - started
    return {
        "p50 ms": statistics.median(wall),
        "p99 ms": statistics.quantiles(wall, n=100)[98],
        "cpu p99 ms": statistics.quantiles(cpu, n=100)[98],
        "referrals/s": len(referrals) / elapsed,
        "offers/referral": offers / len(referrals),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--referrals", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    referrals = [referral(rng, i) for i in range(args.referrals)]
    columns = ["p50 ms", "p99 ms", "cpu p99 ms", "referrals/s", "offers/referral"]
    print(
        f"{'provisions':>10} "
        + " ".join(f"{c:>15}" for c in columns)
        + "   (median of each over repeats; range of p99)"
    )
    for size in SIZES:
        snapshot = Catalogue(provisions(size, rng))
        runs = [run(snapshot, referrals) for _ in range(args.repeats)]
        medians = {c: statistics.median(r[c] for r in runs) for c in columns}
        p99s = [r["p99 ms"] for r in runs]
        print(
            f"{size:>10} "
            + " ".join(f"{medians[c]:>15.{0 if c == 'referrals/s' else 3}f}" for c in columns)
            + f"   ({min(p99s):.3f}-{max(p99s):.3f})"
        )


if __name__ == "__main__":
    main()
