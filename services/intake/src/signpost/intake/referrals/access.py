"""Which referrals a caller may see: the rule every read and change goes through."""

from __future__ import annotations

from signpost.shared.auth.principal import Principal, Role
from signpost.shared.mongo import Document
from signpost.shared.vocabulary import Sector


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


def may_read_child_details(principal: Principal, referral: Document) -> bool:
    """Identifying details: the referring organisation, or an agency offered the referral
    whose sector the family's sharing scope allows. Nobody else, admins included."""
    if principal.role is Role.PRACTITIONER:
        return bool(referral["organisation"] == principal.organisation)
    if principal.role is Role.AGENCY:
        scope = {Sector(sector) for sector in referral["consent"]["sharing_scope"]}
        return any(
            offer["organisation_id"] == principal.organisation and Sector(offer["sector"]) in scope
            for offer in referral["offers"]
        )
    return False
