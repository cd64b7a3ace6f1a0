"""The pulse check over HTTP: summary, drill-down, trends, what works, unmet demand, waiting, declines."""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from signpost.analytics.projections.follower import FactsFollower, IndexLoading
from signpost.analytics.projections.index import DIMENSIONS, FactIndex
from signpost.analytics.projections.sets import ProjectionSet, read_pointer
from signpost.analytics.pulse import service
from signpost.analytics.pulse.measures import MEASURES, MeasureName
from signpost.analytics.pulse.models import (
    Breakdown,
    Declines,
    LegacyPulse,
    Summary,
    Trend,
    UnmetDemand,
    Waiting,
    WhatWorks,
)
from signpost.analytics.pulse.reader import Period
from signpost.analytics.pulse.service import Filters, QueryProblem
from signpost.analytics.pulse.suppression import protects
from signpost.shared.auth.dependencies import require_roles
from signpost.shared.auth.principal import Principal, Role
from signpost.shared.service import RuntimeDep, refused
from signpost.shared.text import in_words
from signpost.shared.vocabulary import NeedCode, Sector

router = APIRouter(prefix="/v1/pulse", tags=["pulse"])
T = TypeVar("T")

DEFAULT_PERIOD_DAYS = 28
MAX_PERIOD_DAYS = 5 * 366
# Referrals are recent; the bounds also keep "the previous period" a representable date.
EARLIEST, LATEST = date(2000, 1, 1), date(2099, 12, 31)
# What a free-form filter's value may be: every locality and setting id intake takes (a ward may be
# "Lockleaze/Frome Vale") and provision ids; said in words when refused. Need codes and sectors are
# the shared vocabulary's, so a typo ("asd", "police") is refused listing them, not read as no demand.
KEY = r"[A-Za-z0-9 _.:'&()/-]{1,100}"
KEY_RULE = "1 to 100 letters, digits, spaces and . _ : ' & ( ) / -"


Key = Annotated[str | None, in_words(KEY, KEY_RULE)]


def key_query(description: str) -> Any:
    """A filter's query parameter, its rule in the OpenAPI schema as a pattern."""
    return Query(description=f"{description} ({KEY_RULE}).", json_schema_extra={"pattern": f"^{KEY}$"})


AnalystDep = Annotated[Principal, Depends(require_roles(Role.ANALYST, Role.OPS, Role.ADMIN))]
GroupBy = StrEnum("GroupBy", {name: name for name in DIMENSIONS})  # type: ignore[misc]
# How long a query waits for a projection index still loading before it is told to come back.
INDEX_WAIT_S = 5.0


class Interval(StrEnum):
    DAY = "day"
    WEEK = "week"
    MONTH = "month"


class OfferGroup(StrEnum):
    PROVISION = "provision"
    SECTOR = "sector"


def period_of(
    start: Annotated[
        date | None,
        Query(alias="from", description="First day (UTC), included; default 27 days before `to`."),
    ] = None,
    end: Annotated[
        date | None, Query(alias="to", description="Last day (UTC), included; default today.")
    ] = None,
) -> Period:
    end = end or datetime.now(UTC).date()
    if not EARLIEST <= end <= LATEST:  # before the default `from` is worked out: 0001-01-01 has no day before
        raise refused(f"{end} is outside {EARLIEST} to {LATEST}", "query.to")
    start = start or end - timedelta(days=DEFAULT_PERIOD_DAYS - 1)
    if not EARLIEST <= start <= LATEST:
        raise refused(f"{start} is outside {EARLIEST} to {LATEST}", "query.from")
    if start > end:
        raise refused(f"{start} is after `to` ({end})", "query.from")
    if (end - start).days >= MAX_PERIOD_DAYS:
        raise refused(f"a period is at most {MAX_PERIOD_DAYS} days", "query.to")
    return Period(start, end)


PeriodDep = Annotated[Period, Depends(period_of)]
AREA = r"^[A-Za-z0-9_-]{1,32}$"
OtherArea = Annotated[
    str | None,
    in_words(AREA, "an area code: 1 to 32 letters, digits, _ and -"),
    Query(
        description="Admins only: another local area's numbers, small numbers suppressed.",
        json_schema_extra={"pattern": AREA},
    ),
]


async def active_facts(request: Request, runtime: RuntimeDep) -> tuple[ProjectionSet, FactIndex]:
    """The active projection set and this process's index of its facts."""
    follower: FactsFollower = request.app.state.facts
    # The follower reads the pointer every second; before its first reading, ask MongoDB.
    target = (follower.pointer or await read_pointer(runtime.db)).active
    try:
        return target, await follower.index(target, wait_s=INDEX_WAIT_S)
    except IndexLoading as exc:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, f"{exc}; try again shortly", headers={"Retry-After": "5"}
        ) from None


