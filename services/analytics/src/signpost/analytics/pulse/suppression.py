"""Small-number suppression (pure): counts under 5, and anything that would give one away.

- primary: a count of 1 to 4 children is hidden (0 is shown: it identifies nobody);
- secondary, derived: a rate or mean computed over a hidden count is hidden too;
- secondary, complementary: where cells add up to one that is shown (the rows of a
  partition and their total: locality, setting, level of need, outcomes, a trend's
  points; a whole and its parts: escalations by reason), hidden cells could be worked
  out by subtraction, so more are hidden, smallest first, until none can be.

Who sees them is one rule, `protects`: an admin sees every figure of its own area (the tenant its
token names); every role below admin, and an admin reading any other area (`tenant=`, regional
benchmarking), sees the suppressed figures with a reason.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from pydantic import BaseModel, Field
from signpost.analytics.pulse.measures import PARTS, Counters, Measure, related
from signpost.shared.auth.principal import Principal, Role
from signpost.shared.vocabulary import SMALL_NUMBER_THRESHOLD

THRESHOLD = SMALL_NUMBER_THRESHOLD


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


def protects(principal: Principal, tenant: str) -> bool:
    """Whether `tenant`'s figures are suppressed for `principal`: yes for every role below admin, and
    for an admin too unless `tenant` is its own area. Aggregates of other areas are compared with
    small numbers suppressed, whoever asks."""
    return principal.role is not Role.ADMIN or tenant != principal.tenant


class Notice(BaseModel):
    """What a caller is told once per answer where suppression applies: that it does, and what each reason means."""

    threshold: int = Field(description="Counts below this, and figures derived from them, are withheld.")
    note: str
    reasons: dict[Reason, str] = Field(description="What each `reason` on a withheld figure means.")


def notice(*, protect: bool) -> Notice | None:
    if not protect:
        return None
    return Notice(
        threshold=THRESHOLD,
        note=f"Small numbers are suppressed: counts of 1 to {THRESHOLD - 1} children, and figures that "
        "would reveal one, are withheld from every role below admin, and from admins for every area "
        "but their own.",
        reasons=dict(REASON_TEXT),
    )


Hidden = dict[str, Reason]  # count name -> why it is hidden


def is_small(count: int) -> bool:
    return 0 < count < THRESHOLD


Cell = tuple[int, str]  # (row, count name)


@dataclass(frozen=True)
class _Sum:
    """Cells that add up: whole = sum of parts, or, with `remainder`, whole = sum of parts + a rest
    no answer shows (0 or more): the parts are disjoint, but not all of the whole."""

    whole: Cell
    parts: tuple[Cell, ...]
    whole_hideable: bool  # False when the whole is a total other answers show anyway
    remainder: bool = False


def hide_counts(
    rows: Sequence[Counters], *, total: Counters | None, counts: Sequence[str], partition: bool
) -> list[Hidden]:
    """Per row, which of `counts` to hide: primary, then complementary wherever cells add up to one
    shown: a whole and its parts in a row (the rows must carry measures.related(counts)), and, when
    the rows are a partition, each count's rows and its total."""
    names = related(counts)
    table = [*rows, *([total] if total is not None else [])]
    sums = [one for row in range(len(table)) for one in _parts_of(row, names, PARTS)]
    if partition and total is not None:
        last = len(rows)
        sums += [
            _Sum((last, name), tuple((row, name) for row in range(last)), whole_hideable=False)
            for name in sorted(names)  # one order whatever the measure asked for: the same cells hidden
        ]
    return _protect(table, names, sums)[: len(rows)]


def hide_cell(
    counters: Counters,
    *,
    parts: Mapping[str, Sequence[str]] = PARTS,
    within: Mapping[str, Sequence[Sequence[str]]] | None = None,
) -> Hidden:
    """Which counts of one cell (a period, a group, an area) to hide, its wholes and `parts`
    protected, and each whole in `within` against each group of disjoint counts it holds (what is
    left of the whole is shown nowhere, but bounds them all the same; the whole, a total other
    answers show, stays shown)."""
    sums = _parts_of(0, counters, parts)
    sums += [
        _Sum((0, whole), tuple((0, part) for part in group), whole_hideable=False, remainder=True)
        for whole, groups in (within or {}).items()
        for group in groups
        if whole in counters
    ]
    return _protect([counters], list(counters), sums)[0]


