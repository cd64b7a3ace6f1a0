"""What the pulse API answers: every figure may be withheld, and says why."""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel, ConfigDict, Field
from signpost.analytics.pulse.suppression import Figure, Notice, Reason


class PeriodOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    start: date = Field(serialization_alias="from", description="First day (UTC), included.")
    end: date = Field(serialization_alias="to", description="Last day (UTC), included.")


class Scope(BaseModel):
    """Whose numbers, over when, narrowed how, and what this caller may see."""

    tenant: str = Field(description="The local area.")
    period: PeriodOut
    filters: dict[str, str] = Field(
        description="The filters applied (locality, setting, need, sector, provision)."
    )
    suppression_threshold: int | None = Field(
        description="Counts below this (and figures derived from them) are withheld; null for an admin "
        "reading its own area."
    )
    suppression: Notice | None = Field(
        description="Says that suppression applies and why; null for an admin reading its own area."
    )


class MeasureTrend(BaseModel):
    measure: str
    description: str
    current: Figure = Field(description="In the period asked for.")
    previous: Figure = Field(description="In the period of equal length just before it.")
    change: Figure = Field(description="current - previous.")


class Coverage(BaseModel):
    """The share of the area's registered settings that referred in the period."""

    registered_settings: int = Field(
        description="Open settings in the register (in the locality, if filtered)."
    )
    referring_settings: int = Field(description="Of those, how many submitted at least one referral.")
    share: Figure = Field(
        description="referring / registered; settings are not people, so it is never suppressed."
    )
    unregistered_referring: int = Field(description="Referring settings missing from the register: add them.")


class Summary(Scope):
    previous_period: PeriodOut
    measures: list[MeasureTrend]
    coverage: Coverage | None = Field(
        description="Only without filters or filtered by locality (coverage is about all referrals of a setting)."
    )


class BreakdownRow(BaseModel):
    group: str = Field(description="The value of the group-by dimension, e.g. a locality or a provision id.")
    label: str = Field(description="Its display name (provision and setting names), else the value.")
    value: Figure
    base: Figure | None = Field(
        description="What the figure is over: the denominator of a rate or the number of values a mean averages."
    )


class Breakdown(Scope):
    measure: str
    description: str
    group_by: str
    partition: bool = Field(
        description="True when each referral falls in exactly one group (rows add up to the total), "
        "so complementary suppression applies."
    )
    total: BreakdownRow
    rows: list[BreakdownRow]


class TrendPoint(BaseModel):
    period: PeriodOut
    value: Figure
    base: Figure | None


class Trend(Scope):
    measure: str
    description: str
    interval: str
    points: list[TrendPoint]


class WhatWorksRow(BaseModel):
    group: str
    label: str
    completed: Figure = Field(description="Referrals whose support here was completed.")
    needs_change: Figure = Field(
        description="Mean fall in needs-profile score from referral to completion (positive = less need)."
    )
    rescored: Figure = Field(description="Completions with a needs re-score to compare: the mean's base.")
    outcomes: dict[str, Figure] = Field(description="Completions by recorded outcome.")


class WhatWorks(Scope):
    group_by: str
    rows: list[WhatWorksRow]


class UnmetNeed(BaseModel):
    need: str = Field(description="School census need code.")
    unmatched: Figure = Field(description="Referrals with this need that no provision could meet.")
    submitted: Figure = Field(description="Referrals with this need.")
    by_locality: dict[str, Figure]


class UnmetDemand(Scope):
    needs: list[UnmetNeed]


class WaitingRow(BaseModel):
    provision: str
    label: str
    days_to_accept: Figure
    accepted: Figure
    days_to_start: Figure = Field(description="Mean days from submission to support starting.")
    started: Figure
    advertised_waiting_weeks: float | None = Field(description="What the Local Offer says the wait is.")


class Waiting(Scope):
    rows: list[WaitingRow]


class DeclineRow(BaseModel):
    provision: str
    label: str
    declined: Figure
    by_reason: dict[str, Figure]


class Declines(Scope):
    rows: list[DeclineRow]


class LegacyOutcomes(BaseModel):
    routed: int | None
    unmatched: int | None
    escalated_safeguarding: int | None
    escalated_ehc_assessment: int | None
    awaiting_decision: int | None


class LegacyPulse(BaseModel):
    """All-time counts, the first shape of the pulse (kept for existing clients)."""

    tenant: str
    submitted: int | None
    by_need_code: dict[str, int | None]
    by_outcome: LegacyOutcomes
    suppressed: dict[str, Reason] = Field(description="Which values are withheld (null above) and why.")
