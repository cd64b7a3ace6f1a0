"""Matching: a pure, deterministic function of (referral, catalogue snapshot, tenant rules).

1. Hard filters: active, covers at least one of the child's needs, takes the child's
   age, serves the locality, accepts the level of need, and sits in a sector the
   family's sharing scope allows.
2. A score in [0, 1]: fit to the child's needs weighted by the needs profile, free
   capacity, waiting time, locality and continuity (a provision that served the
   child before).
3. A package: the best-scoring provision for the needs still uncovered, again and
   again, so needs that span sectors get a multi-agency package.

Every offer explains why it was chosen and why its close alternatives were not.
Ties break on provision id: the result never depends on catalogue order.

Speed: a `Catalogue` snapshot keeps numpy columns per provision (needs served, free
capacity, waiting time, sector) and an index of rows by (need, locality, level, age),
so a referral scores all its eligible provisions in a few array operations. The bulk
scores are the same floating-point operations, in the same order, as the one scoring
formula (`_Child.parts`) that explains each offer, so they agree to the last bit.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import islice

import numpy as np
import numpy.typing as npt
from signpost.routing.catalogue.models import WHOLE_AREA, Provision
from signpost.shared.events import Offer, ReferralSubmittedV1
from signpost.shared.vocabulary import BROAD_AREA_OF, LevelOfNeed, NeedCode, NeedsDomain, Sector

UNSCORED_NEED_WEIGHT = 2  # a need the profile does not score counts as moderate


@dataclass(frozen=True)
class MatchingRules:
    """A local area's weights and limits (its own configuration)."""

    weight_fit: float = 0.45
    weight_capacity: float = 0.20
    weight_waiting: float = 0.20
    weight_locality: float = 0.10
    weight_continuity: float = 0.05
    max_offers: int = 3
    alternatives_explained: int = 2
    waiting_half_score_weeks: float = 4.0  # a wait this long halves the waiting score


SCORE_PARTS = ("fit", "capacity", "waiting", "locality", "continuity")


@dataclass(frozen=True)
class Score:
    total: float
    parts: dict[str, float]


@dataclass(frozen=True)
class MatchResult:
    offers: list[Offer]
    unmet_needs: list[NeedCode]


@dataclass(frozen=True)
class Facts:
    """What matching needs from a provision, worked out once per catalogue snapshot."""

    provision: Provision
    served: frozenset[NeedCode]
    levels: frozenset[LevelOfNeed]
    capacity: float  # share of places free; unknown counts as half
    waiting: float | None
    localities: frozenset[str]  # case-folded: a practitioner's "ashley" is the catalogue's "Ashley"

    @classmethod
    def of(cls, provision: Provision) -> Facts:
        return cls(
            provision=provision,
            served=frozenset(n for n in NeedCode if provision.covers(n)),
            levels=frozenset(provision.levels_of_need),
            capacity=provision.capacity.share_free if provision.capacity else 0.5,
            waiting=provision.waiting_weeks,
            localities=frozenset(locality.casefold() for locality in provision.localities),
        )


IndexKey = tuple[NeedCode, str, LevelOfNeed, int]  # need, locality (or '*'), level, age
Rows = npt.NDArray[np.intp]
Floats = npt.NDArray[np.float64]
Flags = npt.NDArray[np.bool_]

NEED_ROW = {need: i for i, need in enumerate(NeedCode)}
SECTOR_CODE = {sector: i for i, sector in enumerate(Sector)}


def _unknown_as_nan(weeks: float | None) -> float:
    return np.nan if weeks is None else weeks


def _shape(facts: Facts) -> tuple[object, ...]:
    """What a provision's place in the index depends on; other fields can change in place."""
    provision = facts.provision
    return (
        provision.active,
        facts.served,
        facts.levels,
        facts.localities,
        provision.min_age,
        provision.max_age,
        provision.sector,
    )


