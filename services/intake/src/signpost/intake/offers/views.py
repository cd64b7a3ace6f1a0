"""Agencies' endpoints: the offers made to them, and closing the loop on each."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Query, Request
from signpost.intake.offers.models import CompleteRequest, DeclineRequest, NoteRequest, OfferSummary
from signpost.intake.offers.service import MAX_PAGE, OFFER_MOVES, list_offers, offer_move
from signpost.intake.paging import Cursor, Page
from signpost.intake.referrals.models import ReferralView
from signpost.intake.referrals.views import CONFLICT, NOT_FOUND, apply_decision
from signpost.shared.auth.dependencies import require_roles
from signpost.shared.auth.principal import Principal, Role
from signpost.shared.auth.ratelimit import rate_limited_write
from signpost.shared.lifecycle import Move, ReferralStatus, allowed_moves
from signpost.shared.service import RuntimeDep

router = APIRouter(tags=["offers"])
AgencyDep = Annotated[Principal, Depends(require_roles(Role.AGENCY))]
OFFER = "/v1/referrals/{referral_id}/offers/{provision_id}"
Handler = TypeVar("Handler", bound=Callable[..., Awaitable[Any]])


class OfferPage(Page):
    items: list[OfferSummary]


@router.get("/v1/offers", response_model=OfferPage, summary="Offers made to your organisation, newest first")
async def get_offers(
    runtime: RuntimeDep,
    principal: AgencyDep,
    status: ReferralStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 25,
    cursor: Cursor = None,
) -> OfferPage:
    pairs, next_cursor = await list_offers(
        runtime=runtime, principal=principal, status=status, limit=limit, cursor=cursor
    )
    items = [
        OfferSummary(
            **{k: v for k, v in offer.items() if k != "status"},
            status=offer["status"],
            allowed_moves=allowed_moves(ReferralStatus(offer["status"]), OFFER_MOVES),
            referral_id=referral["_id"],
            referral_status=referral["status"],
            age_years=referral["age_years"],
            locality=referral["locality"],
            need_codes=referral["need_codes"],
            needs_profile=referral["needs_profile"],
            level_of_need=referral["level_of_need"],
            urgency=referral["urgency"],
            offered_at=referral["decided_at"],
        )
        for referral, offer in pairs
    ]
    return OfferPage(items=items, next_cursor=next_cursor)


class OfferCall:
    """An agency's call on one offer: who, which referral and provision, and the request."""

    def __init__(
        self, referral_id: str, provision_id: str, request: Request, runtime: RuntimeDep, principal: AgencyDep
    ) -> None:
        self.referral_id, self.provision_id = referral_id, provision_id
        self.request, self.runtime, self.principal = request, runtime, principal

    async def move(
        self, move: Move, *, details: DeclineRequest | CompleteRequest | None = None, note: str = ""
    ) -> ReferralView:
        decide = partial(
            offer_move,
            provision_id=self.provision_id,
            organisation=self.principal.organisation,
            move=move,
            details=details,
            note=note,
        )
        return await apply_decision(self.request, self.runtime, self.principal, self.referral_id, decide)


OfferCallDep = Annotated[OfferCall, Depends()]


def offer_route(action: str, summary: str) -> Callable[[Handler], Handler]:
    return router.post(
        f"{OFFER}/{action}",
        dependencies=[Depends(rate_limited_write)],
        response_model=ReferralView,
        summary=summary,
        responses={**NOT_FOUND, **CONFLICT},
    )


@offer_route("accept", "Accept an offer")
async def accept(call: OfferCallDep, body: NoteRequest | None = None) -> ReferralView:
    return await call.move(Move.ACCEPT, note=body.note if body else "")


@offer_route("decline", "Decline an offer, with a reason")
async def decline(call: OfferCallDep, body: DeclineRequest) -> ReferralView:
    return await call.move(Move.DECLINE, details=body)


@offer_route("start", "Record that support has started")
async def start(call: OfferCallDep, body: NoteRequest | None = None) -> ReferralView:
    return await call.move(Move.START, note=body.note if body else "")


@offer_route("complete", "Complete support, with the outcome and a needs re-score")
async def complete(call: OfferCallDep, body: CompleteRequest) -> ReferralView:
    return await call.move(Move.COMPLETE, details=body)
