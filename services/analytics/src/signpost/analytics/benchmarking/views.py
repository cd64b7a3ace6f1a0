"""Regional benchmarking: one measure side by side across every local area analytics hears from.

Aggregates only: each area is named, no child is; small numbers are suppressed as in the pulse,
for every area but an admin's own (suppression.protects), so an admin compares its area's full
figures with its neighbours' suppressed ones.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field
from signpost.analytics.pulse.measures import MEASURES, MeasureName
from signpost.analytics.pulse.models import PeriodOut
from signpost.analytics.pulse.reader import tenants
from signpost.analytics.pulse.suppression import (
    THRESHOLD,
    Figure,
    Notice,
    base_figure,
    count_figure,
    figure,
    hide_cell,
    notice,
    protects,
)
from signpost.analytics.pulse.views import AnalystDep, FactsDep, PeriodDep
from signpost.shared.service import RuntimeDep

router = APIRouter(prefix="/v1/benchmarking", tags=["benchmarking"])


class AreaFigure(BaseModel):
    tenant: str = Field(description="The local area, e.g. an ONS local authority code.")
    value: Figure
    base: Figure | None = Field(description="The rate's denominator or the mean's number of values.")
    submitted: Figure = Field(description="Referrals submitted in the period, for scale.")


class Benchmarking(BaseModel):
    measure: str
    description: str
    period: PeriodOut
    suppression_threshold: int | None = Field(
        description="Counts below this (and figures derived from them) are withheld: for every role below "
        "admin in every area, for an admin in every area but its own. Always set: suppression applies here "
        "to every caller."
    )
    suppression: Notice | None = Field(description="Says that suppression applies and why; always set.")
    areas: list[AreaFigure]


@router.get("", response_model=Benchmarking, summary="One measure for every local area, side by side")
async def get_benchmarking(
    runtime: RuntimeDep,
    active: FactsDep,
    principal: AnalystDep,
    period: PeriodDep,
    measure: Annotated[MeasureName, Query(description="Which measure (see /v1/pulse/measures).")],
) -> Benchmarking:
    chosen = MEASURES[measure.value]
    target, facts = active
    areas = []
    for tenant in await tenants(runtime.db, target):
        protect = protects(principal, tenant)  # an admin's own area in full, every other suppressed
        [totals] = facts.totals(tenant=tenant, periods=[period.span])
        # As the summary hides them, so one area's figures here add nothing to its own summary.
        hidden = hide_cell(totals)
        areas.append(
            AreaFigure(
                tenant=tenant,
                value=figure(chosen, totals, hidden=hidden, protect=protect),
                base=base_figure(chosen, totals, hidden=hidden, protect=protect),
                submitted=count_figure(
                    totals.get("submitted", 0), hidden=hidden.get("submitted"), protect=protect
                ),
            )
        )
    return Benchmarking(
        measure=chosen.name,
        description=chosen.description,
        period=PeriodOut(start=period.start, end=period.end),
        # Suppression applies here to every caller (to an admin, in every area but its own), so
        # every answer says so, whichever areas have numbers in this period.
        suppression_threshold=THRESHOLD,
        suppression=notice(protect=True),
        areas=areas,
    )
