"""Analytics: folds every event into the pulse projections and serves the pulse API, the ops
view of the streams, and the dashboard pages that read both."""

from __future__ import annotations

from fastapi import FastAPI
from signpost.analytics.benchmarking.views import router as benchmarking_router
from signpost.analytics.dashboard.views import router as dashboard_router
from signpost.analytics.ops.sampler import OpsSampler
from signpost.analytics.ops.views import router as ops_router
from signpost.analytics.projections.consumer import run_projection_consumer
from signpost.analytics.projections.follower import FactsFollower
from signpost.analytics.projections.sets import create_indexes, read_pointer
from signpost.analytics.pulse.views import router as pulse_router
from signpost.analytics.register.views import router as register_router
from signpost.shared.mongo import IndexPlan
from signpost.shared.service import Runtime, create_service_app
from signpost.shared.settings import Settings, get_settings


async def _prepare(runtime: Runtime) -> None:
    pointer = await read_pointer(runtime.db)
    for target in pointer.targets():
        await create_indexes(runtime.db, target)


def create_app(settings: Settings | None = None) -> FastAPI:
    runtime = Runtime.build(settings or get_settings(), "analytics")
    runtime.enable_outbox()  # the settings register's changes
    facts = FactsFollower(
        runtime.db,
        backoff_initial_s=runtime.settings.consumer_backoff_initial_s,
        backoff_max_s=runtime.settings.consumer_backoff_max_s,
    )
    runtime.background.append(facts.run)
    runtime.readiness["projections"] = facts.readiness
    runtime.background.append(lambda: run_projection_consumer(runtime, facts))
    runtime.consumes_events = True  # its own batch consumer, in the analytics group: /metrics reports its lag
    sampler = OpsSampler(runtime.settings)
    runtime.background.append(sampler.run)
    app = create_service_app(
        runtime,
        title="Signpost analytics",
        description="The pulse check on demand, escalation, waiting and what works across the local area, "
        "with small numbers suppressed; regional benchmarking; the settings register; the ops view of "
        "the streams; and the dashboard (`/dashboard/`) that shows them.",
        routers=[pulse_router, benchmarking_router, register_router, ops_router, dashboard_router],
        tolerant_routers=[dashboard_router],  # its pages' scripts read the view from the URL
        # The projection collections are named by the active projection set; see _prepare.
        indexes=IndexPlan(),
        on_startup=_prepare,
    )
    app.state.ops_sampler = sampler
    app.state.facts = facts
    return app
