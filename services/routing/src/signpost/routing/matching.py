"""Matching: a pure, deterministic function of a referral and a catalogue snapshot."""

from __future__ import annotations

from dataclasses import dataclass

from signpost.routing.catalogue.models import Provision
from signpost.shared.events import Offer, ReferralSubmittedV1
from signpost.shared.vocabulary import NeedCode


@dataclass(frozen=True)
class MatchResult:
    offers: list[Offer]
    unmet_needs: list[NeedCode]


def match_referral(referral: ReferralSubmittedV1, catalogue: list[Provision]) -> MatchResult:
    """Offer, for each of the child's needs, the eligible provision that suits them best.

    Eligible: active, serves the locality, takes the child's age, covers the need.
    Ties break on provision id, so the result never depends on catalogue order.
    """
    eligible = sorted(
        (
            p
            for p in catalogue
            if p.active
            and p.serves_locality(referral.locality)
            and p.min_age <= referral.age_years <= p.max_age
        ),
        key=lambda p: p.id,
    )
    chosen: dict[str, Provision] = {}
    unmet: list[NeedCode] = []
    for need in referral.need_codes:
        if any(need in p.need_codes for p in chosen.values()):
            continue
        candidates = [p for p in eligible if need in p.need_codes]
        if not candidates:
            unmet.append(need)
            continue
        best = min(candidates, key=lambda p: _preference(p, referral))
        chosen[best.id] = best
    offers = [_offer(p, referral) for p in chosen.values()]
    return MatchResult(offers=offers, unmet_needs=unmet)


def _preference(provision: Provision, referral: ReferralSubmittedV1) -> tuple[int, int, str]:
    """Cover most of the child's needs; among equals, the most specific service; then by id."""
    covered = len(set(provision.need_codes) & set(referral.need_codes))
    unrelated = len(set(provision.need_codes) - set(referral.need_codes))
    return (-covered, unrelated, provision.id)


def _offer(provision: Provision, referral: ReferralSubmittedV1) -> Offer:
    met = [need for need in referral.need_codes if need in provision.need_codes]
    area = "the whole local area" if "*" in provision.localities else referral.locality
    return Offer(
        provision_id=provision.id,
        provision_name=provision.name,
        organisation=provision.organisation,
        organisation_id=provision.organisation_id,
        sector=provision.sector,
        needs_met=met,
        explanation=(
            f"Covers {', '.join(met)}; takes ages {provision.min_age}-{provision.max_age} "
            f"(child is {referral.age_years}); serves {area}."
        ),
    )