class Catalogue:
    """A snapshot of the Local Offer, built once per catalogue change and reused per referral.

    Rows are the provisions in id order, so a row's position is its tie-break. Per row, numpy
    columns hold what scoring reads; an index by (need, locality, level of need, age) holds the
    rows of active provisions that pass those filters (at 10,000 provisions, a few hundred per
    referral).
    """

    def __init__(self, provisions: Iterable[Provision]) -> None:
        self.provisions = tuple(sorted(provisions, key=lambda p: p.id))
        self.facts = [Facts.of(p) for p in self.provisions]
        self._row = {p.id: row for row, p in enumerate(self.provisions)}
        if len(self._row) != len(self.provisions):
            raise ValueError("a catalogue holds each provision id once")
        size = len(self.facts)
        self._serves = np.zeros((len(NEED_ROW), size))  # 1.0 where the row serves the need
        self._served_bits = np.zeros(size, np.int64)  # the same, one bit per need
        self._breadth = np.zeros(size)  # how many needs the row serves
        self._sector = np.zeros(size, np.intp)
        index: dict[IndexKey, list[int]] = {}
        by_need: dict[NeedCode, list[int]] = {}
        for row, facts in enumerate(self.facts):
            provision = facts.provision
            for need in facts.served:
                self._serves[NEED_ROW[need], row] = 1.0
                self._served_bits[row] |= 1 << NEED_ROW[need]
                by_need.setdefault(need, []).append(row)
                if not provision.active:
                    continue
                for locality in facts.localities:
                    for level in facts.levels:
                        for age in range(provision.min_age, provision.max_age + 1):
                            index.setdefault((need, locality, level, age), []).append(row)
            self._breadth[row] = len(facts.served)
            self._sector[row] = SECTOR_CODE[provision.sector]
        self._index = {key: np.array(rows, np.intp) for key, rows in index.items()}
        self._by_need = {need: np.array(rows, np.intp) for need, rows in by_need.items()}
        self._capacity = np.array([f.capacity for f in self.facts], np.float64)
        self._waiting = np.array([_unknown_as_nan(f.waiting) for f in self.facts], np.float64)

    def with_changes(self, changed: Iterable[Provision]) -> Catalogue:
        """A snapshot of active provisions (as routing keeps) with `changed` ones in place.

        Changes to capacity, waiting time or descriptive fields patch copies of the columns
        (the index is shared); anything that moves a provision in the index rebuilds it.
        """
        updates = {p.id: Facts.of(p) for p in changed if p.active or p.id in self._row}
        if not updates:
            return self
        in_place = all(
            facts.provision.active
            and (row := self._row.get(pid)) is not None
            and _shape(facts) == _shape(self.facts[row])
            for pid, facts in updates.items()
        )
        if not in_place:
            merged = {p.id: p for p in self.provisions} | {pid: f.provision for pid, f in updates.items()}
            return Catalogue(p for p in merged.values() if p.active)
        patched = copy.copy(self)
        patched.facts = list(self.facts)
        patched._capacity = self._capacity.copy()
        patched._waiting = self._waiting.copy()
        for pid, facts in updates.items():
            row = self._row[pid]
            patched.facts[row] = facts
            patched._capacity[row] = facts.capacity
            patched._waiting[row] = _unknown_as_nan(facts.waiting)
        patched.provisions = tuple(f.provision for f in patched.facts)
        return patched

    def rows_of(self, provision_ids: Iterable[str]) -> Rows:
        return np.array([row for pid in provision_ids if (row := self._row.get(pid)) is not None], np.intp)

    def eligible(self, referral: ReferralSubmittedV1, excluded: Rows) -> tuple[Rows, Flags]:
        """Rows passing every hard filter (ascending: id order), and whether each names the locality."""
        found = np.zeros(len(self.facts), np.bool_)
        named = np.zeros(len(self.facts), np.bool_)
        wanted = referral.locality.casefold()
        for need in referral.need_codes:
            for locality in (wanted, WHOLE_AREA):
                rows = self._index.get((need, locality, referral.level_of_need, referral.age_years))
                if rows is not None:
                    found[rows] = True
                    if locality == wanted:
                        named[rows] = True
        found[excluded] = False
        rows = np.flatnonzero(found)
        in_scope = np.zeros(len(SECTOR_CODE), np.bool_)
        in_scope[[SECTOR_CODE[s] for s in referral.sharing_scope]] = True
        rows = rows[in_scope[self._sector[rows]]]
        return rows, named[rows]

    def barred(
        self, referral: ReferralSubmittedV1, needs: list[NeedCode], met: list[NeedCode], skip: Flags
    ) -> Iterator[Provision]:
        """Provisions covering `met` that cannot take this child, by need then id, each once."""
        met_bits = sum(1 << NEED_ROW[n] for n in met)
        seen: set[int] = set()
        for need in needs:
            rows = self._by_need.get(need)
            if rows is None:
                continue
            for row in map(int, rows[~skip[rows] & (self._served_bits[rows] & met_bits != 0)]):
                if row not in seen and exclusion(self.provisions[row], referral):
                    seen.add(row)
                    yield self.provisions[row]


