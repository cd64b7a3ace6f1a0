"""What an agency does with an offer made to it: accept, decline, start, complete.

Each offer in a referral's package follows the shared state machine on its own; the
referral's status follows from its offers' (`status_from_offers`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from signpost.intake.offers.keys import offer_key
from signpost.intake.offers.models import CompleteRequest, DeclineRequest
from signpost.intake.paging import newest_first
from signpost.intake.referrals.access import visible_referrals
from signpost.intake.referrals.models import REFERRALS
from signpost.intake.referrals.service import AWAITING_ROUTING, Decision, NotFound, package_status
from signpost.shared.auth.principal import Principal
from signpost.shared.events import (
    OfferAcceptedV1,
    OfferCompletedV1,
    OfferDeclinedV1,
    OfferEvent,
    OfferStartedV1,
)
from signpost.shared.lifecycle import Move, ReferralStatus, apply_move
from signpost.shared.mongo import Document
from signpost.shared.service import Runtime

MAX_PAGE = 100
# What the offer endpoints take: escalating and withdrawing are routing's and the practitioner's.
OFFER_MOVES: frozenset[Move] = frozenset({Move.ACCEPT, Move.DECLINE, Move.START, Move.COMPLETE})


def offer_move(
    referral: Document,
    *,
    provision_id: str,
    organisation: str,
    move: Move,
    details: DeclineRequest | CompleteRequest | None = None,
    note: str = "",
) -> Decision:
    """One agency's move on its own offer; the referral's status follows from its offers'."""
    index = next(
        (
            i
            for i, offer in enumerate(referral["offers"])
            if offer["provision_id"] == provision_id and offer["organisation_id"] == organisation
        ),
        None,
    )
    if index is None:
        raise NotFound(f"{referral['_id']}/{provision_id}")
    offer = referral["offers"][index]
    offers = [*referral["offers"]]
    offers[index] = {
        **offer,
        "status": apply_move(ReferralStatus(offer["status"]), move, OFFER_MOVES, what="offer").value,
    }
    # Routing answers a decline with a replacement offer or the unmet needs; the referral waits for it.
    if move is Move.DECLINE:
        offers[index][AWAITING_ROUTING] = True
    return Decision(
        data=_event_data(move, details, referral_id=referral["_id"], offer=offer, at=datetime.now(UTC)),
        status=package_status(offers),
        changes={"offers": offers},
        note=note or (details.note if details else ""),
    )


def _event_data(
    move: Move,
    details: DeclineRequest | CompleteRequest | None,
    *,
    referral_id: str,
    offer: Document,
    at: datetime,
) -> OfferEvent:
    common: dict[str, Any] = {
        "referral_id": referral_id,
        "provision_id": offer["provision_id"],
        "organisation_id": offer["organisation_id"],
        "at": at,
    }
    if move is Move.DECLINE:
        assert isinstance(details, DeclineRequest)
        return OfferDeclinedV1(**common, reason=details.reason)
    if move is Move.COMPLETE:
        assert isinstance(details, CompleteRequest)
        return OfferCompletedV1(
            **common, outcome=details.outcome, needs_profile_after=details.needs_profile_after
        )
    if move is Move.ACCEPT:
        return OfferAcceptedV1(**common)
    if move is Move.START:
        return OfferStartedV1(**common)
    raise ValueError(f"agencies cannot {move.value} an offer")


async def list_offers(
    *, runtime: Runtime, principal: Principal, status: ReferralStatus | None, limit: int, cursor: str | None
) -> tuple[list[tuple[Document, Document]], str | None]:
    """(referral, offer) pairs for the caller's organisation, newest referral first."""
    query: Document = visible_referrals(principal, tenant=runtime.settings.tenant)
    if status is not None:
        # Only the referrals with an offer to this organisation in this status (offers/keys.py). The
        # key names the organisation, so it narrows the agency rule above; given alone, it is what
        # a query planner (SecantusDB's included) reads through `{tenant, offer_keys, _id}`.
        query = {
            "tenant": runtime.settings.tenant,
            "offer_keys": offer_key(principal.organisation, status.value),
        }
    page, next_cursor = await newest_first(runtime.db[REFERRALS], query, limit=limit, cursor=cursor)
    pairs = [
        (referral, offer)
        for referral in page
        for offer in referral["offers"]
        if offer["organisation_id"] == principal.organisation
        and (status is None or offer["status"] == status.value)
    ]
    return pairs, next_cursor
