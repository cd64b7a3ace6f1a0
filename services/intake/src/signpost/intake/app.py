"""Intake: referrals in, the closed loop with agencies, events out through the outbox."""

from __future__ import annotations

from functools import partial

from fastapi import FastAPI
from pymongo import ASCENDING, DESCENDING, IndexModel
from signpost.intake.audit.service import AUDIT, AUDIT_INDEXES
from signpost.intake.audit.views import router as audit_router
from signpost.intake.consumer import on_referral_event, on_referral_events
from signpost.intake.errors import ERROR_HANDLERS
from signpost.intake.offers.views import router as offers_router
from signpost.intake.reconciliation.service import Reconciler
from signpost.intake.referrals.models import REFERRALS
from signpost.intake.referrals.service import LegacyKeyLookup, Submissions
from signpost.intake.referrals.views import router as referrals_router
from signpost.intake.retention import schedule_retention
from signpost.intake.subscriptions.dispatcher import WebhookDispatcher
from signpost.intake.subscriptions.models import DELIVERIES, SUBSCRIPTIONS
from signpost.intake.subscriptions.service import (
    DELIVERY_INDEXES,
    RETIRED_DELIVERY_INDEXES,
    SUBSCRIPTION_INDEXES,
)
from signpost.intake.subscriptions.views import router as subscriptions_router
from signpost.shared.mongo import IndexPlan
from signpost.shared.service import Runtime, create_service_app
from signpost.shared.settings import Settings, get_settings

INDEXES = IndexPlan(
    {
        REFERRALS: [
            # Practitioners' lists: their organisation's referrals, newest first (ids are UUIDv7).
            IndexModel([("tenant", ASCENDING), ("organisation", ASCENDING), ("_id", DESCENDING)]),
            # Agencies' lists: referrals offered to them.
            IndexModel([("tenant", ASCENDING), ("offers.organisation_id", ASCENDING), ("_id", DESCENDING)]),
            # Their inbox by offer status (offers/keys.py; multikey: one key per offer).
            IndexModel([("tenant", ASCENDING), ("offer_keys", ASCENDING), ("_id", DESCENDING)]),
            IndexModel([("tenant", ASCENDING), ("status", ASCENDING), ("submitted_at", DESCENDING)]),
            # An admin's list filtered by setting, locality or need (multikey: a referral's few codes).
            # Each index costs every insert, so only these filters have one.
            IndexModel([("tenant", ASCENDING), ("setting_id", ASCENDING), ("_id", DESCENDING)]),
            IndexModel([("tenant", ASCENDING), ("locality", ASCENDING), ("_id", DESCENDING)]),
            IndexModel([("tenant", ASCENDING), ("need_codes", ASCENDING), ("_id", DESCENDING)]),
        ],
        AUDIT: AUDIT_INDEXES,
        SUBSCRIPTIONS: SUBSCRIPTION_INDEXES,
        DELIVERIES: DELIVERY_INDEXES,
    },
    retired={DELIVERIES: RETIRED_DELIVERY_INDEXES},
)


def create_app(settings: Settings | None = None) -> FastAPI:
    runtime = Runtime.build(settings or get_settings(), "intake")
    runtime.enable_outbox()
    dispatcher = WebhookDispatcher(runtime)
    runtime.background.append(dispatcher.run)
    runtime.background.append(Reconciler(runtime).run)
    legacy_keys = LegacyKeyLookup()
    schedule_retention(runtime, legacy_keys=legacy_keys)
    runtime.consume_events(
        partial(on_referral_event, dispatcher=dispatcher),
        batch_handler=partial(on_referral_events, dispatcher=dispatcher),
    )
    app = create_service_app(
        runtime,
        title="Signpost intake",
        description=(
            "Practitioners submit early-help referrals for children with SEND and follow them; partner "
            "agencies accept, decline, start and complete the offers made to them. Authenticate with an "
            "OAuth2 bearer JWT (`Authorization: Bearer …`) whose `role`, `org` and `tenant` claims say who you are."
        ),
        routers=[referrals_router, offers_router, subscriptions_router, audit_router],
        indexes=INDEXES,
        error_handlers=ERROR_HANDLERS,
        on_startup=lambda runtime: legacy_keys.refresh(runtime.db),
    )
    app.state.submissions = Submissions(runtime, legacy_keys=legacy_keys)
    return app
