"""What one reconciliation round costs the embedded SecantusDB, and everyone else on it, when
nothing is due: the usual round, every minute (`SIGNPOST_RECONCILE_INTERVAL_S`), in intake.

    uv run --extra embedded python bench/reconcile_round.py                    # 75,000 referrals
    uv run --extra embedded python bench/reconcile_round.py --referrals 20000

It fills intake's referrals (with intake's indexes) with decided referrals and a few still
undecided past `SIGNPOST_RECONCILE_AFTER_S`, none due (each waiting out its backoff or given
up on), then times a round two ways while another client inserts into another database: the
round intake runs (`reconcile_once` and the stuck count, reading the undecided referrals from
the (tenant, status, submitted_at) index), and the two queries the round sent before
2026-12-07 (the backoff and given-up conditions beside the index's fields, which SecantusDB
answers by reading every referral). The inserts' latency shows what the rest of the platform
waits meanwhile.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from retention_pass import pass_rows  # bench/retention_pass.py, beside this script
from signpost.intake.app import INDEXES
from signpost.intake.reconciliation.service import count_stuck, reconcile_once
from signpost.intake.referrals.models import REFERRALS
from signpost.shared.events import event_id_at
from signpost.shared.mongo import Database, Document
from signpost.shared.service import Runtime
from signpost.shared.settings import Settings

from signpost.platform.benchkit import scratch_mongodb

FILL_CHUNK = 5_000
TENANT = "E06000023"
UNDECIDED = 15  # ten waiting out their backoff, five given up on


def referral(n: int, *, now: datetime, decided: bool) -> Document:
    """About a stored referral's indexed fields and size (2 KB of timeline and details)."""
    submitted_at = now - timedelta(hours=1, seconds=n)
    document: Document = {
        "_id": event_id_at(submitted_at.timestamp()),
        "tenant": TENANT,
        "organisation": f"school-{n % 40}",
        "status": "routed" if decided else "submitted",
        "submitted_at": submitted_at,
        "setting_id": f"setting-{n % 90}",
        "locality": f"locality-{n % 12}",
        "need_codes": ["ASD", "SLCN"],
        "offers": [{"organisation_id": "la-inclusion-service", "provision_id": "autism-outreach"}]
        if decided
        else [],
        "offer_keys": ["la-inclusion-service|routed"] if decided else [],
        "timeline": [{"at": submitted_at, "type": "uk.signpost.referral.submitted.v1", "note": "x" * 1500}],
        "submitted_event_id": f"event-{n}",
    }
    if not decided:
        document["reconciliations"] = 1 if n % 3 else 10
        if n % 3:
            document["next_reconcile_at"] = now + timedelta(minutes=10)
        else:
            document["reconciliation_given_up_at"] = now - timedelta(days=1)
    return document


async def fill(db: Database, referrals: int, now: datetime) -> None:
    await INDEXES.apply(db)
    undecided_every = max(1, referrals // UNDECIDED)
    for first in range(0, referrals, FILL_CHUNK):
        await db[REFERRALS].insert_many(
            [
                referral(n, now=now, decided=n % undecided_every != 0)
                for n in range(first, min(referrals, first + FILL_CHUNK))
            ]
        )


def earlier_round(db: Database, *, now: datetime, after_s: float) -> Callable[[], Awaitable[int]]:
    """The round's two queries as they were before 2026-12-07."""
    due = {
        "tenant": TENANT,
        "status": "submitted",
        "submitted_at": {"$lte": now - timedelta(seconds=after_s)},
        "$or": [{"next_reconcile_at": None}, {"next_reconcile_at": {"$lte": now}}],
        "reconciliation_given_up_at": None,
    }
    stuck = {"tenant": TENANT, "status": "submitted", "reconciliation_given_up_at": {"$ne": None}}

    async def round_() -> int:
        found = await db[REFERRALS].find(due, {"_id": 1}).sort("submitted_at", 1).limit(500).to_list()
        await db[REFERRALS].count_documents(stuck)
        return len(found)

    return round_


async def measure(referrals: int) -> list[str]:
    now = datetime.now(UTC)
    with scratch_mongodb() as server:
        settings = Settings(
            _env_file=None, mongodb_url=server.url, kafka_bootstrap="127.0.0.1:9", tenant=TENANT
        )
        runtime = Runtime.build(settings, "intake")
        try:
            await fill(runtime.db, referrals, now)

            async def current_round() -> int:
                claimed = await reconcile_once(runtime=runtime, now=now)
                await count_stuck(runtime=runtime, now=now)
                return claimed

            ways: list[tuple[str, Callable[[], Awaitable[int]]]] = [
                ("undecided referrals by the index (reconcile_once, count_stuck)", current_round),
                (
                    "conditions beside the index's fields (before)",
                    earlier_round(runtime.db, now=now, after_s=settings.reconcile_after_s),
                ),
            ]
            rows = [
                f"reconciliation round over {referrals:,} referrals, {UNDECIDED} undecided, none due",
                *await pass_rows(runtime.client, server.process.pid, ways),
            ]
            return rows
        finally:
            await runtime.client.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--referrals", type=int, default=75_000, help="referrals stored (default 75,000)")
    args = parser.parse_args()
    print("\n".join(asyncio.run(measure(args.referrals))))


if __name__ == "__main__":
    main()
