"""An admin sees every figure of its own area only: another area's, through `tenant=` or regional
benchmarking, come with small numbers suppressed, as every role below admin sees them."""

from __future__ import annotations

from datetime import date
from types import SimpleNamespace
from typing import Any, cast

import pytest
from signpost.analytics.benchmarking import views as benchmarking
from signpost.analytics.projections.sets import ProjectionSet
from signpost.analytics.pulse import service, views
from signpost.analytics.pulse.measures import MeasureName
from signpost.analytics.pulse.reader import Period
from signpost.analytics.pulse.suppression import THRESHOLD, Figure, Reason, protects
from signpost.shared.auth.principal import Principal, Role

from tests.analytics_events import TENANT, lifecycle
from tests.unit.analytics.test_projections import fold, indexed

NEIGHBOUR = "E06000022"
MARCH = Period(date(2026, 3, 1), date(2026, 3, 31))
ADMIN = Principal(subject="admin", role=Role.ADMIN, organisation="la-insight", tenant=TENANT)
ANALYST = Principal(subject="analyst", role=Role.ANALYST, organisation="la-insight", tenant=TENANT)
# Three referrals in each area: a count under the threshold, so withheld wherever suppression applies.
ACTIVE = (
    ProjectionSet("test"),
    indexed(
        fold(
            [
                event
                for area in (TENANT, NEIGHBOUR)
                for n in range(3)
                for event in lifecycle(f"{area}-{n}", "escalated", tenant=area)
            ]
        )
    ),
)
RUNTIME = cast(Any, SimpleNamespace(db=None))
WITHHELD = Figure(value=None, suppressed=True, reason=Reason.SMALL_NUMBER)


@pytest.fixture(autouse=True)
def no_database(monkeypatch: pytest.MonkeyPatch) -> None:
    """Coverage and benchmarking read MongoDB for the register and the areas; there is none here."""

    async def registered(*_: object, **__: object) -> set[str]:
        return set()

    async def areas(*_: object) -> list[str]:
        return [TENANT, NEIGHBOUR]

    monkeypatch.setattr(service, "registered_settings", registered)
    monkeypatch.setattr(benchmarking, "tenants", areas)


async def summary(principal: Principal, tenant: str | None) -> tuple[dict[str, Figure], dict[str, Any]]:
    """GET /v1/pulse/summary?tenant=: each measure's current figure, and the answer's scope."""
    query = await views.query_of(RUNTIME, ACTIVE, principal, MARCH, tenant=tenant)
    answer = await service.summary(query)
    scope = answer.model_dump(include={"tenant", "suppression_threshold", "suppression"})
    return {measure.measure: measure.current for measure in answer.measures}, scope


def test_an_admin_is_protected_from_every_area_but_its_own() -> None:
    assert not protects(ADMIN, TENANT)
    assert protects(ADMIN, NEIGHBOUR)
    assert protects(ANALYST, TENANT) and protects(ANALYST, NEIGHBOUR)


async def test_an_admin_reading_another_area_sees_its_small_numbers_suppressed() -> None:
    figures, scope = await summary(ADMIN, NEIGHBOUR)
    assert scope["tenant"] == NEIGHBOUR
    assert figures["submitted"] == figures["escalated"] == WITHHELD
    assert figures["escalation_rate"].reason is Reason.DERIVED
    assert scope["suppression_threshold"] == THRESHOLD
    assert scope["suppression"]["threshold"] == THRESHOLD  # the notice, as an analyst gets it
    # Exactly what an analyst sees of its own area, which has the same numbers.
    assert (figures, scope | {"tenant": TENANT}) == await summary(ANALYST, None)

    legacy = await views.get_pulse(ACTIVE, ADMIN, tenant=NEIGHBOUR)
    assert legacy.submitted is None and legacy.suppressed["submitted"] is Reason.SMALL_NUMBER
    assert legacy.by_need_code == {"SLCN": None}


@pytest.mark.parametrize("tenant", [None, TENANT])
async def test_an_admin_reading_its_own_area_sees_every_figure(tenant: str | None) -> None:
    figures, scope = await summary(ADMIN, tenant)
    assert scope["tenant"] == TENANT
    assert figures["submitted"] == figures["escalated"] == Figure(value=3)
    assert figures["escalation_rate"] == Figure(value=1.0)
    assert scope["suppression_threshold"] is None and scope["suppression"] is None

    legacy = await views.get_pulse(ACTIVE, ADMIN, tenant=tenant)
    assert legacy.submitted == 3 and legacy.suppressed == {}
    assert legacy.by_need_code == {"SLCN": 3}


async def benchmark(principal: Principal, measure: str) -> benchmarking.Benchmarking:
    return await benchmarking.get_benchmarking(
        runtime=RUNTIME, active=ACTIVE, principal=principal, period=MARCH, measure=MeasureName(measure)
    )


async def test_benchmarking_shows_an_admin_its_own_area_and_hides_the_others_small_figures() -> None:
    table = await benchmark(ADMIN, "escalated")
    areas = {area.tenant: area for area in table.areas}
    assert areas[TENANT].value == areas[TENANT].submitted == Figure(value=3)
    assert areas[NEIGHBOUR].value == areas[NEIGHBOUR].submitted == WITHHELD
    assert table.suppression_threshold == THRESHOLD
    assert table.suppression is not None and table.suppression.threshold == THRESHOLD
    rate = {area.tenant: area for area in (await benchmark(ADMIN, "escalation_rate")).areas}
    assert rate[TENANT].value == Figure(value=1.0) and rate[TENANT].base == Figure(value=3)
    assert rate[NEIGHBOUR].value.reason is Reason.DERIVED and rate[NEIGHBOUR].base == WITHHELD


async def test_benchmarking_hides_every_areas_small_figures_from_an_analyst() -> None:
    table = await benchmark(ANALYST, "escalated")
    assert [area.value for area in table.areas] == [WITHHELD, WITHHELD]
    assert table.suppression_threshold == THRESHOLD and table.suppression is not None
