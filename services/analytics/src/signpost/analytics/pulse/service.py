"""The pulse queries: sum the facts, compute the measures, suppress what must be."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, fields

from signpost.analytics.projections.index import FactIndex, Slice
from signpost.analytics.projections.sets import ProjectionSet
from signpost.analytics.pulse.measures import MEASURES, PARTS, Counters, Measure, related
from signpost.analytics.pulse.models import (
    Breakdown,
    BreakdownRow,
    Coverage,
    DeclineRow,
    Declines,
    LegacyOutcomes,
    LegacyPulse,
    MeasureTrend,
    PeriodOut,
    Summary,
    Trend,
    TrendPoint,
    UnmetDemand,
    UnmetNeed,
    Waiting,
    WaitingRow,
    WhatWorks,
    WhatWorksRow,
)
from signpost.analytics.pulse.reader import Period, labels, registered_settings
from signpost.analytics.pulse.suppression import (
    THRESHOLD,
    Figure,
    Hidden,
    base_figure,
    change,
    count_figure,
    figure,
    hide_cell,
    hide_counts,
    notice,
)
from signpost.shared.mongo import Database
from signpost.shared.vocabulary import DeclineReason, NeedCode, Outcome

# What the summary shows side by side of the referrals submitted, in groups of outcomes no referral
# has two of: an escalation (to the front door at submission, or routing's for an EHC request)
# is neither routed nor unmatched. Routed and unmatched may overlap (a referral routed, then
# unmatched after a decline), and those awaiting a decision are shown nowhere, so each group falls
# short of the whole by a rest no one sees; it still bounds them (11 submitted and 10 routed
# leave at most 1 escalation, so a withheld 1 would be known).
ESCALATIONS = ("escalated_safeguarding", "escalated_ehc_assessment")
FUNNEL = {"submitted": [("routed", *ESCALATIONS), ("unmatched", *ESCALATIONS)]}

# Breakdowns by these put each referral in exactly one group, so the groups add up to the
# total and complementary suppression applies; needs, areas and offers may overlap.
PARTITIONING_DIMENSIONS = frozenset({"locality", "setting", "level"})


class QueryProblem(ValueError):
    """A query the projections cannot answer; `field` names the parameter."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field, self.message = field, message


@dataclass(frozen=True)
class Filters:
    locality: str | None = None
    setting: str | None = None
    need: str | None = None
    sector: str | None = None
    provision: str | None = None

    def chosen(self) -> list[Slice]:
        return [(f.name, value) for f in fields(self) if (value := getattr(self, f.name)) is not None]


@dataclass(frozen=True)
class Query:
    """Who asks about what: the projection set to read (its facts indexed), the tenant, the period and filters."""

    db: Database
    target: ProjectionSet
    facts: FactIndex
    tenant: str
    period: Period
    filters: Filters
    protect: bool  # suppression.protects: every role below admin, and an admin reading another area

    def scope(self) -> dict[str, object]:
        return {
            "tenant": self.tenant,
            "period": _period(self.period),
            "filters": dict(self.filters.chosen()),
            "suppression_threshold": THRESHOLD if self.protect else None,
            "suppression": notice(protect=self.protect),
        }


def check_group(filters: Filters, group_by: str) -> None:
    if any(dimension == group_by for dimension, _ in filters.chosen()):
        raise QueryProblem("query.group_by", f"already filtered by {group_by}; group by another dimension")


def _totals(query: Query, periods: list[Period], names: Collection[str] | None = None) -> list[Counters]:
    return query.facts.totals(
        tenant=query.tenant, periods=[p.span for p in periods], where=query.filters.chosen(), names=names
    )


def _groups(query: Query, group_by: str, names: Collection[str] | None = None) -> dict[str, Counters]:
    check_group(query.filters, group_by)
    found = query.facts.breakdown(
        tenant=query.tenant,
        days=query.period.span,
        where=query.filters.chosen(),
        group_by=group_by,
        names=names,
    )
    return dict(sorted(found.items()))


async def summary(query: Query) -> Summary:
    previous = query.period.previous()
    now, before = _totals(query, [query.period, previous])
    measures = []
    for measure in MEASURES.values():
        current = figure(measure, now, hidden=hide_cell(now, within=FUNNEL), protect=query.protect)
        earlier = figure(measure, before, hidden=hide_cell(before, within=FUNNEL), protect=query.protect)
        measures.append(
            MeasureTrend(
                measure=measure.name,
                description=measure.description,
                current=current,
                previous=earlier,
                change=change(current, earlier),
            )
        )
    return Summary(
        **query.scope(),
        previous_period=_period(previous),
        measures=measures,
        coverage=await _coverage(query),
    )


