"""Routing throughput per process WITH database writes, against a real embedded SecantusDB.

The full `route_referral` path: catalogue snapshot check, continuity lookup, matching, and
one transaction holding the idempotency record, the decision and its outbox event. Beside
it, in the same run and on the same server: matching alone (no database), SecantusDB's
raw durable single-insert rate (the ratio is the figure that carries to other machines),
the decision path without the snapshot cache (reading and building the whole catalogue per
referral, as routing did before), and what a catalogue change costs the next referral.

    uv run --extra embedded python bench/routing.py [--referrals 300] [--repeats 3]

The script starts SecantusDB (`--sync-on-commit`, as `signpost run` does) on a free port in a
temporary directory and stops it at the end. Kafka is never contacted: the outbox relay is
not started, so the figures end at the commit. Figures are medians over the repeats.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
import uuid
from datetime import UTC, datetime

from signpost.routing.app import INDEXES
from signpost.routing.catalogue.models import PROVISIONS, Provision
from signpost.routing.catalogue.repository import ensure_version, to_document
from signpost.routing.catalogue.snapshot import CatalogueSnapshot
from signpost.routing.decisions.service import route_referral, track_capacity
from signpost.routing.matching import match_referral
from signpost.shared.events import Envelope, EventData, OfferAcceptedV1, ReferralSubmittedV1, new_event
from signpost.shared.logging import configure_logging
from signpost.shared.service import Runtime
from signpost.shared.settings import Settings
from synthetic import provisions, referral

from signpost.platform.benchkit import scratch_mongodb

TENANT = "E06000023"
UNUSED_KAFKA = "127.0.0.1:9"  # the broker object is built, never started


async def route_one(runtime: Runtime, child: ReferralSubmittedV1, snapshot: CatalogueSnapshot) -> float:
    """Route `child` as a new referral (a new decision every time); returns the seconds it took."""
    fresh = child.model_copy(update={"referral_id": uuid.uuid4().hex})
    envelope: Envelope[EventData] = new_event(fresh, source="/bench", tenant=TENANT)
    started = time.perf_counter()
    await route_referral(runtime=runtime, envelope=envelope, catalogue=snapshot)
    return time.perf_counter() - started


async def routed_beside_inserts(
    runtime: Runtime, referrals: list[ReferralSubmittedV1], snapshot: CatalogueSnapshot
) -> tuple[list[float], float]:
    """Seconds per referral routed, and raw inserts/s, taken in turns so both meet the same load."""
    raw = runtime.db[f"raw-{uuid.uuid4().hex[:8]}"]
    routed, inserting = [], 0.0
    for number, child in enumerate(referrals):
        started = time.perf_counter()
        await raw.insert_one({"_id": number, "at": datetime.now(UTC), "payload": "x" * 600})  # decision-sized
        inserting += time.perf_counter() - started
        routed.append(await route_one(runtime, child, snapshot))
    return routed, len(referrals) / inserting


async def load_catalogue(runtime: Runtime, catalogue: list[Provision]) -> None:
    await INDEXES.apply(runtime.db)
    await ensure_version(runtime.db)
    for start in range(0, len(catalogue), 1000):
        await runtime.db[PROVISIONS].insert_many([to_document(p) for p in catalogue[start : start + 1000]])


async def bench_size(
    settings: Settings, size: int, referrals: list[ReferralSubmittedV1], args: argparse.Namespace
) -> dict[str, float]:
    runtime = Runtime.build(
        settings.model_copy(update={"database_prefix": f"bench{size}x{uuid.uuid4().hex[:6]}"}), "routing"
    )
    runtime.enable_outbox()
    catalogue = provisions(size, random.Random(args.seed + size))
    await load_catalogue(runtime, catalogue)
    cached = CatalogueSnapshot()
    snapshot = await cached.current(runtime.db)
    figures: dict[str, list[float]] = {}
    for _ in range(args.repeats):
        started = time.perf_counter()
        for child in referrals:
            match_referral(child, snapshot)
        figures.setdefault("matching only/s", []).append(len(referrals) / (time.perf_counter() - started))
        routed, inserts = await routed_beside_inserts(runtime, referrals, cached)
        figures.setdefault("with writes/s", []).append(len(routed) / sum(routed))
        figures.setdefault("p50 ms", []).append(statistics.median(routed) * 1000)
        figures.setdefault("p99 ms", []).append(statistics.quantiles(routed, n=100)[98] * 1000)
        figures.setdefault("raw inserts/s", []).append(inserts)
        figures.setdefault("writes÷inserts", []).append(len(routed) / sum(routed) / inserts)
        uncached = [
            await route_one(runtime, child, CatalogueSnapshot()) for child in referrals[: args.uncached]
        ]
        figures.setdefault("uncached/s", []).append(len(uncached) / sum(uncached))
        # A place held on acceptance moves the catalogue version: the next referral patches its snapshot.
        target = next(p for p in catalogue if p.active and p.capacity and p.capacity.available)
        accepted = OfferAcceptedV1(
            referral_id=uuid.uuid4().hex,
            provision_id=target.id,
            organisation_id=target.organisation_id,
            at=datetime.now(UTC),
        )
        await track_capacity(
            runtime=runtime,
            envelope=new_event(accepted, source="/bench", tenant=TENANT),
        )
        t0 = time.perf_counter()
        await cached.current(runtime.db)
        figures.setdefault("patch ms", []).append((time.perf_counter() - t0) * 1000)
    await runtime.client.close()
    return {name: statistics.median(values) for name, values in figures.items()}


async def main_async(url: str, args: argparse.Namespace) -> None:
    settings = Settings(
        _env_file=None, mongodb_url=url, kafka_bootstrap=UNUSED_KAFKA, log_level="WARNING", log_format="json"
    )
    configure_logging(settings, service="routing")
    rng = random.Random(args.seed)
    referrals = [referral(rng, i) for i in range(args.referrals)]
    columns = [
        ("matching only/s", 0), ("with writes/s", 0), ("p50 ms", 2), ("p99 ms", 2), ("raw inserts/s", 0),
        ("writes÷inserts", 2), ("uncached/s", 2), ("patch ms", 1),
    ]  # fmt: skip
    print(f"{'provisions':>10} " + " ".join(f"{name:>15}" for name, _ in columns))
    for size in args.sizes:
        figures = await bench_size(settings, size, referrals, args)
        print(
            f"{size:>10} " + " ".join(f"{figures[name]:>15.{places}f}" for name, places in columns),
            flush=True,
        )
    print(
        "\nwith writes/s: the full route_referral path, sequential, snapshot cached; raw inserts/s:\n"
        "SecantusDB's durable single inserts, one between each two referrals so both meet the same load;\n"
        "writes÷inserts: their ratio per repeat; uncached/s: the route path reading and building the whole\n"
        "catalogue per referral; patch ms: the referral after a capacity change refreshing its snapshot\n"
        "(one version read, the changed provision read back, columns patched). Medians over repeats."
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--referrals", type=int, default=300)
    parser.add_argument(
        "--uncached", type=int, default=5, help="referrals routed without the cache, per repeat"
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000])
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    with scratch_mongodb() as server:
        asyncio.run(main_async(server.url, args))


if __name__ == "__main__":
    main()
