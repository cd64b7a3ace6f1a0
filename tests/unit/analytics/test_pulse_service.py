"""The pulse queries on an index of facts in memory, as an analyst sees them: what adds up to a
figure that is shown cannot give a withheld one away by subtraction."""

from __future__ import annotations

from datetime import date, timedelta
from types import SimpleNamespace
from typing import Any, cast

import pytest
from signpost.analytics.benchmarking import views as benchmarking
from signpost.analytics.projections.sets import ProjectionSet
from signpost.analytics.pulse import service
from signpost.analytics.pulse.measures import MEASURES, MeasureName
from signpost.analytics.pulse.reader import Period
from signpost.analytics.pulse.suppression import Figure, Reason
from signpost.shared.auth.principal import Principal, Role
from signpost.shared.events import Envelope, EventData
from signpost.shared.mongo import Database
from signpost.shared.vocabulary import EscalationReason

from tests.analytics_events import T0, TENANT, lifecycle
from tests.unit.analytics.test_projections import fold, indexed

WEEKS = Period(date(2026, 3, 2), date(2026, 3, 29))  # four ISO weeks, T0's first
ANALYST = Principal(subject="analyst", role=Role.ANALYST, organisation="la-insight", tenant=TENANT)


@pytest.fixture(autouse=True)
def no_register(monkeypatch: pytest.MonkeyPatch) -> None:
    """Coverage and benchmarking read MongoDB for the register and the areas; there is none here."""

    async def registered(*_: object, **__: object) -> set[str]:
        return set()

    async def areas(*_: object) -> list[str]:
        return [TENANT]

    monkeypatch.setattr(service, "registered_settings", registered)
    monkeypatch.setattr(benchmarking, "tenants", areas)


def pulse_query(events: list[Envelope[EventData]], *, protect: bool) -> service.Query:
    """The pulse's query over `events` folded in memory (no database): as an analyst if `protect`."""
    return service.Query(
        db=cast(Database, None),
        target=ProjectionSet("test"),
        facts=indexed(fold(events)),
        tenant=TENANT,
        period=WEEKS,
        filters=service.Filters(),
        protect=protect,
    )


async def summary(query: service.Query) -> dict[str, Figure]:
    return {measure.measure: measure.current for measure in (await service.summary(query)).measures}


async def breakdown(query: service.Query, measure: str, group_by: str) -> dict[str, Figure]:
    answer = await service.breakdown(query, measure=MEASURES[measure], group_by=group_by)
    return {row.group: row.value for row in answer.rows}


async def test_a_withheld_escalation_reason_is_not_all_escalations_less_the_other_anywhere() -> None:
    reasons = [EscalationReason.EHC_ASSESSMENT] * 12 + [EscalationReason.SAFEGUARDING] * 3
    events = [e for n, why in enumerate(reasons) for e in lifecycle(f"esc-{n}", "escalated", escalation=why)]
    events += [e for n in range(25) for e in lifecycle(f"rou-{n}", "routed", locality="Brent")]
    query = pulse_query(events, protect=True)

    shown = await summary(query)
    assert shown["escalated"].value == 15 and shown["escalation_rate"].value == 0.375
    assert shown["escalated_safeguarding"].reason is Reason.SMALL_NUMBER
    assert shown["escalated_ehc_assessment"].reason is Reason.COMPLEMENTARY  # else 15 - 12 = 3
    assert shown["ehc_assessment_rate"].reason is shown["safeguarding_rate"].reason is Reason.DERIVED
    for group_by, group in (("locality", "Ashley"), ("need", "SLCN")):  # a partition, and not
        assert (await breakdown(query, "escalated", group_by))[group].value == 15
        assert (await breakdown(query, "escalated_ehc_assessment", group_by))[group].suppressed
        assert (await breakdown(query, "ehc_assessment_rate", group_by))[group].suppressed
    area = await benchmarking.get_benchmarking(
        runtime=cast(Any, SimpleNamespace(db=None)),
        active=(query.target, query.facts),
        principal=ANALYST,
        period=WEEKS,
        measure=MeasureName("ehc_assessment_rate"),
    )
    assert area.areas[0].value.reason is Reason.DERIVED


async def test_a_withheld_escalation_is_not_the_referrals_submitted_less_the_other_outcomes() -> None:
    """11 submitted, 10 routed, none unmatched or escalated for an assessment: the one safeguarding
    escalation, withheld, would be 11 - 10 (authorization audit)."""
    events = lifecycle("esc-0", "escalated", escalation=EscalationReason.SAFEGUARDING)
    events += [e for n in range(10) for e in lifecycle(f"rou-{n}", "routed")]

    shown = await summary(pulse_query(events, protect=True))
    assert shown["submitted"].value == 11
    assert shown["escalated_safeguarding"].reason is shown["escalated"].reason is Reason.SMALL_NUMBER
    assert shown["routed"].reason is Reason.COMPLEMENTARY
    assert (await summary(pulse_query(events, protect=False)))["routed"].value == 10  # an admin's own

    # With room for the withheld escalation to be 1 to 3, routed and unmatched stay shown, though a
    # referral routed and then unmatched counts in both (so they are not parts of one partition).
    events += [lifecycle(f"wait-{n}")[0] for n in range(2)]  # submitted, awaiting a decision
    events += lifecycle("esc-1", "escalated", escalation=EscalationReason.EHC_ASSESSMENT)
    shown = await summary(pulse_query(events, protect=True))
    assert (shown["submitted"].value, shown["routed"].value) == (14, 10)
    assert (
        shown["escalated_safeguarding"].reason
        is shown["escalated_ehc_assessment"].reason
        is Reason.SMALL_NUMBER
    )


async def test_a_withheld_week_is_not_the_summary_total_less_the_weeks_shown() -> None:
    weeks = [12, 3, 15, 9]
    query = pulse_query(
        [
            event
            for week, submitted in enumerate(weeks)
            for n in range(submitted)
            for event in lifecycle(f"w{week}-{n}", "routed", at=T0 + timedelta(weeks=week))
        ],
        protect=True,
    )
    total = (await summary(query))["submitted"].value
    points = [
        point.value
        for point in (await service.trend(query, measure=MEASURES["submitted"], interval="week")).points
    ]
    withheld = [n for n, point in zip(weeks, points, strict=True) if point.suppressed]
    assert total == 39 and withheld == [3, 9]
    assert total - sum(point.value or 0 for point in points) not in withheld
    # A rate's points are over the same counts, so its bases are withheld alike.
    rate = await service.trend(query, measure=MEASURES["unmatched_rate"], interval="week")
    assert [point.base is not None and point.base.suppressed for point in rate.points] == [
        False,
        True,
        False,
        True,
    ]
