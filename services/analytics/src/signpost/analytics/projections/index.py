"""The referral facts in memory, by column: what every pulse query sums (pure).

The facts in MongoDB are the projection (folded from the log, rebuilt from it); this
index is a copy each analytics process derives from them (see follower.py) and sums
with numpy. Pre-aggregated buckets in MongoDB were tried first: a referral counts in a
day and a month, in every slice and breakdown it belongs to, so each event rewrote
dozens of counters across a dozen documents, which held a pure-Python MongoDB near
1,000 events/s, and a year's breakdown read tens of thousands of fields per query.

Each fact gives rows in three views, so an offer dimension counts only its offers, as
`counters.measures` defines: the referral through all its offers; through the offers
of each sector it was offered in; and through each provision's offer.

Re-referral (the same child within 12 months before) is worked out here, across facts,
from each fact's pseudonymous child reference: a referral arriving late can flag one
submitted after it, which only means setting one counter on that referral's rows.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from datetime import date, datetime
from typing import Any

import numpy as np
import numpy.typing as npt
from signpost.analytics.projections.counters import REREFERRED, Counters, measures, rereferrals
from signpost.shared.mongo import Document

Slice = tuple[str, str]  # (dimension, value): a filter
Days = tuple[date, date]  # first and last day (UTC), both included

SINGLE_DIMENSIONS = ("locality", "setting", "level")  # one value per referral
SET_DIMENSIONS = ("need", "area")  # several per referral: a bitmask column each
OFFER_DIMENSIONS = ("sector", "provision")  # one value per row of the sector and provision views
DIMENSIONS = ("locality", "setting", "need", "area", "level", "sector", "provision")
MAX_SET_VALUES = 63  # bits of an int64 mask; the census has 13 need codes and 4 broad areas

_ATTRIBUTES = ("tenant", "day", *SINGLE_DIMENSIONS, *SET_DIMENSIONS, *OFFER_DIMENSIONS)
_VIEWS = ("referral", "sector", "provision")
_NONE = -1  # an offer seen before its routing says which sector it is in
Rows = npt.NDArray[np.intp]
Coded = tuple[Rows, npt.NDArray[np.int32]]  # counter columns and their values


class _Codes:
    """The values of one dimension as small integers, in order of first sight."""

    def __init__(self, limit: int | None = None) -> None:
        self.values: list[str] = []
        self._codes: dict[str, int] = {}
        self._limit = limit

    def code(self, value: str) -> int:
        found = self._codes.get(value)
        if found is None:
            if self._limit is not None and len(self.values) == self._limit:
                raise ValueError(f"more than {self._limit} distinct values (new: {value!r})")
            found = self._codes[value] = len(self.values)
            self.values.append(value)
        return found

    def find(self, value: str) -> int | None:
        return self._codes.get(value)


class _Table:
    """The rows of one view: attribute columns, one column per counter, and which rows are live.

    A fact that changes has its rows killed and appended anew; dead rows are dropped when
    they outnumber the live ones.
    """

    def __init__(self) -> None:
        self.size = 0
        self.dead = 0
        self.attributes = {name: np.zeros(1024, np.int64) for name in _ATTRIBUTES}
        self.counters = np.zeros((0, 1024), np.int32)
        self.live = np.zeros(1024, bool)

    def append(self, attributes: dict[str, int], counters: Coded) -> int:
        if self.size == self.live.size:
            self._resize(self.size * 2)
        columns, values = counters
        self.widen(int(columns.max(initial=-1)) + 1)
        row = self.size
        for name, value in attributes.items():
            self.attributes[name][row] = value
        self.counters[columns, row] = values
        self.live[row] = True
        self.size += 1
        return row

    def widen(self, width: int) -> None:
        """Room for counter columns up to `width` (a few more, as new counter names come in ones)."""
        if width > self.counters.shape[0]:
            grown = np.zeros((width + 8, self.live.size), np.int32)
            grown[: self.counters.shape[0]] = self.counters
            self.counters = grown

    def kill(self, row: int) -> None:
        self.live[row] = False
        self.counters[:, row] = 0
        self.dead += 1

    def compact(self) -> Rows:
        """Drop the dead rows; returns each old row's new index (-1 for the dropped)."""
        keep = np.flatnonzero(self.live[: self.size])
        moved = np.full(self.size, -1, np.intp)
        moved[keep] = np.arange(keep.size)
        capacity = max(1024, keep.size * 2)
        for name, column in self.attributes.items():
            self.attributes[name] = _sized(column[keep], capacity)
        self.counters = np.concatenate(
            [self.counters[:, keep], np.zeros((self.counters.shape[0], capacity - keep.size), np.int32)],
            axis=1,
        )
        self.live = _sized(self.live[keep], capacity)
        self.size, self.dead = int(keep.size), 0
        return moved

    def nbytes(self) -> int:
        return sum(c.nbytes for c in self.attributes.values()) + self.counters.nbytes + self.live.nbytes

    def _resize(self, capacity: int) -> None:
        for name, column in self.attributes.items():
            self.attributes[name] = _sized(column, capacity)
        self.counters = np.concatenate(
            [self.counters, np.zeros((self.counters.shape[0], capacity - self.live.size), np.int32)], axis=1
        )
        self.live = _sized(self.live, capacity)