def _parts_of(row: int, names: Collection[str], parts: Mapping[str, Sequence[str]]) -> list[_Sum]:
    """The wholes among `names` in one row, each with its parts."""
    return [
        _Sum((row, whole), tuple((row, part) for part in split), whole_hideable=True)
        for whole, split in parts.items()
        if whole in names
    ]


def _protect(table: Sequence[Counters], names: Sequence[str], sums: Sequence[_Sum]) -> list[Hidden]:
    hidden: list[Hidden] = [
        {name: Reason.SMALL_NUMBER for name in names if is_small(row.get(name, 0))} for row in table
    ]
    changed = True
    while changed:  # a cell hidden for one sum may leave another's exposed
        changed = False
        for one in sums:
            while _pinned(one, table, hidden) and (cell := _next(one, table, hidden)) is not None:
                hidden[cell[0]][cell[1]] = Reason.COMPLEMENTARY
                changed = True
    return hidden


def _pinned(one: _Sum, table: Sequence[Counters], hidden: Sequence[Hidden]) -> bool:
    """Whether the shown cells of `one` leave a hidden cell only one possible value.

    A caller knows the sum and each hidden cell's reason: small is 1 to 4, complementary 5 or
    more (it would be small otherwise). A lone hidden cell is the difference; two 1s of a known
    sum 2 are both 1; a 1 hidden with a 5 for a sum of 6 is 1. So cells are hidden until each
    could still be two values or more (its bounds may narrow, as 3 or 4 for two cells of 7).
    """
    terms = [(one.whole, -1), *((part, 1) for part in one.parts)]  # sum of sign * cell = 0
    rest = -sum(sign * _value(table, (row, name)) for (row, name), sign in terms if name not in hidden[row])
    withheld = [
        _signed(_bounds(hidden[row][name]), sign) for (row, name), sign in terms if name in hidden[row]
    ]
    rest_bounds = (
        [(0.0, math.inf)] if one.remainder else []
    )  # unseen: bounds the others, itself shown nowhere
    others_low = _sums_of_others([low for low, _ in [*withheld, *rest_bounds]])[: len(withheld)]
    others_high = _sums_of_others([high for _, high in [*withheld, *rest_bounds]])[: len(withheld)]
    return any(
        max(low, rest - above) >= min(high, rest - below)
        for (low, high), below, above in zip(withheld, others_low, others_high, strict=True)
    )


def _sums_of_others(values: Sequence[float]) -> list[float]:
    """For each value, the sum of all the others (in linear time: a breakdown may hide hundreds)."""
    infinite = [value for value in values if math.isinf(value)]  # of one sign: lows -inf, highs +inf
    finite = sum(value for value in values if not math.isinf(value))
    return [
        infinite[0] if len(infinite) > math.isinf(value) else finite - (0 if math.isinf(value) else value)
        for value in values
    ]


def _bounds(reason: Reason) -> tuple[float, float]:
    return (1, THRESHOLD - 1) if reason is Reason.SMALL_NUMBER else (THRESHOLD, math.inf)


def _signed(bounds: tuple[float, float], sign: int) -> tuple[float, float]:
    low, high = bounds
    return (low, high) if sign > 0 else (-high, -low)


def _next(one: _Sum, table: Sequence[Counters], hidden: Sequence[Hidden]) -> Cell | None:
    """The smallest shown non-zero part (zero reveals nothing), else the whole if it may be hidden."""
    shown = [part for part in one.parts if part[1] not in hidden[part[0]] and _value(table, part) > 0]
    if shown:
        return min(shown, key=lambda part: _value(table, part))
    row, name = one.whole
    if one.whole_hideable and name not in hidden[row] and _value(table, one.whole) > 0:
        return one.whole
    return None


def _value(table: Sequence[Counters], cell: Cell) -> int:
    row, name = cell
    return table[row].get(name, 0)


def figure(measure: Measure, counters: Counters, *, hidden: Hidden, protect: bool) -> Figure:
    """The measure's value, withheld when a count it is computed from is hidden."""
    value = measure.value(counters)
    reasons = [hidden[name] for name in measure.counts() if name in hidden] if protect else []
    if not reasons:
        return Figure(value=value)
    if measure.kind == "count":
        return Figure(value=None, suppressed=True, reason=reasons[0])
    return Figure(value=None, suppressed=True, reason=Reason.DERIVED)


def base_figure(measure: Measure, counters: Counters, *, hidden: Hidden, protect: bool) -> Figure | None:
    """What a rate or mean is over (None for a count), withheld as that count is."""
    if measure.denominator is None:
        return None
    return count_figure(measure.base(counters), hidden=hidden.get(measure.denominator), protect=protect)


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
