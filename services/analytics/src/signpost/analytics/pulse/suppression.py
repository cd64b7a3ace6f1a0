"""Small-number suppression (pure): counts under 5, and anything that would give one away.

- primary: a count of 1 to 4 children is hidden (0 is shown: it identifies nobody);
- secondary, derived: a rate or mean computed over a hidden count is hidden too;
- secondary, complementary: where a breakdown adds up to a total that is shown (a
  partition: locality, setting, level of need, outcomes), a lone hidden cell could be
  worked out by subtraction, so the next smallest cell is hidden with it.

Admins see everything; every role below sees the suppressed figures with a reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

from pydantic import BaseModel, Field
from signpost.analytics.pulse.measures import Counters, Measure

THRESHOLD = 5


class Reason(StrEnum):
    SMALL_NUMBER = "small_number"
    DERIVED = "derived_from_suppressed"
    COMPLEMENTARY = "complementary"


REASON_TEXT = {
    Reason.SMALL_NUMBER: f"a count of 1 to {THRESHOLD - 1} children",
    Reason.DERIVED: f"computed from a count of fewer than {THRESHOLD} or from a suppressed value",
    Reason.COMPLEMENTARY: "would let a suppressed count be worked out by subtraction from the total",
}


class Figure(BaseModel):
    """One number, or why it is withheld."""

    value: float | None = Field(
        description="The figure; null when suppressed, or when undefined (a rate over zero)."
    )
    suppressed: bool = Field(default=False, description="True when the value is withheld from this role.")
    reason: Reason | None = Field(
        default=None,
        description="small_number: a count of 1-4; derived_from_suppressed: a rate, mean or change computed "
        "from a suppressed count; complementary: hidden so a suppressed cell cannot be found by subtraction.",
    )


class Notice(BaseModel):
    """What a caller below admin is told once per answer: that suppression applies, and what each reason means."""

    threshold: int = Field(description="Counts below this, and figures derived from them, are withheld.")
    note: str
    reasons: dict[Reason, str] = Field(description="What each `reason` on a withheld figure means.")


def notice(*, protect: bool) -> Notice | None:
    if not protect:
        return None
    return Notice(
        threshold=THRESHOLD,
        note=f"Small numbers are suppressed: counts of 1 to {THRESHOLD - 1} children, and figures that "
        "would reveal one, are withheld from every role below admin.",
        reasons=dict(REASON_TEXT),
    )


Hidden = dict[str, Reason]  # count name -> why it is hidden


def is_small(count: int) -> bool:
    return 0 < count < THRESHOLD


def hide_counts(
    rows: Sequence[Counters], *, total: Counters | None, counts: Sequence[str], partition: bool
) -> list[Hidden]:
    """Per row, which of `counts` to hide: primary, then complementary when the rows add up to a shown total."""
    hidden: list[Hidden] = [{} for _ in rows]
    for name in counts:
        for row, row_hidden in zip(rows, hidden, strict=True):
            if is_small(row.get(name, 0)):
                row_hidden[name] = Reason.SMALL_NUMBER
        if not partition or total is None or is_small(total.get(name, 0)):
            continue
        alone = [i for i, row_hidden in enumerate(hidden) if name in row_hidden]
        if len(alone) != 1:
            continue  # none to protect, or two or more already protect each other
        others = [i for i, row in enumerate(rows) if name not in hidden[i] and row.get(name, 0) > 0]
        if others:
            smallest = min(others, key=lambda i: rows[i].get(name, 0))
            hidden[smallest][name] = Reason.COMPLEMENTARY
    return hidden


def figure(measure: Measure, counters: Counters, *, hidden: Hidden, protect: bool) -> Figure:
    """The measure's value, withheld when a count it is computed from is hidden."""
    value = measure.value(counters)
    reasons = [hidden[name] for name in measure.counts() if name in hidden] if protect else []
    if not reasons:
        return Figure(value=value)
    if measure.kind == "count":
        return Figure(value=None, suppressed=True, reason=reasons[0])
    return Figure(value=None, suppressed=True, reason=Reason.DERIVED)


def count_figure(count: int, *, hidden: Reason | None = None, protect: bool) -> Figure:
    if protect and hidden is None and is_small(count):
        hidden = Reason.SMALL_NUMBER
    if protect and hidden is not None:
        return Figure(value=None, suppressed=True, reason=hidden)
    return Figure(value=count)


def change(current: Figure, previous: Figure) -> Figure:
    """Current minus previous; withheld when either is."""
    if current.suppressed or previous.suppressed:
        return Figure(value=None, suppressed=True, reason=Reason.DERIVED)
    if current.value is None or previous.value is None:
        return Figure(value=None)
    return Figure(value=round(current.value - previous.value, 3))
