"""Routing: matches each submitted referral to Local Offer provision and announces the decision."""

from __future__ import annotations

from functools import partial

from fastapi import FastAPI
from pymongo import ASCENDING, IndexModel
from signpost.routing.catalogue.models import PROVISIONS
from signpost.routing.catalogue.repository import CATALOGUE_VERSION_INDEX, ensure_version, seed_if_empty
from signpost.routing.catalogue.seed import STARTER_CATALOGUE
from signpost.routing.catalogue.snapshot import CatalogueSnapshot
from signpost.routing.catalogue.views import router as catalogue_router
from signpost.routing.decisions.service import DECISIONS, RESERVATIONS, on_referral_event, on_referral_events
from signpost.routing.decisions.views import router as decisions_router
from signpost.routing.decisions.waiting import WAITS, WAITS_INDEXES
from signpost.routing.oruk.models import ORUK_DETAILS
from signpost.routing.oruk.taxonomy import load_taxonomy_map
from signpost.routing.oruk.views import IMPORT_PATH, feed_router, import_router
from signpost.shared.mongo import IndexPlan
from signpost.shared.service import Runtime, create_service_app
from signpost.shared.settings import Settings, get_settings

INDEXES = IndexPlan(
    {
        PROVISIONS: [IndexModel([("active", ASCENDING), ("need_codes", ASCENDING)]), CATALOGUE_VERSION_INDEX],
        DECISIONS: [IndexModel([("child_ref", ASCENDING)])],  # continuity: what served this child before
        RESERVATIONS: [IndexModel([("referral_id", ASCENDING)])],
        WAITS: WAITS_INDEXES,
        ORUK_DETAILS: [
            IndexModel([("term_ids", ASCENDING)]),
            IndexModel([("organization.id", ASCENDING)]),
            IndexModel([("organization.source_id", ASCENDING)]),
        ],
    },
    # Decisions by time: nothing ever read it, and every decision written paid for it.
    retired={DECISIONS: ["tenant_1_decided_at_1"]},
)


async def _seed_catalogue(runtime: Runtime) -> None:
    await ensure_version(runtime.db)
    await seed_if_empty(runtime.db, STARTER_CATALOGUE)


def create_app(settings: Settings | None = None) -> FastAPI:
    runtime = Runtime.build(settings or get_settings(), "routing")
    load_taxonomy_map(runtime.settings.oruk_taxonomy_map)  # a bad map stops start-up, not the first import
    runtime.enable_outbox()

    catalogue = CatalogueSnapshot()
    runtime.consume_events(
        partial(on_referral_event, catalogue=catalogue),
        batch_handler=partial(on_referral_events, catalogue=catalogue),
    )
    return create_service_app(
        runtime,
        title="Signpost routing",
        description="Matches each child's needs to Local Offer provision across education, health and social care.",
        routers=[catalogue_router, decisions_router, import_router, feed_router],
        tolerant_routers=[feed_router],  # ORUK clients may send any of the standard's parameters
        indexes=INDEXES,
        on_startup=_seed_catalogue,
        body_limits={IMPORT_PATH: runtime.settings.max_import_bytes},
    )
