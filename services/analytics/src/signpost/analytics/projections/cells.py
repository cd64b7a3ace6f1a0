"""What one referral fact adds to the pre-aggregated period buckets (pure).

A bucket document holds the measures of one tenant, one period (a UTC day or a
month) and one slice (everything, one locality or one need code): `m` the
slice's totals, `g.<dimension>.<value>` the same measures broken down by other
dimensions (see SLICE_GROUPS). A pulse query then reads a handful of
documents by `_id` (the months inside the period, the days at its edges) instead
of aggregating over referrals, which SecantusDB does slowly.

Measures are by referral cohort: a referral counts in the period it was submitted
in, with how far it has got since. Offer-level dimensions (sector, provision)
restrict a referral to its offers there: "accepted" by provision P means P accepted it.
Folding is `contributions(after) - contributions(before)` per changed fact, so an
aggregate always equals the sum over the facts whatever order events came in.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, timedelta

from signpost.shared.mongo import Document

Measures = dict[str, int]
Slice = tuple[str, str]  # (dimension, value); ("all", "") is everything
Cell = tuple[str, str]  # (group dimension, value); TOTALS is the slice's own
TOTALS: Cell = ("", "")
SliceCells = dict[Cell, Measures]
Cells = dict[str, SliceCells]  # bucket _id -> cell -> measure -> value

# Which slices have their own bucket documents, and which breakdowns each holds. A
# filter on a slice dimension reads that slice; a filter on any other dimension (setting,
# sector, provision) picks one group out of a slice. Every slice value is one more
# document to rewrite per day and month a batch touches, so slices are few: a slice per
# provision cost 40 documents per day in the benchmark, more than all the others together.
SLICE_GROUPS: dict[str, tuple[str, ...]] = {
    "all": ("locality", "setting", "need", "area", "level", "sector", "provision"),
    "locality": ("setting", "need", "level", "sector", "provision"),
    "need": ("locality", "level", "sector", "provision"),
}
GROUP_DIMENSIONS = SLICE_GROUPS["all"]
PARTITIONING_DIMENSIONS = frozenset({"locality", "setting", "level"})
GRAINS = ("d", "m")
REREFERRAL_WINDOW = timedelta(days=365)
MINUTES_PER_DAY = 1440


def escape_key(value: str) -> str:
    """A dimension value as a MongoDB field name and `_id` part: no dots, dollars or bars."""
    return value.replace("%", "%25").replace(".", "%2E").replace("$", "%24").replace("|", "%7C")


def unescape_key(key: str) -> str:
    return key.replace("%7C", "|").replace("%24", "$").replace("%2E", ".").replace("%25", "%")


def bucket_id(tenant: str, grain: str, period: str, dimension: str, value: str) -> str:
    return f"{tenant}|{grain}|{period}|{dimension}|{escape_key(value)}"


def totals_id(bucket: str) -> str:
    """The `_id` of the small document that repeats a bucket's totals (`m`) alone."""
    return f"{bucket}|t"


def day_period(day: date) -> str:
    return day.isoformat()


