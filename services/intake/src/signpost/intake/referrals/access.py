"""Which referrals a caller may see: the rule every read and change goes through."""

from __future__ import annotations

from collections.abc import Callable

from signpost.shared.auth.principal import Principal, Role
from signpost.shared.events import OfferAcceptedV1, ReferralWithdrawnV1
from signpost.shared.lifecycle import ReferralStatus
from signpost.shared.mongo import Document
from signpost.shared.vocabulary import LawfulBasis, Sector, WithdrawReason

SYSTEM_ACTOR = "system"  # a timeline entry's actor_role when the platform, not a person, wrote it


def visible_referrals(principal: Principal, *, tenant: str) -> Document:
    """A MongoDB filter: practitioners see their organisation's referrals, agencies those
    offered to them, admins all; analysts and ops see none (they have analytics)."""
    if principal.role is Role.PRACTITIONER:
        return {"tenant": tenant, "organisation": principal.organisation}
    if principal.role is Role.AGENCY:
        return {"tenant": tenant, "offers.organisation_id": principal.organisation}
    if principal.role is Role.ADMIN:
        return {"tenant": tenant}
    return {"_id": {"$in": []}}


def child_details_refusal(principal: Principal, referral: Document) -> str | None:
    """Why `principal` may not read the child's identifying details, or None if it may.

    The referring organisation may; so may an agency offered the referral whose sector the
    family's sharing scope allows, while that offer is open or was taken up, not after the
    agency declined it nor once the referral was withdrawn before the agency took it up, and
    never once the family withdrew the consent the details were shared on. Nobody else, admins
    included."""
    if principal.role is Role.PRACTITIONER:
        if referral["organisation"] == principal.organisation:
            return None
        return "only the referring organisation's practitioners may read the child's details"
    if principal.role is not Role.AGENCY:
        return "only the referring organisation and the agencies offered the referral may"
    if consent_withdrawn(referral):
        return "the family withdrew the consent its details were shared with agencies on"
    scope = {Sector(sector) for sector in referral["consent"]["sharing_scope"]}
    in_scope = [
        offer
        for offer in referral["offers"]
        if offer["organisation_id"] == principal.organisation and Sector(offer["sector"]) in scope
    ]
    if not in_scope:
        return "the family's sharing scope does not include your organisation's sector"
    statuses = {ReferralStatus(offer["status"]) for offer in in_scope}
    if statuses - {ReferralStatus.DECLINED, ReferralStatus.WITHDRAWN}:
        return None  # an offer open or being worked on
    # A withdrawal marks every open offer withdrawn, those being worked on too: the timeline
    # tells whether this agency had taken one up (then it keeps its reason to know the child).
    if ReferralStatus.WITHDRAWN in statuses and _accepted_by(principal.organisation, referral):
        return None
    return "your organisation's offer was declined or withdrawn before it was taken up"


def consent_withdrawn(referral: Document) -> bool:
    """Withdrawn because the family withdrew its consent, where consent was the basis for
    sharing (another basis, such as a public task, does not rest on the family's agreement)."""
    if referral["consent"].get("lawful_basis") != LawfulBasis.CONSENT.value:
        return False
    reason = referral.get("withdrawn_reason")
    if reason is None:  # withdrawn before the reason was stored: the timeline's note starts with it
        reason = next(
            (
                entry.get("note", "").split(":")[0]
                for entry in referral["timeline"]
                if entry["type"] == ReferralWithdrawnV1.event_type
            ),
            None,
        )
    return reason == WithdrawReason.FAMILY_WITHDREW_CONSENT.value


def _accepted_by(organisation: str, referral: Document) -> bool:
    return any(
        entry["type"] == OfferAcceptedV1.event_type and entry.get("actor_organisation") == organisation
        for entry in referral["timeline"]
    )


def note_reader(principal: Principal, referral: Document) -> Callable[[Document], bool]:
    """Which of the referral's timeline notes `principal` may read. A note is free text that may
    name the child or family, so notes follow the child's details: whoever may read those reads
    every note; anyone else (an agency whose offer was declined, or outside the sharing scope; an
    admin) reads only the platform's own notes and those its organisation wrote."""
    if child_details_refusal(principal, referral) is None:
        return lambda entry: True
    return lambda entry: (
        entry["actor_role"] == SYSTEM_ACTOR or entry["actor_organisation"] == principal.organisation
    )


def withholds_address(principal: Principal, details: Document) -> bool:
    """A confidential address goes to nobody but the referring organisation (who wrote it)."""
    return bool(details.get("confidential_address")) and principal.role is not Role.PRACTITIONER
