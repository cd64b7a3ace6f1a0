"""Agencies' endpoints: the offers made to them, and closing the loop on each."""

from __future__ import annotations

from functools import partial
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field
from signpost.intake.offers.models import CompleteRequest, DeclineRequest, NoteRequest, OfferSummary
from signpost.intake.offers.service import MAX_PAGE, list_offers, offer_move
from signpost.intake.referrals.models import ReferralView
from signpost.intake.referrals.service import change_referral
from signpost.intake.referrals.views import CONFLICT, NOT_FOUND, Responses, referral_view
from signpost.shared.auth.dependencies import require_roles
from signpost.shared.auth.principal import Principal, Role
from signpost.shared.auth.ratelimit import rate_limited_write
from signpost.shared.lifecycle import Move, ReferralStatus, allowed_moves
from signpost.shared.service import RuntimeDep

router = APIRouter(tags=["offers"])
AgencyDep = Annotated[Principal, Depends(require_roles(Role.AGENCY))]
OFFER = "/v1/referrals/{referral_id}/offers/{provision_id}"


class OfferPage(BaseModel):
    items: list[OfferSummary]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")


@router.get("/v1/offers", response_model=OfferPage, summary="Offers made to your organisation, newest first")
async def get_offers(
    runtime: RuntimeDep,
    principal: AgencyDep,
    status: ReferralStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 25,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
) -> OfferPage:
    pairs, next_cursor = await list_offers(
        runtime=runtime, principal=principal, status=status, limit=limit, cursor=cursor
    )
    items = [
        OfferSummary(
            **{k: v for k, v in offer.items() if k != "status"},
            status=offer["status"],
            allowed_moves=allowed_moves(ReferralStatus(offer["status"])),
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


async def _move(
    request: Request,
    runtime: RuntimeDep,
    principal: Principal,
    referral_id: str,
    provision_id: str,
    move: Move,
    details: DeclineRequest | CompleteRequest | None = None,
    note: str = "",
) -> ReferralView:
    updated = await change_referral(
        runtime=runtime,
        referral_id=referral_id,
        principal=principal,
        correlation_id=request.state.correlation_id,
        decide=partial(
            offer_move,
            provision_id=provision_id,
            organisation=principal.organisation,
            move=move,
            details=details,
            note=note,
        ),
    )
    return referral_view(updated)


RESPONSES: Responses = {**NOT_FOUND, **CONFLICT}


@router.post(
    f"{OFFER}/accept",
    dependencies=[Depends(rate_limited_write)],
    response_model=ReferralView,
    summary="Accept an offer",
    responses=RESPONSES,
)
async def accept(
    referral_id: str,
    provision_id: str,
    request: Request,
    runtime: RuntimeDep,
    principal: AgencyDep,
    body: NoteRequest | None = None,
) -> ReferralView:
    return await _move(
        request, runtime, principal, referral_id, provision_id, Move.ACCEPT, note=body.note if body else ""
    )


@router.post(
    f"{OFFER}/decline",
    dependencies=[Depends(rate_limited_write)],
    response_model=ReferralView,
    summary="Decline an offer, with a reason",
    responses=RESPONSES,
)
async def decline(
    referral_id: str,
    provision_id: str,
    body: DeclineRequest,
    request: Request,
    runtime: RuntimeDep,
    principal: AgencyDep,
) -> ReferralView:
    return await _move(request, runtime, principal, referral_id, provision_id, Move.DECLINE, details=body)


@router.post(
    f"{OFFER}/start",
    dependencies=[Depends(rate_limited_write)],
    response_model=ReferralView,
    summary="Record that support has started",
    responses=RESPONSES,
)
async def start(
    referral_id: str,
    provision_id: str,
    request: Request,
    runtime: RuntimeDep,
    principal: AgencyDep,
    body: NoteRequest | None = None,
) -> ReferralView:
    return await _move(
        request, runtime, principal, referral_id, provision_id, Move.START, note=body.note if body else ""
    )


@router.post(
    f"{OFFER}/complete",
    dependencies=[Depends(rate_limited_write)],
    response_model=ReferralView,
    summary="Complete support, with the outcome and a needs re-score",
    responses=RESPONSES,
)
async def complete(
    referral_id: str,
    provision_id: str,
    body: CompleteRequest,
    request: Request,
    runtime: RuntimeDep,
    principal: AgencyDep,
) -> ReferralView:
    return await _move(request, runtime, principal, referral_id, provision_id, Move.COMPLETE, details=body)