def month_period(day: date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


def measures(fact: Document, offers: dict[str, Document]) -> Measures:
    """The measures of one referral, seen through the given offers (all of them, or one provision's)."""
    submitted = fact["submitted"]
    at: datetime = submitted["at"]
    counted: Measures = {"submitted": 1}
    offered = [offer["offered_at"] for offer in offers.values() if "offered_at" in offer]
    if offered:
        counted["routed"] = 1
        _duration(counted, "route", at, min(offered))
    accepted = [offer for offer in offers.values() if "accepted_at" in offer]
    if accepted:
        counted["accepted"] = 1
        _duration(
            counted,
            "accept",
            min(offer.get("offered_at", at) for offer in accepted),
            min(offer["accepted_at"] for offer in accepted),
        )
    started = [offer["started_at"] for offer in offers.values() if "started_at" in offer]
    if started:
        counted["started"] = 1
        _duration(counted, "start", at, min(started))
    declines = [offer["declined"] for offer in offers.values() if "declined" in offer]
    if declines:
        counted["declined"] = 1
        for reason in declines:
            _add(counted, f"decline_{reason}", 1)
    before = submitted["profile"]
    for offer in offers.values():
        if "completed_at" not in offer:
            continue
        counted["completed"] = 1
        _add(counted, f"outcome_{offer['outcome']}", 1)
        common = before.keys() & offer["profile_after"].keys()
        if common:
            # Positive = less need: the sum over domains scored both at referral and at completion.
            _add(counted, "needs_change_sum", sum(before[d] - offer["profile_after"][d] for d in common))
            _add(counted, "needs_change_n", 1)
    if fact["unmatched"]:
        counted["unmatched"] = 1
    if fact["escalated"]:
        counted["escalated"] = 1
        counted[f"escalated_{fact['escalated']}"] = 1
    if fact["withdrawn_at"] is not None:
        counted["withdrawn"] = 1
    if fact["rereferral"]:
        counted["rereferred"] = 1
    return counted


def slice_cells(fact: Document | None) -> tuple[str, dict[Slice, SliceCells]] | None:
    """The day this fact counts in, and its cells per slice; None until its submission is known."""
    if fact is None or fact["submitted"] is None:
        return None
    submitted = fact["submitted"]
    offers: dict[str, Document] = fact["offers"]
    sectors: dict[str, set[str]] = {}
    for provision_id, offer in offers.items():
        if "sector" in offer:
            sectors.setdefault(offer["sector"], set()).add(provision_id)
    whole = frozenset(offers)
    slices: list[Slice] = [
        ("all", ""),
        ("locality", submitted["locality"]),
        *(("need", need) for need in submitted["needs"]),
    ]
    groups: dict[str, list[tuple[str, frozenset[str]]]] = {
        "locality": [(submitted["locality"], whole)],
        "setting": [(submitted["setting"], whole)],
        "level": [(submitted["level"], whole)],
        "need": [(need, whole) for need in submitted["needs"]],
        "area": [(area, whole) for area in submitted["areas"]],
        "sector": [(sector, frozenset(ids)) for sector, ids in sectors.items()],
        "provision": [(provision_id, frozenset({provision_id})) for provision_id in offers],
    }
    seen: dict[frozenset[str], Measures] = {}

    def through(ids: frozenset[str]) -> Measures:
        if ids not in seen:
            seen[ids] = measures(fact, {key: offers[key] for key in ids})
        return seen[ids]

    found: dict[Slice, SliceCells] = {}
    for dimension, value in slices:
        cells: SliceCells = {TOTALS: through(whole)}
        for group in SLICE_GROUPS[dimension]:
            for group_value, group_offers in groups[group]:
                cells[(group, group_value)] = through(group_offers)
        found[(dimension, value)] = cells
    return day_period(submitted["at"].date()), found


def changes(before: Document | None, after: Document | None) -> Cells:
    """What to add to the day buckets so they stop counting `before` and count `after` instead.

    Day buckets only: `with_months` adds the month buckets once per batch, which halves
    the fold's work in Python.
    """
    old, new = slice_cells(before), slice_cells(after)
    if old is not None and new is not None and old[0] == new[0]:
        return _days(after, new[0], _delta(old[1], new[1]))  # the usual case: same day, a few measures moved
    total: Cells = {}
    if old is not None:
        accumulate(total, _days(before, old[0], _delta(old[1], {})))
    if new is not None:
        accumulate(total, _days(after, new[0], new[1]))
    return total


def with_months(days: Cells) -> Cells:
    """The day buckets' changes plus the same changes summed into their month buckets."""
    every: Cells = dict(days)
    months: Cells = {}
    for bucket, cells in days.items():
        tenant, _, day, dimension, value = bucket.split("|")
        accumulate(months, {f"{tenant}|m|{day[:7]}|{dimension}|{value}": cells})
    every.update(months)
    return every


def contributions(fact: Document | None) -> Cells:
    """Everything this fact counts in, per bucket (day and month)."""
    return with_months(changes(None, fact))


def _delta(before: dict[Slice, SliceCells], after: dict[Slice, SliceCells]) -> dict[Slice, SliceCells]:
    moved: dict[Slice, SliceCells] = {}
    for key in before.keys() | after.keys():
        old_cells, new_cells = before.get(key, {}), after.get(key, {})
        for cell in old_cells.keys() | new_cells.keys():
            old, new = old_cells.get(cell, {}), new_cells.get(cell, {})
            if old == new:
                continue
            change = {name: new.get(name, 0) - old.get(name, 0) for name in old.keys() | new.keys()}
            change = {name: value for name, value in change.items() if value}
            if change:
                moved.setdefault(key, {})[cell] = change
    return moved


def _days(fact: Document | None, day: str, slices: dict[Slice, SliceCells]) -> Cells:
    assert fact is not None
    return {
        bucket_id(fact["tenant"], "d", day, dimension, value): cells
        for (dimension, value), cells in slices.items()
    }


def accumulate(total: Cells, more: Cells) -> None:
    for bucket, cells in more.items():
        into = total.setdefault(bucket, {})
        for cell, values in cells.items():
            counters = into.setdefault(cell, {})
            for name, value in values.items():
                counters[name] = counters.get(name, 0) + value


def rereferrals(submissions: Iterable[tuple[datetime, str]]) -> dict[str, bool]:
    """Per referral id: was the same child referred before, within the 12 months up to this one?"""
    flags: dict[str, bool] = {}
    earlier: list[datetime] = []
    for at, referral_id in sorted(submissions):
        flags[referral_id] = any(at - previous <= REREFERRAL_WINDOW for previous in earlier)
        earlier.append(at)
    return flags


def _duration(counted: Measures, name: str, start: datetime, end: datetime) -> None:
    counted[f"{name}_minutes"] = max(0, int((end - start).total_seconds() // 60))
    counted[f"{name}_n"] = 1


def _add(counted: Measures, name: str, value: int) -> None:
    counted[name] = counted.get(name, 0) + value
