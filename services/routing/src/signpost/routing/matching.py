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
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice

from signpost.routing.catalogue.models import WHOLE_AREA, Provision
from signpost.shared.events import Offer, ReferralSubmittedV1
from signpost.shared.vocabulary import BROAD_AREA_OF, LevelOfNeed, NeedCode, NeedsDomain

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
    localities: frozenset[str]

    @classmethod
    def of(cls, provision: Provision) -> Facts:
        return cls(
            provision=provision,
            served=frozenset(n for n in NeedCode if provision.covers(n)),
            levels=frozenset(provision.levels_of_need),
            capacity=provision.capacity.share_free if provision.capacity else 0.5,
            waiting=provision.waiting_weeks,
            localities=frozenset(provision.localities),
        )


IndexKey = tuple[NeedCode, str, LevelOfNeed, int]  # need, locality (or '*'), level, age


@dataclass
class Catalogue:
    """A snapshot of the Local Offer, built once per catalogue change and reused per referral.

    Indexed by (need, locality, level of need, age), so a referral reads only the active
    provisions that already pass those filters (at 10,000 provisions, a few hundred).
    """

    provisions: list[Provision]
    _index: dict[IndexKey, list[Facts]] = field(init=False, default_factory=dict)
    _by_need: dict[NeedCode, list[Facts]] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        for facts in sorted((Facts.of(p) for p in self.provisions), key=lambda f: f.provision.id):
            provision = facts.provision
            for need in facts.served:
                self._by_need.setdefault(need, []).append(facts)
                if not provision.active:
                    continue
                for locality in provision.localities:
                    for level in facts.levels:
                        for age in range(provision.min_age, provision.max_age + 1):
                            self._index.setdefault((need, locality, level, age), []).append(facts)

    def candidates(self, referral: ReferralSubmittedV1) -> list[Facts]:
        """Active provisions covering any of the child's needs that serve the locality, level and age."""
        lists = [
            found
            for need in referral.need_codes
            for locality in (referral.locality, WHOLE_AREA)
            if (found := self._index.get((need, locality, referral.level_of_need, referral.age_years)))
        ]
        if len(lists) == 1:
            return lists[0]
        merged = {facts.provision.id: facts for found in lists for facts in found}
        return [merged[key] for key in sorted(merged)]

    def covering(self, needs: Iterable[NeedCode]) -> Iterator[Facts]:
        """Every provision covering `needs`, by need then id (for explaining who was not chosen)."""
        for need in needs:
            yield from self._by_need.get(need, ())


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
            rules.weight_locality * (1.0 if self.referral.locality in facts.localities else 0.7),
            rules.weight_continuity * (1.0 if provision.id in self.served_before else 0.0),
        )

    def total(self, facts: Facts, needs: frozenset[NeedCode]) -> float:
        return sum(self.parts(facts, needs))

    def score(self, facts: Facts, needs: frozenset[NeedCode]) -> Score:
        values = self.parts(facts, needs)
        return Score(total=sum(values), parts=dict(zip(SCORE_PARTS, values, strict=True)))


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
) -> MatchResult:
    child = _Child.of(referral, rules, served_before)
    needs = list(dict.fromkeys(referral.need_codes))
    eligible = [f for f in catalogue.candidates(referral) if f.provision.sector in referral.sharing_scope]
    everything = frozenset(needs)
    overall = {f.provision.id: child.total(f, everything) for f in eligible}
    uncovered = set(needs)
    chosen: list[tuple[Facts, Score]] = []
    while uncovered and len(chosen) < rules.max_offers:
        options = [f for f in eligible if not f.served.isdisjoint(uncovered)]
        if not options:
            break
        remaining = frozenset(uncovered)
        totals = (
            overall
            if remaining == everything
            else {f.provision.id: child.total(f, remaining) for f in options}
        )
        best = min(options, key=lambda f: (-totals[f.provision.id], f.provision.id))
        chosen.append((best, child.score(best, everything)))
        uncovered -= best.served

    def barred() -> Iterator[Facts]:
        """Provisions covering the needs that cannot take this child: explained, never offered."""
        return (
            f
            for f in catalogue.covering(needs)
            if f.provision.id not in overall and exclusion(f.provision, referral)
        )

    offers = [_offer(facts, facts_score, child, eligible, overall, barred()) for facts, facts_score in chosen]
    return MatchResult(offers=offers, unmet_needs=[n for n in needs if n in uncovered])


def _offer(
    facts: Facts,
    facts_score: Score,
    child: _Child,
    eligible: list[Facts],
    overall: dict[str, float],
    barred: Iterator[Facts],
) -> Offer:
    provision, referral, rules = facts.provision, child.referral, child.rules
    met = [n for n in referral.need_codes if n in facts.served]
    closest = sorted(
        (f for f in eligible if f is not facts and not f.served.isdisjoint(met)),
        key=lambda f: (-overall[f.provision.id], f.provision.id),
    )[: rules.alternatives_explained]
    rivals = [(child.score(f, child.needs), f.provision) for f in closest]
    refused = list(
        islice((f.provision for f in barred if not f.served.isdisjoint(met)), rules.alternatives_explained)
    )
    not_chosen = [f"{p.name}: {_shortfall(facts_score, s, p)}" for s, p in rivals] + [
        f"{p.name}: {exclusion(p, referral)}" for p in refused
    ]
    return Offer(
        provision_id=provision.id,
        provision_name=provision.name,
        organisation=provision.organisation,
        organisation_id=provision.organisation_id,
        sector=provision.sector,
        needs_met=met,
        score=round(facts_score.total, 4),
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
        reasons.append(f"about {provision.waiting_weeks:g} weeks' wait")
    area = "the whole local area" if WHOLE_AREA in provision.localities else referral.locality
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


def _shortfall(winner: Score, rival: Score, provision: Provision) -> str:
    part = max(_SHORTFALL, key=lambda name: (winner.parts[name] - rival.parts[name], name))
    detail = ""
    if part == "capacity" and provision.capacity:
        detail = f" ({provision.capacity.available} of {provision.capacity.maximum})"
    elif part == "waiting" and provision.waiting_weeks is not None:
        detail = f" (about {provision.waiting_weeks:g} weeks)"
    return f"scored {rival.total:.2f} against {winner.total:.2f}, mainly {_SHORTFALL[part]}{detail}"
