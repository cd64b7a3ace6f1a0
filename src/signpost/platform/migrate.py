"""`signpost migrate`: what a deployment applies once before (or while) the services roll out.

Creates every topic that is missing, with its final partition count, the replication factor of
the cluster (SIGNPOST_TOPIC_REPLICATION_FACTOR) and its retention (`Topics.specs`, the same a
service creates at start-up), and applies every service's MongoDB indexes, having claimed each
database for SIGNPOST_TENANT as a service does (`signpost.shared.area`). Both steps are
idempotent, so the job can run on every release. Services still apply their own indexes at
start-up; this makes a rollout not depend on it (index builds on a large collection take a
while, and happen once, here). Last, it drops the analytics collections earlier releases kept
and nothing reads any more (`OBSOLETE_KINDS` in analytics' projection sets), and writes the
inbox keys of referrals stored before intake kept them or left stale by a rolling upgrade
(`offer_keys`), both idempotent too. `signpost run` applies `migrate_at_start` as it starts.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable

from fastapi import FastAPI
from signpost.analytics.projections.sets import drop_obsolete
from signpost.intake.offers.keys import backfill_offer_keys, write_missing_offer_keys
from signpost.shared.area import claim_database
from signpost.shared.kafka import ensure_topics
from signpost.shared.logging import configure_logging, get_logger
from signpost.shared.mongo import Database, IndexPlan, create_client
from signpost.shared.offsets import carry_over_offsets
from signpost.shared.settings import SERVICE_NAMES, ServiceName, Settings
from signpost.shared.topics import Topics

from signpost.platform.supervisor import SERVICE_APPS

log = get_logger(__name__)


def index_plan(settings: Settings, service: ServiceName) -> tuple[IndexPlan, FastAPI]:
    """The indexes `service` declares, read from its app (built without I/O)."""
    module, name = SERVICE_APPS[service].split(":")
    create_app: Callable[[Settings], FastAPI] = getattr(importlib.import_module(module), name)
    app = create_app(settings)
    plan: IndexPlan = app.state.indexes
    return plan, app


async def migrate(settings: Settings) -> None:
    """What a deployment applies on each release, checking every referral's inbox keys against its
    offers: an older release's pods changing offers during a rolling upgrade leave them stale."""
    await _migrate(settings, write_offer_keys=backfill_offer_keys)


async def migrate_at_start(settings: Settings) -> None:
    """`migrate` as `signpost run` applies it on every start: no older release runs beside it to leave
    inbox keys stale, so only referrals stored without keys are read, not every referral's offers."""
    await _migrate(settings, write_offer_keys=write_missing_offer_keys)


async def _migrate(settings: Settings, *, write_offer_keys: Callable[[Database], Awaitable[int]]) -> None:
    # Before the apps it builds configure logging as theirs (the first configuration stays).
    configure_logging(settings, service="migrate")
    topics = Topics.from_settings(settings)
    await ensure_topics(settings)
    log.info("topics ready", topics=[spec.name for spec in topics.specs()])
    for service in SERVICE_NAMES:
        plan, app = index_plan(settings, service)
        runtime = app.state.runtime
        try:
            # As a service does as it starts: raises DatabaseOfAnotherArea for another area's database.
            await claim_database(runtime.db, tenant=settings.tenant)
            await plan.apply(runtime.db)
        finally:
            await runtime.client.close()
        log.info("indexes applied", service=service, database=settings.database_name(service))
    for service in SERVICE_NAMES:
        # Consumer groups are named with the tenant since; each service does the same as it starts.
        carried = await carry_over_offsets(settings, service)
        log.info("consumer groups ready", service=service, offsets_carried_over=carried)
    client = create_client(settings)
    try:
        dropped = await drop_obsolete(client[settings.database_name("analytics")])
        keyed = await write_offer_keys(client[settings.database_name("intake")])
    finally:
        await client.close()
    log.info("obsolete analytics collections dropped", collections=dropped)
    log.info("offer keys written", referrals=keyed)