async def _coverage(query: Query) -> Coverage | None:
    chosen = query.filters.chosen()
    if chosen and [dimension for dimension, _ in chosen] != ["locality"]:
        return None
    referring = query.facts.referring(tenant=query.tenant, days=query.period.span, where=chosen)
    registered = await registered_settings(
        query.db, query.target, tenant=query.tenant, locality=query.filters.locality
    )
    share = round(len(referring & registered) / len(registered), 3) if registered else None
    return Coverage(
        registered_settings=len(registered),
        referring_settings=len(referring & registered),
        share=Figure(value=share),
        unregistered_referring=len(referring - registered),
    )


async def breakdown(query: Query, *, measure: Measure, group_by: str) -> Breakdown:
    names = _names(measure)
    groups = _groups(query, group_by, names)
    [total] = _totals(query, [query.period], names)
    partition = group_by in PARTITIONING_DIMENSIONS
    hidden = hide_counts(
        list(groups.values()),
        total=total,
        counts=measure.counts(),
        partition=partition and query.protect,
    )
    shown = await labels(query.db, query.target, tenant=query.tenant, dimension=group_by, values=groups)
    rows = [
        _row(measure, group, shown.get(group, group), counters, row_hidden, query.protect)
        for (group, counters), row_hidden in zip(groups.items(), hidden, strict=True)
    ]
    return Breakdown(
        **query.scope(),
        measure=measure.name,
        description=measure.description,
        group_by=group_by,
        partition=partition,
        total=_row(measure, "total", "All", total, hide_cell(total), query.protect),
        rows=rows,
    )


async def trend(query: Query, *, measure: Measure, interval: str) -> Trend:
    parts = query.period.split(interval)
    total, *counted = _totals(query, [query.period, *parts], _names(measure))
    # The parts cover the period and a referral counts on the day it was submitted, so the
    # points add up to the period's total the summary shows: a partition, like a breakdown's.
    hidden = hide_counts(counted, total=total, counts=measure.counts(), partition=query.protect)
    points = [
        TrendPoint(
            period=_period(part),
            value=figure(measure, counters, hidden=point_hidden, protect=query.protect),
            base=base_figure(measure, counters, hidden=point_hidden, protect=query.protect),
        )
        for part, counters, point_hidden in zip(parts, counted, hidden, strict=True)
    ]
    return Trend(
        **query.scope(),
        measure=measure.name,
        description=measure.description,
        interval=interval,
        points=points,
    )


async def what_works(query: Query, *, group_by: str) -> WhatWorks:
    outcomes = [f"outcome_{outcome.value}" for outcome in Outcome]
    groups = _groups(query, group_by, ["completed", "needs_change_sum", "needs_change_n", *outcomes])
    names = await labels(query.db, query.target, tenant=query.tenant, dimension=group_by, values=groups)
    needs_change = MEASURES["needs_change"]
    rows = []
    for group, counters in groups.items():
        if not counters.get("completed"):
            continue
        rows.append(
            WhatWorksRow(
                group=group,
                label=names.get(group, group),
                completed=count_figure(counters["completed"], protect=query.protect),
                needs_change=figure(
                    needs_change, counters, hidden=hide_cell(counters), protect=query.protect
                ),
                rescored=count_figure(counters.get("needs_change_n", 0), protect=query.protect),
                outcomes=_parts(counters, "outcome_", [o.value for o in Outcome], "completed", query.protect),
            )
        )
    return WhatWorks(**query.scope(), group_by=group_by, rows=rows)


async def unmet_demand(query: Query) -> UnmetDemand:
    if query.filters.chosen():
        raise QueryProblem("query", "unmet demand is by need and locality over the whole area: no filters")
    needs = []
    for need in NeedCode:
        where = [("need", need.value)]
        days = query.period.span
        # Referrals with this need, and those left with it unmet (one partly met: its unmet needs only).
        unmet = f"unmet_{need.value}"
        [found] = query.facts.totals(
            tenant=query.tenant, periods=[days], where=where, names=["submitted", unmet]
        )
        if not found.get("submitted"):
            continue
        totals = {"submitted": found["submitted"], "unmatched": found.get(unmet, 0)}
        by_locality = query.facts.breakdown(
            tenant=query.tenant, days=days, where=where, group_by="locality", names=[unmet]
        )
        localities = {
            place: {"unmatched": counters[unmet]} for place, counters in sorted(by_locality.items())
        }
        hidden = hide_counts(
            list(localities.values()), total=totals, counts=["unmatched"], partition=query.protect
        )
        needs.append(
            UnmetNeed(
                need=need.value,
                unmatched=count_figure(totals.get("unmatched", 0), protect=query.protect),
                submitted=count_figure(totals["submitted"], protect=query.protect),
                by_locality={
                    locality: count_figure(
                        counters.get("unmatched", 0),
                        hidden=row_hidden.get("unmatched"),
                        protect=query.protect,
                    )
                    for (locality, counters), row_hidden in zip(localities.items(), hidden, strict=True)
                },
            )
        )
    return UnmetDemand(**query.scope(), needs=needs)


