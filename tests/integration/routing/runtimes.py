"""Routing's database as the service leaves it at start-up, for tests that call its handlers directly."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from signpost.routing.app import INDEXES
from signpost.routing.catalogue.models import WHOLE_AREA, Capacity, Provision
from signpost.routing.catalogue.repository import ensure_version, seed_if_empty
from signpost.routing.decisions.service import DECISIONS
from signpost.shared.service import Runtime
from signpost.shared.settings import Settings
from signpost.shared.vocabulary import NeedCode, Sector

from tests.servers import MongoServer


def offline_settings(mongodb: MongoServer) -> Settings:
    """Databases of a test's own; a broker never contacted: nothing relays the outbox here."""
    run = uuid.uuid4().hex[:10]
    return Settings(
        _env_file=None,
        mongodb_url=mongodb.url,
        kafka_bootstrap="127.0.0.1:9",
        database_prefix=f"t{run}",
        topic_prefix=f"t{run}.",
    )


def service(pid: str, *needs: NeedCode, capacity: tuple[int, int] | None = None) -> Provision:
    """A provision for every locality and age, named by its id."""
    return Provision(
        id=pid,
        name=pid,
        organisation="org",
        organisation_id="org",
        sector=Sector.HEALTH,
        need_codes=list(needs),
        min_age=0,
        max_age=25,
        localities=[WHOLE_AREA],
        capacity=Capacity(available=capacity[0], maximum=capacity[1]) if capacity else None,
    )


@asynccontextmanager
async def routing_runtime(settings: Settings, catalogue: Iterable[Provision]) -> AsyncIterator[Runtime]:
    runtime = Runtime.build(settings, "routing")
    runtime.enable_outbox()  # transactions stage events for it; nothing relays them here
    await INDEXES.apply(runtime.db)
    await ensure_version(runtime.db)
    await seed_if_empty(runtime.db, catalogue)
    try:
        yield runtime
    finally:
        await runtime.client.close()


async def decided(runtime: Runtime, referral_id: str, *provision_ids: str) -> None:
    """A decision record offering these provisions, for tests that send an offer's later events
    without routing a submission first: routing skips an acceptance or start of an offer it never
    made. Only what capacity and waiting-time tracking read, beside the record's identity."""
    await runtime.db[DECISIONS].insert_one(
        {
            "_id": referral_id,
            "tenant": runtime.settings.tenant,
            "type": "uk.signpost.referral.routed.v1",
            "decided_at": datetime.now(UTC),
            "provision_ids": list(provision_ids),
            "offers": [{"provision_id": provision_id, "needs_met": []} for provision_id in provision_ids],
        }
    )