def exclusion(provision: Provision, referral: ReferralSubmittedV1) -> str | None:
    """Why a provision that covers a need cannot take this child, or None if it can."""
    if not provision.active:
        return "is no longer active"
    if not provision.min_age <= referral.age_years <= provision.max_age:
        return f"takes ages {provision.min_age}-{provision.max_age}, the child is {referral.age_years}"
    if not provision.serves_locality(referral.locality):
        return f"does not serve {referral.locality}"
    if referral.level_of_need not in provision.levels_of_need:
        return f"does not take {referral.level_of_need.value.replace('_', ' ')} referrals"
    if provision.sector not in referral.sharing_scope:
        return (
            f"is in {provision.sector.value.replace('_', ' ')}, outside what the family agreed to share with"
        )
    return None


def need_weight(referral: ReferralSubmittedV1, need: NeedCode) -> int:
    area = BROAD_AREA_OF[need]
    if area is None:
        return UNSCORED_NEED_WEIGHT
    score = referral.needs_profile.get(NeedsDomain(area.value))
    return UNSCORED_NEED_WEIGHT if score is None else max(score, 1)


@dataclass(frozen=True)
class _Child:
    """The referral as matching scores it: need weights and the parts that do not change per round."""

    referral: ReferralSubmittedV1
    rules: MatchingRules
    served_before: frozenset[str]
    weights: dict[NeedCode, int]
    needs: frozenset[NeedCode]
    _weight_of: dict[frozenset[NeedCode], int] = field(default_factory=dict)

    @classmethod
    def of(cls, referral: ReferralSubmittedV1, rules: MatchingRules, served_before: frozenset[str]) -> _Child:
        weights = {n: need_weight(referral, n) for n in referral.need_codes}
        return cls(referral, rules, served_before, weights, frozenset(weights))

    def weight_of(self, needs: frozenset[NeedCode]) -> int:
        """Total weight of `needs` (asked once per provision per round: worth remembering)."""
        if needs not in self._weight_of:
            self._weight_of[needs] = sum(self.weights[n] for n in needs) or 1
        return self._weight_of[needs]

    def parts(self, facts: Facts, needs: frozenset[NeedCode]) -> tuple[float, float, float, float, float]:
        """(fit, capacity, waiting, locality, continuity), weighted: the one scoring formula."""
        rules, weights = self.rules, self.weights
        covered = 0
        for need in facts.served & needs:
            covered += weights[need]
        # Among services that cover the same needs, the one focused on them fits better
        # (speech and language therapy, rather than autism outreach, for a child with SLCN alone).
        focus = len(facts.served & self.needs) / len(facts.served)
        waiting = (
            0.5 if facts.waiting is None else 1.0 / (1.0 + facts.waiting / rules.waiting_half_score_weeks)
        )
        provision = facts.provision
        return (
            rules.weight_fit * (0.9 * covered / self.weight_of(needs) + 0.1 * focus),
            rules.weight_capacity * facts.capacity,
            rules.weight_waiting * waiting,
            rules.weight_locality * (1.0 if self.referral.locality.casefold() in facts.localities else 0.7),
            rules.weight_continuity * (1.0 if provision.id in self.served_before else 0.0),
        )

    def score(self, facts: Facts, needs: frozenset[NeedCode]) -> Score:
        fit, capacity, waiting, locality, continuity = values = self.parts(facts, needs)
        # Added left to right, exactly as `_Bulk.totals` adds its columns.
        total = fit + capacity + waiting + locality + continuity
        return Score(total=total, parts=dict(zip(SCORE_PARTS, values, strict=True)))


