"""The measures the pulse API offers, each defined over the counters a referral fact counts."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from signpost.analytics.projections.counters import MINUTES_PER_DAY
from signpost.shared.vocabulary import EscalationReason

Counters = dict[str, int]


@dataclass(frozen=True)
class Measure:
    name: str
    kind: Literal["count", "rate", "mean"]
    description: str
    numerator: str
    denominator: str | None = None  # rates: the base count; means: how many values were averaged
    scale: float = 1.0

    def counts(self) -> list[str]:
        """The counts of children this measure is computed from: what suppression looks at."""
        if self.kind == "count":
            return [self.numerator]
        assert self.denominator is not None
        return [self.numerator, self.denominator] if self.kind == "rate" else [self.denominator]

    def value(self, counters: Counters) -> float | None:
        top = counters.get(self.numerator, 0)
        if self.kind == "count":
            return top
        base = counters.get(self.denominator or "", 0)
        if base == 0:
            return None
        return round(top / base * self.scale, 3 if self.kind == "rate" else 1)

    def base(self, counters: Counters) -> int:
        return counters.get(self.denominator or self.numerator, 0)


def _count(name: str, description: str) -> Measure:
    return Measure(name, "count", description, name)


def _rate(name: str, numerator: str, denominator: str, description: str) -> Measure:
    return Measure(name, "rate", description, numerator, denominator)


def _days(name: str, stage: str, description: str) -> Measure:
    return Measure(name, "mean", description, f"{stage}_minutes", f"{stage}_n", 1 / MINUTES_PER_DAY)


MEASURES: dict[str, Measure] = {
    measure.name: measure
    for measure in (
        _count("submitted", "Referrals submitted in the period."),
        _count("routed", "Of those, referrals offered support (routed)."),
        _count("accepted", "Of those, referrals an agency accepted."),
        _count("started", "Of those, referrals whose support started (in progress)."),
        _count("completed", "Of those, referrals whose support was completed."),
        _count("declined", "Referrals with at least one offer declined."),
        _count("unmatched", "Referrals no provision could meet (unmet demand)."),
        _count("withdrawn", "Referrals withdrawn by the referrer."),
        _count("escalated", "Referrals escalated: safeguarding front door or EHC needs assessment request."),
        _count("escalated_safeguarding", "Referrals escalated to the safeguarding front door."),
        _count("escalated_ehc_assessment", "Referrals escalated to an EHC needs assessment request."),
        _count("rereferred", "Referrals of a child already referred in the 12 months before."),
        _rate("escalation_rate", "escalated", "submitted", "Escalated / submitted."),
        _rate("safeguarding_rate", "escalated_safeguarding", "submitted", "To the front door / submitted."),
        _rate(
            "ehc_assessment_rate", "escalated_ehc_assessment", "submitted", "To an EHC request / submitted."
        ),
        _rate("rereferral_rate", "rereferred", "submitted", "Re-referred within 12 months / submitted."),
        _rate("unmatched_rate", "unmatched", "submitted", "Unmatched / submitted."),
        _rate("acceptance_rate", "accepted", "routed", "Accepted / routed."),
        _rate("decline_rate", "declined", "routed", "With an offer declined / routed."),
        _rate("completion_rate", "completed", "accepted", "Completed / accepted."),
        _days("days_to_route", "route", "Mean days from submission to the first offer."),
        _days("days_to_accept", "accept", "Mean days from an offer to its acceptance."),
        _days("days_to_start", "start", "Mean days from submission to support starting: the wait."),
        Measure(
            "needs_change",
            "mean",
            "Mean fall in needs-profile score between referral and completion (positive = less need).",
            "needs_change_sum",
            "needs_change_n",
        ),
    )
}

# Counts split into parts, each referral of the whole in exactly one part (counters.py counts an
# escalation once, under its reason): shown side by side, a withheld part is the whole minus the others.
PARTS: dict[str, tuple[str, ...]] = {
    "escalated": tuple(f"escalated_{reason.value}" for reason in EscalationReason),
}


def related(names: Iterable[str]) -> list[str]:
    """`names` and every count that is a whole or part with one of them: what suppression must see together."""
    found = list(dict.fromkeys(names))
    for whole, parts in PARTS.items():
        if whole in found or any(part in found for part in parts):
            found += [name for name in (whole, *parts) if name not in found]
    return found


MeasureName = StrEnum("MeasureName", {name: name for name in MEASURES})  # type: ignore[misc]
