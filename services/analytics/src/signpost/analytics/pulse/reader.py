"""Reading the buckets: which documents a period needs, and their sums per slice and group."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta

from signpost.analytics.projections.cells import bucket_id, day_period, month_period, totals_id, unescape_key
from signpost.analytics.projections.sets import ProjectionSet, find_by_ids
from signpost.analytics.pulse.measures import Counters
from signpost.shared.mongo import Database, Document

Slice = tuple[str, str]  # (dimension, value); ("all", "") is everything
ALL: Slice = ("all", "")


@dataclass(frozen=True)
class Period:
    """Whole UTC days, both ends included."""

    start: date
    end: date

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def previous(self) -> Period:
        """The period of equal length just before this one, for trends."""
        return Period(self.start - timedelta(days=self.days), self.start - timedelta(days=1))

    def buckets(self) -> list[tuple[str, str]]:
        """(grain, period) of the fewest bucket documents covering it: whole months, then days."""
        found: list[tuple[str, str]] = []
        day = self.start
        while day <= self.end:
            month_end = _month_end(day)
            if day.day == 1 and month_end <= self.end:
                found.append(("m", month_period(day)))
                day = month_end + timedelta(days=1)
            else:
                found.append(("d", day_period(day)))
                day += timedelta(days=1)
        return found

    def split(self, interval: str) -> list[Period]:
        """Consecutive sub-periods by day, ISO week (Monday first) or calendar month, clipped to this one."""
        parts: list[Period] = []
        day = self.start
        while day <= self.end:
            if interval == "day":
                last = day
            elif interval == "week":
                last = day + timedelta(days=6 - day.weekday())
            else:
                last = _month_end(day)
            last = min(last, self.end)
            parts.append(Period(day, last))
            day = last + timedelta(days=1)
        return parts


@dataclass
class Reading:
    """The summed counters of one slice over a period: totals, and per group dimension and value."""

    totals: Counters = field(default_factory=dict)
    groups: dict[str, dict[str, Counters]] = field(default_factory=dict)
    # From the totals documents: settings that referred, unmatched referrals by locality.
    referring: set[str] = field(default_factory=set)
    unmatched: Counters = field(default_factory=dict)

    def add(self, document: Document) -> None:
        _add_into(self.totals, document.get("m", {}))
        self.referring.update(unescape_key(setting) for setting in document.get("referring", ()))
        _add_into(self.unmatched, {unescape_key(k): n for k, n in document.get("unmatched", {}).items()})
        for dimension, values in document.get("g", {}).items():
            into = self.groups.setdefault(dimension, {})
            for value, counters in values.items():
                _add_into(into.setdefault(unescape_key(value), {}), counters)

    def group(self, dimension: str, value: str) -> Counters:
        return self.groups.get(dimension, {}).get(value, {})


async def read(
    db: Database,
    target: ProjectionSet,
    *,
    tenant: str,
    periods: Sequence[Period],
    slices: Iterable[Slice],
    groups: Iterable[str] = (),
) -> dict[tuple[Period, Slice], Reading]:
    """One query for every (period, slice) asked: the bucket documents by `_id`, summed."""
    wanted: dict[str, list[tuple[Period, Slice]]] = {}
    slices, groups = list(slices), list(groups)
    for period in periods:
        for grain, name in period.buckets():
            for dimension, value in slices:
                bucket = bucket_id(tenant, grain, name, dimension, value)
                wanted.setdefault(bucket if groups else totals_id(bucket), []).append(
                    (period, (dimension, value))
                )
    projection = {
        "m": 1,
        **({f"g.{group}": 1 for group in groups} if groups else {"referring": 1, "unmatched": 1}),
    }
    readings = {(period, one): Reading() for period in periods for one in slices}
    async for document in find_by_ids(db[target.buckets], list(wanted), projection=projection):
        for key in wanted[document["_id"]]:
            readings[key].add(document)
    return readings


async def read_one(
    db: Database,
    target: ProjectionSet,
    *,
    tenant: str,
    period: Period,
    where: Slice,
    groups: Iterable[str] = (),
) -> Reading:
    readings = await read(db, target, tenant=tenant, periods=[period], slices=[where], groups=groups)
    return readings[(period, where)]


async def tenants(db: Database, target: ProjectionSet) -> list[str]:
    return sorted([document["_id"] async for document in db[target.tenants].find({}, {"_id": 1})])


async def labels(
    db: Database, target: ProjectionSet, *, tenant: str, dimension: str, values: Iterable[str]
) -> dict[str, str]:
    """Display names of provisions and settings (from the catalogue and the register); codes otherwise."""
    collection = {"provision": target.provisions, "setting": target.settings_register}.get(dimension)
    values = list(values)
    if collection is None or not values:
        return {}
    found = db[collection].find({"_id": {"$in": [f"{tenant}|{value}" for value in values]}}, {"name": 1})
    return {document["_id"].split("|", 1)[1]: document["name"] async for document in found}


async def registered_settings(
    db: Database, target: ProjectionSet, *, tenant: str, locality: str | None
) -> set[str]:
    query: Document = {"tenant": tenant, "open": True}
    if locality is not None:
        query["locality"] = locality
    return {
        document["setting_id"]
        async for document in db[target.settings_register].find(query, {"setting_id": 1})
    }


def _add_into(total: Counters, counters: Counters) -> None:
    for name, value in counters.items():
        total[name] = total.get(name, 0) + value


def _month_end(day: date) -> date:
    following = (day.replace(day=28) + timedelta(days=4)).replace(day=1)
    return following - timedelta(days=1)