FactsDep = Annotated[tuple[ProjectionSet, FactIndex], Depends(active_facts)]


async def query_of(
    runtime: RuntimeDep,
    active: FactsDep,
    principal: AnalystDep,
    period: PeriodDep,
    tenant: OtherArea = None,
    locality: Annotated[Key, key_query("A locality, e.g. a ward")] = None,
    setting: Annotated[Key, key_query("A setting id")] = None,
    need: Annotated[NeedCode | None, Query(description="A school census need code, e.g. ASD.")] = None,
    sector: Annotated[Sector | None, Query(description="A sector, e.g. health.")] = None,
    provision: Annotated[Key, key_query("A provision id")] = None,
) -> service.Query:
    """Who is asking about which area, over which days, narrowed how."""
    if tenant is not None and tenant != principal.tenant and principal.role is not Role.ADMIN:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            "only admins may read another area's pulse; compare areas with /v1/benchmarking",
        )
    target, facts = active
    area = tenant or principal.tenant
    return service.Query(
        db=runtime.db,
        target=target,
        facts=facts,
        tenant=area,
        period=period,
        filters=Filters(locality=locality, setting=setting, need=need, sector=sector, provision=provision),
        protect=protects(principal, area),
    )


PulseQuery = Annotated[service.Query, Depends(query_of)]


@router.get(
    "/summary", response_model=Summary, summary="Every measure for a period, against the previous one"
)
async def get_summary(query: PulseQuery) -> Summary:
    return await _answer(service.summary(query))


@router.get(
    "/breakdown",
    response_model=Breakdown,
    summary="One measure broken down by a dimension (drill-down), with filters",
)
async def get_breakdown(
    query: PulseQuery,
    measure: Annotated[MeasureName, Query(description="Which measure (see /v1/pulse/measures).")],
    group_by: Annotated[GroupBy, Query(description="The dimension to break it down by.")],
) -> Breakdown:
    return await _answer(service.breakdown(query, measure=MEASURES[measure.value], group_by=group_by.value))


@router.get("/trend", response_model=Trend, summary="One measure per day, week or month over the period")
async def get_trend(
    query: PulseQuery,
    measure: Annotated[MeasureName, Query()],
    interval: Annotated[Interval, Query()] = Interval.WEEK,
) -> Trend:
    return await _answer(service.trend(query, measure=MEASURES[measure.value], interval=interval.value))


@router.get(
    "/what-works",
    response_model=WhatWorks,
    summary="Needs-profile change and outcomes on completion, by provision or sector",
)
async def get_what_works(
    query: PulseQuery, group_by: Annotated[OfferGroup, Query()] = OfferGroup.PROVISION
) -> WhatWorks:
    return await _answer(service.what_works(query, group_by=group_by.value))


@router.get("/unmet-demand", response_model=UnmetDemand, summary="Unmatched referrals by need and locality")
async def get_unmet_demand(query: PulseQuery) -> UnmetDemand:
    return await _answer(service.unmet_demand(query))


@router.get(
    "/waiting", response_model=Waiting, summary="Waiting times by provision: to acceptance and to start"
)
async def get_waiting(query: PulseQuery) -> Waiting:
    return await _answer(service.waiting(query))


@router.get("/declines", response_model=Declines, summary="Declined offers by provision and reason")
async def get_declines(query: PulseQuery) -> Declines:
    return await _answer(service.declines(query))


@router.get("/measures", summary="The measures on offer and what each means")
async def get_measures(_: AnalystDep) -> dict[str, dict[str, str]]:
    return {name: {"kind": m.kind, "description": m.description} for name, m in MEASURES.items()}


@router.get(
    "", response_model=LegacyPulse, summary="All-time referral counts by need code and routing outcome"
)
async def get_pulse(
    active: FactsDep,
    principal: AnalystDep,
    tenant: OtherArea = None,
) -> LegacyPulse:
    if tenant is not None and tenant != principal.tenant and principal.role is not Role.ADMIN:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "only admins may read another area's pulse")
    _, facts = active
    area = tenant or principal.tenant
    return service.legacy_pulse(facts, tenant=area, protect=protects(principal, area))


async def _answer(pending: Awaitable[T]) -> T:
    try:
        return await pending
    except QueryProblem as exc:
        raise refused(exc.message, exc.field) from None