@dataclass(frozen=True)
class _Bulk:
    """The eligible provisions' score parts as columns: `_Child.parts`, one array operation each."""

    child: _Child
    rows: Rows  # eligible rows, ascending (id order)
    serves: Floats  # (child's needs x rows): 1.0 where the row serves the need
    focus: Floats
    fixed: tuple[Floats, Floats, Floats, Floats]  # weighted capacity, waiting, locality, continuity

    @classmethod
    def of(
        cls, child: _Child, catalogue: Catalogue, needs: list[NeedCode], rows: Rows, named: Flags
    ) -> _Bulk:
        rules = child.rules
        serves = catalogue._serves[np.array([NEED_ROW[n] for n in needs], np.intp)[:, None], rows]
        waiting = catalogue._waiting[rows]
        continuity = np.zeros(len(catalogue.facts), np.bool_)
        continuity[catalogue.rows_of(child.served_before)] = True
        return cls(
            child=child,
            rows=rows,
            serves=serves,
            focus=serves.sum(axis=0) / catalogue._breadth[rows],
            fixed=(
                rules.weight_capacity * catalogue._capacity[rows],
                rules.weight_waiting
                * np.where(np.isnan(waiting), 0.5, 1.0 / (1.0 + waiting / rules.waiting_half_score_weeks)),
                np.where(named, rules.weight_locality * 1.0, rules.weight_locality * 0.7),
                np.where(continuity[rows], rules.weight_continuity * 1.0, rules.weight_continuity * 0.0),
            ),
        )

    def covered(self, needs: list[NeedCode], counted: frozenset[NeedCode]) -> Floats:
        """Per row, the total weight of the `counted` needs it serves (0: it serves none)."""
        weights = np.array([self.child.weights[n] if n in counted else 0 for n in needs], np.float64)
        return weights @ self.serves

    def totals(self, covered: Floats, counted: frozenset[NeedCode]) -> Floats:
        fit = self.child.rules.weight_fit * (0.9 * covered / self.child.weight_of(counted) + 0.1 * self.focus)
        capacity, waiting, locality, continuity = self.fixed
        return fit + capacity + waiting + locality + continuity

    def best(self, totals: Floats, allowed: Flags, count: int) -> list[int]:
        """Positions of the `count` highest totals among `allowed`, ties to the lower id."""
        left = np.where(allowed, totals, -np.inf)
        found: list[int] = []
        for _ in range(min(count, len(left))):
            position = int(np.argmax(left))  # the first of equal maxima: the lowest id
            if left[position] == -np.inf:
                break
            found.append(position)
            left[position] = -np.inf
        return found


def score(
    provision: Provision,
    referral: ReferralSubmittedV1,
    *,
    needs: Iterable[NeedCode],
    rules: MatchingRules,
    served_before: frozenset[str] = frozenset(),
) -> Score:
    """How well `provision` suits the child for `needs` (all of them, or those still uncovered)."""
    return _Child.of(referral, rules, served_before).score(Facts.of(provision), frozenset(needs))


def match_referral(
    referral: ReferralSubmittedV1,
    catalogue: Catalogue,
    rules: MatchingRules = MatchingRules(),
    *,
    served_before: frozenset[str] = frozenset(),
    excluded: frozenset[str] = frozenset(),
) -> MatchResult:
    """The offers for `referral`; `excluded` provisions (e.g. already tried) are neither offered
    nor explained, as if they were not in the catalogue."""
    child = _Child.of(referral, rules, served_before)
    needs = list(dict.fromkeys(referral.need_codes))
    left_out = catalogue.rows_of(excluded)
    rows, named = catalogue.eligible(referral, left_out)
    bulk = _Bulk.of(child, catalogue, needs, rows, named)
    everything = frozenset(needs)
    overall = bulk.totals(bulk.covered(needs, everything), everything)
    uncovered = set(needs)
    picks: list[_Pick] = []
    while uncovered and len(picks) < rules.max_offers:
        remaining = frozenset(uncovered)
        covered = bulk.covered(needs, remaining)
        totals = overall if remaining == everything else bulk.totals(covered, remaining)
        best = bulk.best(totals, covered > 0, 1)
        if not best:
            break
        picks.append(_Pick(best[0], remaining, totals))
        uncovered -= catalogue.facts[rows[best[0]]].served

    skip = np.zeros(len(catalogue.facts), np.bool_)  # explained as rivals, or left out
    skip[rows] = True
    skip[left_out] = True
    offered = [pick.position for pick in picks]
    offers = [_offer(pick, offered, bulk, catalogue, needs, skip) for pick in picks]
    return MatchResult(offers=offers, unmet_needs=[n for n in needs if n in uncovered])


