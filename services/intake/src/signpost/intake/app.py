"""Intake: referrals in, routing decisions back, events out through the outbox."""

from __future__ import annotations

from fastapi import FastAPI
from pymongo import ASCENDING, DESCENDING, IndexModel
from signpost.intake.referrals.models import REFERRALS
from signpost.intake.referrals.service import apply_routing_decision
from signpost.intake.referrals.views import router as referrals_router
from signpost.shared.mongo import IndexPlan
from signpost.shared.outbox import OUTBOX, OUTBOX_INDEXES
from signpost.shared.service import Runtime, create_service_app
from signpost.shared.settings import Settings, get_settings

INDEXES = IndexPlan(
    {
        REFERRALS: [IndexModel([("tenant", ASCENDING), ("status", ASCENDING), ("submitted_at", DESCENDING)])],
        OUTBOX: OUTBOX_INDEXES,
    }
)


def create_app(settings: Settings | None = None) -> FastAPI:
    runtime = Runtime.build(settings or get_settings(), "intake")
    runtime.enable_outbox()

    runtime.consume_events(apply_routing_decision)
    return create_service_app(
        runtime,
        title="Signpost intake",
        description="Practitioners submit early-help referrals for children with SEND and follow them.",
        routers=[referrals_router],
        indexes=INDEXES,
    )