# A fact's version and its rows, each (view, row). A plain tuple of numbers and strings, which
# Python's garbage collector stops tracking (a NamedTuple it tracks for good): a collection walks
# every tracked object, and the index holds one entry per referral.
_Entry = tuple[int, tuple[tuple[str, int], ...]]


class FactIndex:
    """Every fact of one projection set, summable by tenant, days, filters and one group-by."""

    def __init__(self) -> None:
        self._codes = {
            name: _Codes(MAX_SET_VALUES if name in SET_DIMENSIONS else None)
            for name in _ATTRIBUTES
            if name != "day"
        }
        self._counter_names = _Codes()
        self._tables = {view: _Table() for view in _VIEWS}
        self._facts: dict[str, _Entry] = {}
        # Per tenant and child: when each of its referrals was submitted; and which are re-referrals.
        self._children: dict[tuple[str, str], tuple[tuple[datetime, str], ...]] = {}  # tuples: see _Entry
        self._rereferred: set[str] = set()

    def __len__(self) -> int:
        return len(self._facts)

    def __contains__(self, fact_id: object) -> bool:
        return fact_id in self._facts

    def nbytes(self) -> int:
        return sum(table.nbytes() for table in self._tables.values())

    def upsert(self, fact: Document) -> None:
        """Count `fact` as it now is. A fact is written with a rising `version`, so a copy no
        newer than the one counted (the change stream bringing back what the fold handed over
        already, or catching up after it) changes nothing."""
        version = int(fact.get("version", 0))
        entry = self._facts.get(fact["_id"])
        if entry is not None:
            counted, rows = entry
            if version <= counted:
                return
            for view, row in rows:
                self._tables[view].kill(row)
        self._note_child(fact)
        self._facts[fact["_id"]] = (version, tuple(self._append(fact)))
        for view, table in self._tables.items():
            if table.dead > max(4096, table.size - table.dead):
                self._compact(view)

    def totals(
        self,
        *,
        tenant: str,
        periods: Sequence[Days | None],
        where: Sequence[Slice] = (),
        names: Collection[str] | None = None,
    ) -> list[Counters]:
        """The counters summed over each period (None: all time) for the rows matching `where`."""
        table = self._tables[_view(dimension for dimension, _ in where)]
        rows = self._select(table, tenant=tenant, days=_span(periods), where=where)
        columns = self._columns(table, names)
        day = table.attributes["day"][rows]
        found = []
        for period in periods:
            chosen = rows if period is None else rows[_within(day, period)]
            summed = table.counters[np.ix_(columns, chosen)].sum(axis=1, dtype=np.int64)
            found.append(self._counters(summed, columns))
        return found

    def breakdown(
        self,
        *,
        tenant: str,
        days: Days | None,
        where: Sequence[Slice],
        group_by: str,
        names: Collection[str] | None = None,
    ) -> dict[str, Counters]:
        """The counters per value of `group_by` (sector and provision: through their offers only)."""
        table = self._tables[_view([group_by, *(dimension for dimension, _ in where)])]
        rows = self._select(table, tenant=tenant, days=days, where=where)
        columns = self._columns(table, names)
        counters = table.counters[np.ix_(columns, rows)]
        codes = self._codes[group_by]
        found: dict[str, Counters] = {}
        if group_by in SET_DIMENSIONS:
            bits = table.attributes[group_by][rows]
            for code, value in enumerate(codes.values):
                summed = counters[:, (bits & (1 << code)) != 0].sum(axis=1, dtype=np.int64)
                found[value] = self._counters(summed, columns)
        else:
            groups = table.attributes[group_by][rows]
            known = groups != _NONE
            groups, counters = groups[known], counters[:, known]
            sums = [np.bincount(groups, weights=column, minlength=len(codes.values)) for column in counters]
            for code, value in enumerate(codes.values):
                found[value] = self._counters([int(column[code]) for column in sums], columns)
        return {value: one for value, one in found.items() if one}

    def referring(self, *, tenant: str, days: Days | None, where: Sequence[Slice]) -> set[str]:
        """The settings that referred in the period (coverage)."""
        table = self._tables["referral"]
        rows = self._select(table, tenant=tenant, days=days, where=where)
        settings = self._codes["setting"].values
        return {settings[code] for code in np.unique(table.attributes["setting"][rows])}

    def _note_child(self, fact: Document) -> None:
        """Add a newly submitted referral to its child's, and re-flag the referrals indexed already."""
        submitted = fact.get("submitted")
        if submitted is None or not submitted["child_ref"]:
            return
        child = (fact["tenant"], submitted["child_ref"])
        arrival = (submitted["at"], fact["_id"])
        referrals = self._children.get(child, ())
        if arrival in referrals:
            return
        referrals = self._children[child] = (*referrals, arrival)
        for other, flag in rereferrals(referrals).items():
            if flag == (other in self._rereferred):
                continue
            (self._rereferred.add if flag else self._rereferred.discard)(other)
            entry = self._facts.get(other)
            if entry is not None and other != fact["_id"]:  # this fact's own rows are yet to be added
                self._set(entry, REREFERRED, int(flag))

    def _set(self, entry: _Entry, counter: str, value: int) -> None:
        """One counter of every row of a fact: a re-referral counts as one in every view."""
        column = self._counter_names.code(counter)
        _, rows = entry
        for view, row in rows:
            table = self._tables[view]
            table.widen(column + 1)
            table.counters[column, row] = value

    def _append(self, fact: Document) -> list[tuple[str, int]]:
        """The fact's rows in each view; none until its submission says where and when it counts."""
        submitted = fact.get("submitted")
        if submitted is None:
            return []
        fact = {**fact, "rereferral": fact["_id"] in self._rereferred}
        offers: dict[str, Document] = fact["offers"]
        code = self._code
        referral = {
            "tenant": code("tenant", fact["tenant"]),
            "day": submitted["at"].date().toordinal(),
            "locality": code("locality", submitted["locality"]),
            "setting": code("setting", submitted["setting"]),
            "level": code("level", submitted["level"]),
            "need": sum(1 << code("need", need) for need in set(submitted["needs"])),
            "area": sum(1 << code("area", area) for area in set(submitted["areas"])),
            "sector": _NONE,
            "provision": _NONE,
        }
        counted: dict[frozenset[str], Coded] = {}

        def through(chosen: Iterable[str]) -> Coded:
            """The fact's counters through these offers; one offer's are usually every offer's."""
            key = frozenset(chosen)
            if key not in counted:
                counted[key] = self._coded(measures(fact, {k: offers[k] for k in key}))
            return counted[key]

        tables = self._tables
        rows = [("referral", tables["referral"].append(referral, through(offers)))]
        sectors: dict[str, list[str]] = {}
        for provision_id, offer in offers.items():
            if "sector" in offer:
                sectors.setdefault(offer["sector"], []).append(provision_id)
        for sector, chosen in sectors.items():
            row = tables["sector"].append({**referral, "sector": code("sector", sector)}, through(chosen))
            rows.append(("sector", row))
        for provision_id, offer in offers.items():
            attributes = {
                **referral,
                "sector": code("sector", offer["sector"]) if "sector" in offer else _NONE,
                "provision": code("provision", provision_id),
            }
            rows.append(("provision", tables["provision"].append(attributes, through([provision_id]))))
        return rows

    def _code(self, dimension: str, value: str) -> int:
        return self._codes[dimension].code(value)

    def _coded(self, counted: Counters) -> Coded:
        code = self._counter_names.code
        return (
            np.fromiter((code(name) for name in counted), np.intp, len(counted)),
            np.fromiter(counted.values(), np.int32, len(counted)),
        )

    def _compact(self, view: str) -> None:
        moved = self._tables[view].compact()
        for key, (version, rows) in self._facts.items():
            self._facts[key] = (version, tuple((v, int(moved[row]) if v == view else row) for v, row in rows))

    def _select(self, table: _Table, *, tenant: str, days: Days | None, where: Sequence[Slice]) -> Rows:
        tenant_code = self._codes["tenant"].find(tenant)
        if tenant_code is None:
            return np.zeros(0, np.intp)
        mask = table.live[: table.size] & (table.attributes["tenant"][: table.size] == tenant_code)
        if days is not None:
            mask &= _within(table.attributes["day"][: table.size], days)
        for dimension, value in where:
            code = self._codes[dimension].find(value)
            if code is None:
                return np.zeros(0, np.intp)
            column = table.attributes[dimension][: table.size]
            mask &= (column & (1 << code)) != 0 if dimension in SET_DIMENSIONS else column == code
        return np.flatnonzero(mask)

    def _columns(self, table: _Table, names: Collection[str] | None) -> Rows:
        """The table's columns of these counters; a counter it has never had a row with is all zero."""
        width = table.counters.shape[0]
        if names is None:
            return np.arange(min(width, len(self._counter_names.values)))
        codes = (self._counter_names.find(name) for name in names)
        return np.array([code for code in codes if code is not None and code < width], np.intp)

    def _counters(self, sums: Iterable[int], columns: Rows) -> Counters:
        names = self._counter_names.values
        return {names[column]: int(value) for column, value in zip(columns, sums, strict=True) if value}


def _view(dimensions: Iterable[str]) -> str:
    """The provision view when a provision is asked about, else the sector view for a sector."""
    chosen = set(dimensions)
    return "provision" if "provision" in chosen else "sector" if "sector" in chosen else "referral"


def _span(periods: Sequence[Days | None]) -> Days | None:
    if not periods or any(period is None for period in periods):
        return None
    return min(p[0] for p in periods if p), max(p[1] for p in periods if p)


def _within(day: npt.NDArray[np.int64], days: Days) -> npt.NDArray[np.bool_]:
    first, last = days
    return (day >= first.toordinal()) & (day <= last.toordinal())


def _sized(column: npt.NDArray[Any], capacity: int) -> npt.NDArray[Any]:
    grown = np.zeros(capacity, column.dtype)
    grown[: min(column.size, capacity)] = column[:capacity]
    return grown