@dataclass(frozen=True)
class _Pick:
    """One round of the package: the eligible row chosen, for which needs, and every row's total for them."""

    position: int
    counted: frozenset[NeedCode]
    totals: Floats


def _offer(
    pick: _Pick, offered: list[int], bulk: _Bulk, catalogue: Catalogue, needs: list[NeedCode], skip: Flags
) -> Offer:
    child = bulk.child
    referral, rules = child.referral, child.rules
    facts = catalogue.facts[bulk.rows[pick.position]]
    provision = facts.provision
    met = [n for n in referral.need_codes if n in facts.served]
    # Alternatives for the needs it was picked for, scored as in that round (so none scored
    # higher), and never another offer of the package.
    rivalled = bulk.covered(needs, pick.counted & facts.served) > 0
    rivalled[offered] = False
    closest = [
        catalogue.facts[bulk.rows[p]] for p in bulk.best(pick.totals, rivalled, rules.alternatives_explained)
    ]
    won = child.score(facts, pick.counted)
    named = [] if pick.counted == child.needs else [n for n in needs if n in pick.counted]
    rivals = [(child.score(f, pick.counted), f.provision) for f in closest]
    refused = list(islice(catalogue.barred(referral, needs, met, skip), rules.alternatives_explained))
    not_chosen = [f"{p.name}: {_shortfall(won, s, p, named)}" for s, p in rivals] + [
        f"{p.name}: {exclusion(p, referral)}" for p in refused
    ]
    return Offer(
        provision_id=provision.id,
        provision_name=provision.name,
        organisation=provision.organisation,
        organisation_id=provision.organisation_id,
        sector=provision.sector,
        needs_met=met,
        score=round(child.score(facts, child.needs).total, 4),
        explanation=_why(provision, met, referral, child.served_before),
        not_chosen=not_chosen,
    )


def _why(
    provision: Provision, met: list[NeedCode], referral: ReferralSubmittedV1, served_before: frozenset[str]
) -> str:
    reasons = [f"Covers {', '.join(n.value for n in met)}"]
    if provision.capacity:
        reasons.append(f"{provision.capacity.available} of {provision.capacity.maximum} places free")
    if provision.waiting_weeks is not None:
        wait = "1 week's" if provision.waiting_weeks == 1 else f"{provision.waiting_weeks:g} weeks'"
        reasons.append(f"about {wait} wait")
    named = [name for name in provision.localities if name.casefold() == referral.locality.casefold()]
    area = named[0] if named else "the whole local area"
    reasons.append(f"serves {area}")
    reasons.append(f"takes ages {provision.min_age}-{provision.max_age} (child is {referral.age_years})")
    if provision.id in served_before:
        reasons.append("has supported this child before")
    return "; ".join(reasons) + "."


_SHORTFALL = {
    "fit": "covers less of the child's needs",
    "capacity": "fewer places free",
    "waiting": "a longer wait",
    "locality": "serves the area generally rather than this locality",
    "continuity": "has not supported this child before",
}


def _shortfall(winner: Score, rival: Score, provision: Provision, needs: Sequence[NeedCode]) -> str:
    """Why `rival` lost to `winner`, both scored for the same needs (named unless all the child's)."""
    scored_for = f" for {', '.join(n.value for n in needs)}" if needs else ""
    if rival.total == winner.total:
        return f"scored the same{scored_for} ({rival.total:.2f}): a tie, broken on provision id"
    part = max(_SHORTFALL, key=lambda name: (winner.parts[name] - rival.parts[name], name))
    return (
        f"scored {rival.total:.2f} against {winner.total:.2f}{scored_for}, mainly {_reason(part, provision)}"
    )


def _reason(part: str, provision: Provision) -> str:
    """The part a rival lost most on, in words: a figure it does not state is said to be unknown."""
    capacity, weeks = provision.capacity, provision.waiting_weeks
    if part == "capacity":
        return (
            f"{_SHORTFALL[part]} ({capacity.available} of {capacity.maximum})"
            if capacity
            else "places not stated"
        )
    if part == "waiting":
        if weeks is None:
            return "no waiting time stated"
        return f"{_SHORTFALL[part]} (about {weeks:g} week{'' if weeks == 1 else 's'})"
    return _SHORTFALL[part]