async def waiting(query: Query) -> Waiting:
    provisions = _groups(query, "provision")
    catalogue = {
        document["_id"].split("|", 1)[1]: document
        async for document in query.db[query.target.provisions].find(
            {"_id": {"$in": [f"{query.tenant}|{p}" for p in provisions]}}, {"name": 1, "waiting_weeks": 1}
        )
    }
    accept, start = MEASURES["days_to_accept"], MEASURES["days_to_start"]
    rows = []
    for provision, counters in provisions.items():
        hidden = hide_cell(counters)
        listed = catalogue.get(provision, {})
        rows.append(
            WaitingRow(
                provision=provision,
                label=listed.get("name", provision),
                days_to_accept=figure(accept, counters, hidden=hidden, protect=query.protect),
                accepted=count_figure(counters.get("accept_n", 0), protect=query.protect),
                days_to_start=figure(start, counters, hidden=hidden, protect=query.protect),
                started=count_figure(counters.get("start_n", 0), protect=query.protect),
                advertised_waiting_weeks=listed.get("waiting_weeks"),
            )
        )
    return Waiting(**query.scope(), rows=rows)


async def declines(query: Query) -> Declines:
    provisions = _groups(query, "provision")
    names = await labels(
        query.db, query.target, tenant=query.tenant, dimension="provision", values=provisions
    )
    rows = [
        DeclineRow(
            provision=provision,
            label=names.get(provision, provision),
            declined=count_figure(counters["declined"], protect=query.protect),
            by_reason=_parts(
                counters, "decline_", [r.value for r in DeclineReason], "declined", query.protect
            ),
        )
        for provision, counters in provisions.items()
        if counters.get("declined")
    ]
    return Declines(**query.scope(), rows=rows)


def legacy_pulse(facts: FactIndex, *, tenant: str, protect: bool) -> LegacyPulse:
    """All time, the whole area."""
    [totals] = facts.totals(tenant=tenant, periods=[None])
    by_need_code = facts.breakdown(tenant=tenant, days=None, where=[], group_by="need", names=["submitted"])
    submitted = totals.get("submitted", 0)
    outcomes = {
        "routed": totals.get("routed", 0),
        "unmatched": totals.get("unmatched", 0),
        "escalated_safeguarding": totals.get("escalated_safeguarding", 0),
        "escalated_ehc_assessment": totals.get("escalated_ehc_assessment", 0),
    }
    # A referral can be routed and later unmatched (after a decline); never go negative.
    outcomes["awaiting_decision"] = max(0, submitted - sum(outcomes.values()))
    # The outcomes add up to the referrals submitted, and the escalations by reason to the
    # escalations the summary shows: neither sum may give a withheld outcome away.
    hidden = (
        hide_cell({**totals, **outcomes}, parts={**PARTS, "submitted": tuple(outcomes)}) if protect else {}
    )
    shown = {name: None if name in hidden else count for name, count in outcomes.items()}
    suppressed = {f"by_outcome.{name}": hidden[name] for name in outcomes if name in hidden}
    by_need: dict[str, int | None] = {}
    for need, counters in sorted(by_need_code.items()):
        one = count_figure(counters.get("submitted", 0), protect=protect)
        by_need[need] = None if one.suppressed else counters.get("submitted", 0)
        if one.reason is not None:
            suppressed[f"by_need_code.{need}"] = one.reason
    total = count_figure(submitted, hidden=hidden.get("submitted"), protect=protect)
    if total.reason is not None:
        suppressed["submitted"] = total.reason
    return LegacyPulse(
        tenant=tenant,
        submitted=None if total.suppressed else submitted,
        by_need_code=by_need,
        by_outcome=LegacyOutcomes(**shown),
        suppressed=suppressed,
    )


def _names(measure: Measure) -> list[str]:
    """The counters a measure is computed from, and those it adds up with: all a breakdown or trend
    of it needs summed to suppress it as the summary does."""
    return related([measure.numerator, *([measure.denominator] if measure.denominator else [])])


def _row(
    measure: Measure, group: str, label: str, counters: Counters, hidden: Hidden, protect: bool
) -> BreakdownRow:
    return BreakdownRow(
        group=group,
        label=label,
        value=figure(measure, counters, hidden=hidden, protect=protect),
        base=base_figure(measure, counters, hidden=hidden, protect=protect),
    )


def _parts(counters: Counters, prefix: str, names: list[str], total: str, protect: bool) -> dict[str, Figure]:
    """A total split by reason or outcome: the parts add up to it, so complementary suppression applies."""
    present = [name for name in names if counters.get(prefix + name)]
    rows = [{"n": counters[prefix + name]} for name in present]
    hidden = hide_counts(rows, total={"n": counters.get(total, 0)}, counts=["n"], partition=protect)
    return {
        name: count_figure(row["n"], hidden=row_hidden.get("n"), protect=protect)
        for name, row, row_hidden in zip(present, rows, hidden, strict=True)
    }


def _period(period: Period) -> PeriodOut:
    return PeriodOut(start=period.start, end=period.end)
