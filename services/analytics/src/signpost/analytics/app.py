"""Analytics: folds every referral event into the pulse projection and serves it, the ops
view of the streams, and the dashboard pages that read both."""

from __future__ import annotations

from fastapi import FastAPI
from signpost.analytics.dashboard.views import router as dashboard_router
from signpost.analytics.ops.sampler import OpsSampler
from signpost.analytics.ops.views import router as ops_router
from signpost.analytics.pulse.projection import fold_event
from signpost.analytics.pulse.views import router as pulse_router
from signpost.shared.mongo import IndexPlan
from signpost.shared.service import Runtime, create_service_app
from signpost.shared.settings import Settings, get_settings


def create_app(settings: Settings | None = None) -> FastAPI:
    runtime = Runtime.build(settings or get_settings(), "analytics")
    runtime.consume_events(fold_event)
    sampler = OpsSampler(runtime.settings)
    runtime.background.append(sampler.run)
    app = create_service_app(
        runtime,
        title="Signpost analytics",
        description="The pulse check on demand and escalation across the local area, the ops view of "
        "the streams, and the dashboard (`/dashboard/`) that shows both.",
        routers=[pulse_router, ops_router, dashboard_router],
        # The pulse is keyed by tenant (_id); processed-event ids are _id too.
        indexes=IndexPlan(),
    )
    app.state.ops_sampler = sampler
    return app
