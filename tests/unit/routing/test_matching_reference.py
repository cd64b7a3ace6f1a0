"""The fast matcher (index, numpy columns, snapshot patches) against a straightforward reference.

The reference scores every provision one at a time, exactly as the README describes the
matching; the fast path must give the same offers, scores and explanations, tie for tie.
Both follow the scoring formula's floating-point operations in the same order: ties are
decided on exact floats, so a reordered formula would be a different matcher.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from signpost.routing.catalogue.models import WHOLE_AREA, Capacity, Provision
from signpost.routing.matching import (
    SCORE_PARTS,
    Catalogue,
    MatchingRules,
    MatchResult,
    Score,
    _shortfall,
    _why,
    exclusion,
    match_referral,
    need_weight,
)
from signpost.shared.events import Offer, ReferralSubmittedV1
from signpost.shared.vocabulary import NeedCode, Sector

from tests.unit.routing.test_matching import catalogues, provision, provisions, referral, referrals


def reference_match(
    referral: ReferralSubmittedV1,
    catalogue: list[Provision],
    rules: MatchingRules,
    *,
    served_before: frozenset[str] = frozenset(),
    excluded: frozenset[str] = frozenset(),
) -> MatchResult:
    """Filter and score every provision in turn; no index, no arrays, no caching."""
    listed = sorted((p for p in catalogue if p.id not in excluded), key=lambda p: p.id)
    needs = list(dict.fromkeys(referral.need_codes))
    everything = frozenset(needs)
    weights = {n: need_weight(referral, n) for n in needs}

    def served(p: Provision) -> set[NeedCode]:
        return {n for n in NeedCode if p.covers(n)}

    def scored(p: Provision, counted: frozenset[NeedCode]) -> Score:
        covered = sum(weights[n] for n in served(p) & counted)
        focus = len(served(p) & everything) / len(served(p))
        wait = (
            0.5 if p.waiting_weeks is None else 1.0 / (1.0 + p.waiting_weeks / rules.waiting_half_score_weeks)
        )
        parts = (
            rules.weight_fit * (0.9 * covered / (sum(weights[n] for n in counted) or 1) + 0.1 * focus),
            rules.weight_capacity * (p.capacity.share_free if p.capacity else 0.5),
            rules.weight_waiting * wait,
            rules.weight_locality
            * (1.0 if referral.locality.casefold() in {x.casefold() for x in p.localities} else 0.7),
            rules.weight_continuity * (1.0 if p.id in served_before else 0.0),
        )
        fit, capacity, waiting, locality, continuity = parts
        return Score(
            fit + capacity + waiting + locality + continuity, dict(zip(SCORE_PARTS, parts, strict=True))
        )

    eligible = [p for p in listed if served(p) & everything and exclusion(p, referral) is None]
    eligible_ids = {p.id for p in eligible}
    uncovered = set(needs)
    chosen: list[tuple[Provision, frozenset[NeedCode]]] = []  # each with the needs it was picked for
    while uncovered and len(chosen) < rules.max_offers:
        remaining = frozenset(uncovered)
        options = [p for p in eligible if served(p) & remaining]
        if not options:
            break
        best = min(options, key=lambda p: (-scored(p, remaining).total, p.id))
        chosen.append((best, remaining))
        uncovered -= served(best)

    offered = {p.id for p, _ in chosen}
    offers = []
    for p, remaining in chosen:
        met = [n for n in referral.need_codes if n in served(p)]
        # Rivals for the needs it was picked for, scored on the needs of its round.
        rivals = sorted(
            (q for q in eligible if q.id not in offered and served(q) & served(p) & remaining),
            key=lambda q: (-scored(q, remaining).total, q.id),
        )[: rules.alternatives_explained]
        barred: list[Provision] = []
        for q in (q for n in needs for q in listed if n in served(q)):  # by need, then id
            if (
                q.id not in eligible_ids
                and q not in barred
                and served(q) & set(met)
                and exclusion(q, referral)
            ):
                barred.append(q)
        win = scored(p, remaining)
        named = [] if remaining == everything else [n for n in needs if n in remaining]
        offers.append(
            Offer(
                provision_id=p.id,
                provision_name=p.name,
                organisation=p.organisation,
                organisation_id=p.organisation_id,
                sector=p.sector,
                needs_met=met,
                score=round(scored(p, everything).total, 4),
                explanation=_why(p, met, referral, served_before),
                not_chosen=[f"{q.name}: {_shortfall(win, scored(q, remaining), q, named)}" for q in rivals]
                + [f"{q.name}: {exclusion(q, referral)}" for q in barred[: rules.alternatives_explained]],
            )
        )
    return MatchResult(offers=offers, unmet_needs=[n for n in needs if n in uncovered])


# Coarse values and twins (the same provision under another id), so that exact ties,
# decided on provision id, are common.
tied_provisions = st.builds(
    lambda base, cap, wait: base.model_copy(update={"capacity": cap, "waiting_weeks": wait}),
    provisions,
    st.sampled_from([None, Capacity(available=0, maximum=10), Capacity(available=5, maximum=10)]),
    st.sampled_from([None, 0.0, 4.0, 8.0]),
)
mixed_catalogues = st.builds(
    lambda listed, twins: listed + [p.model_copy(update={"id": f"{p.id}-twin"}) for p in listed[:twins]],
    st.lists(st.one_of(provisions, tied_provisions), max_size=40, unique_by=lambda p: p.id),
    st.integers(0, 10),
)
rules_strategy = st.builds(
    MatchingRules,
    weight_fit=st.sampled_from([0.45, 0.2, 0.0]),
    weight_capacity=st.sampled_from([0.20, 0.35]),
    weight_waiting=st.sampled_from([0.20, 0.05]),
    weight_locality=st.sampled_from([0.10, 0.3]),
    weight_continuity=st.sampled_from([0.05, 0.0]),
    max_offers=st.integers(1, 4),
    alternatives_explained=st.integers(0, 3),
    waiting_half_score_weeks=st.sampled_from([4.0, 1.5]),
)


@settings(max_examples=400, deadline=None)
@given(
    child=referrals,
    catalogue=mixed_catalogues,
    rules=rules_strategy,
    picks=st.lists(st.integers(0, 999), max_size=6),
    excluded_picks=st.lists(st.integers(0, 999), max_size=4),
)
def test_the_fast_matcher_agrees_with_the_reference(
    child: ReferralSubmittedV1,
    catalogue: list[Provision],
    rules: MatchingRules,
    picks: list[int],
    excluded_picks: list[int],
) -> None:
    ids = [p.id for p in catalogue] or ["none"]
    served_before = frozenset(ids[i % len(ids)] for i in picks) | {"not-in-the-catalogue"}
    excluded = frozenset(ids[i % len(ids)] for i in excluded_picks)
    fast = match_referral(child, Catalogue(catalogue), rules, served_before=served_before, excluded=excluded)
    assert fast == reference_match(child, catalogue, rules, served_before=served_before, excluded=excluded)


changes = st.lists(
    st.one_of(
        # capacity and waiting time: patched in place
        st.tuples(st.just("numbers"), st.integers(0, 999), tied_provisions),
        # anything else, a new provision, or a retirement: rebuilt
        st.tuples(st.just("replace"), st.integers(0, 999), provisions),
    ),
    max_size=5,
)


@settings(max_examples=200, deadline=None)
@given(child=referrals, catalogue=catalogues, edits=changes)
def test_a_patched_snapshot_matches_like_a_fresh_one(
    child: ReferralSubmittedV1, catalogue: list[Provision], edits: list[tuple[str, int, Provision]]
) -> None:
    active = [p for p in catalogue if p.active]
    snapshot = Catalogue(active)
    current = {p.id: p for p in active}
    for kind, pick, template in edits:
        if kind == "numbers" and active:
            target = active[pick % len(active)]
            changed = target.model_copy(
                update={"capacity": template.capacity, "waiting_weeks": template.waiting_weeks}
            )
        else:
            changed = template
        snapshot = snapshot.with_changes([changed])
        current[changed.id] = changed
    fresh = Catalogue(p for p in current.values() if p.active)
    assert snapshot.provisions == fresh.provisions
    assert match_referral(child, snapshot) == match_referral(child, fresh)


def test_a_capacity_change_patches_without_rebuilding_the_index() -> None:
    base = Provision(
        id="p", name="p", organisation="o", organisation_id="o", sector=Sector.HEALTH,
        need_codes=[NeedCode.SEMH], min_age=0, max_age=25, localities=[WHOLE_AREA],
        capacity=Capacity(available=1, maximum=10),
    )  # fmt: skip
    snapshot = Catalogue([base])
    fuller = snapshot.with_changes([base.model_copy(update={"capacity": Capacity(available=9, maximum=10)})])
    assert fuller._index is snapshot._index  # shared, not rebuilt
    assert snapshot.provisions[0].capacity == Capacity(
        available=1, maximum=10
    )  # the old snapshot is untouched
    retired = fuller.with_changes([base.model_copy(update={"active": False})])
    assert retired.provisions == ()


def test_a_barred_provision_covering_two_needs_is_explained_once() -> None:
    catalogue = Catalogue(
        [
            provision("ok", NeedCode.ASD, NeedCode.SLCN),
            provision("young", NeedCode.ASD, NeedCode.SLCN, ages=(0, 3)),
        ]
    )
    offer = match_referral(referral(NeedCode.ASD, NeedCode.SLCN, age=8), catalogue).offers[0]
    assert offer.not_chosen == ["young: takes ages 0-3, the child is 8"]
