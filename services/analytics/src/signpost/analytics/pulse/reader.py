"""Periods of days, and the names and registers the pulse reads beside the index of facts."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta

from signpost.analytics.projections.index import Days
from signpost.analytics.projections.sets import ProjectionSet
from signpost.shared.mongo import Database, Document


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

    @property
    def span(self) -> Days:
        return self.start, self.end

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


def _month_end(day: date) -> date:
    following = (day.replace(day=28) + timedelta(days=4)).replace(day=1)
    return following - timedelta(days=1)
