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

from collections.abc import Iterable
from dataclasses import dataclass, field

from signpost.routing.catalogue.models import WHOLE_AREA, Provision
from signpost.shared.events import Offer, ReferralSubmittedV1
from signpost.shared.vocabulary import BROAD_AREA_OF, NeedCode, NeedsDomain

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


@dataclass(frozen=True)
class Score:
    total: float
    parts: dict[str, float]


@dataclass(frozen=True)
class MatchResult:
    offers: list[Offer]
    unmet_needs: list[NeedCode]


@dataclass
class Catalogue:
    """A snapshot indexed by need code, built once per catalogue change, reused per referral."""

    provisions: list[Provision]
    by_need: dict[NeedCode, list[Provision]] = field(init=False)

    def __post_init__(self) -> None:
        ordered = sorted(self.provisions, key=lambda p: p.id)
        self.by_need = {need: [p for p in ordered if p.covers(need)] for need in NeedCode}

    def candidates(self, needs: Iterable[NeedCode]) -> list[Provision]:
        seen: dict[str, Provision] = {}
        for need in needs:
            for provision in self.by_need[need]:
                seen.setdefault(provision.id, provision)
        return [seen[key] for key in sorted(seen)]


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


def score(
    provision: Provision,
    referral: ReferralSubmittedV1,
    *,
    needs: Iterable[NeedCode],
    rules: MatchingRules,
    served_before: frozenset[str] = frozenset(),
) -> Score:
    """How well `provision` suits the child for `needs` (all of them, or those still uncovered)."""
    needs = list(needs)
    total_weight = sum(need_weight(referral, n) for n in needs) or 1
    coverage = sum(need_weight(referral, n) for n in needs if provision.covers(n)) / total_weight
    # Among services that cover the same needs, the one focused on them fits better
    # (speech and language therapy, rather than autism outreach, for a child with SLCN alone).
    served = [n for n in NeedCode if provision.covers(n)]
    focus = sum(1 for n in served if n in referral.need_codes) / len(served)
    fit = 0.9 * coverage + 0.1 * focus
    capacity = provision.capacity.share_free if provision.capacity else 0.5
    waiting = (
        1.0 / (1.0 + provision.waiting_weeks / rules.waiting_half_score_weeks)
        if provision.waiting_weeks is not None
        else 0.5
    )
    locality = 1.0 if referral.locality in provision.localities else 0.7
    continuity = 1.0 if provision.id in served_before else 0.0
    parts = {
        "fit": rules.weight_fit * fit,
        "capacity": rules.weight_capacity * capacity,
        "waiting": rules.weight_waiting * waiting,
        "locality": rules.weight_locality * locality,
        "continuity": rules.weight_continuity * continuity,
    }
    return Score(total=round(sum(parts.values()), 6), parts=parts)


def match_referral(
    referral: ReferralSubmittedV1,
    catalogue: Catalogue,
    rules: MatchingRules = MatchingRules(),
    *,
    served_before: frozenset[str] = frozenset(),
) -> MatchResult:
    needs = list(dict.fromkeys(referral.need_codes))
    candidates = catalogue.candidates(needs)
    barred = {p.id: exclusion(p, referral) for p in candidates}
    eligible = [p for p in candidates if barred[p.id] is None]
    excluded = [p for p in candidates if barred[p.id] is not None]
    uncovered = set(needs)
    chosen: list[tuple[Provision, Score]] = []
    while uncovered and len(chosen) < rules.max_offers:
        options = [p for p in eligible if any(p.covers(n) for n in uncovered)]
        if not options:
            break
        remaining = [n for n in needs if n in uncovered]
        best = min(
            options,
            key=lambda p: (
                -score(p, referral, needs=remaining, rules=rules, served_before=served_before).total,
                p.id,
            ),
        )
        chosen.append((best, score(best, referral, needs=needs, rules=rules, served_before=served_before)))
        uncovered -= {n for n in needs if best.covers(n)}
    offers = [
        _offer(provision, provision_score, referral, rules, eligible, excluded, served_before)
        for provision, provision_score in chosen
    ]
    return MatchResult(offers=offers, unmet_needs=[n for n in needs if n in uncovered])


def _offer(
    provision: Provision,
    provision_score: Score,
    referral: ReferralSubmittedV1,
    rules: MatchingRules,
    eligible: list[Provision],
    excluded: list[Provision],
    served_before: frozenset[str],
) -> Offer:
    met = [n for n in referral.need_codes if provision.covers(n)]
    rivals = sorted(
        (
            (score(p, referral, needs=referral.need_codes, rules=rules, served_before=served_before), p)
            for p in eligible
            if p.id != provision.id and any(p.covers(n) for n in met)
        ),
        key=lambda pair: (-pair[0].total, pair[1].id),
    )[: rules.alternatives_explained]
    barred = [p for p in excluded if any(p.covers(n) for n in met)][: rules.alternatives_explained]
    not_chosen = [f"{p.name}: {_shortfall(provision_score, s, p)}" for s, p in rivals] + [
        f"{p.name}: {exclusion(p, referral)}" for p in barred
    ]
    return Offer(
        provision_id=provision.id,
        provision_name=provision.name,
        organisation=provision.organisation,
        organisation_id=provision.organisation_id,
        sector=provision.sector,
        needs_met=met,
        score=provision_score.total,
        explanation=_why(provision, met, referral, served_before),
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
