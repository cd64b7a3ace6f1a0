"""Intake's referral endpoints."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request, Response, status
from signpost.intake.referrals.models import ReferralAccepted, ReferralRequest, ReferralView
from signpost.intake.referrals.service import get_referral, submit_referral
from signpost.shared.service import RuntimeDep

router = APIRouter(prefix="/v1/referrals", tags=["referrals"])


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=ReferralAccepted,
    summary="Submit a referral",
    description=(
        "Stores the referral and its `referral.submitted.v1` event together; routing picks "
        "it up from Kafka. A 201 means the referral is kept, even if Kafka is down."
    ),
)
async def post_referral(
    body: ReferralRequest, request: Request, response: Response, runtime: RuntimeDep
) -> ReferralAccepted:
    referral = await submit_referral(
        runtime=runtime, request=body, correlation_id=request.state.correlation_id
    )
    response.headers["Location"] = f"/v1/referrals/{referral['_id']}"
    return ReferralAccepted(
        id=referral["_id"], status=referral["status"], submitted_at=referral["submitted_at"]
    )


@router.get(
    "/{referral_id}",
    response_model=ReferralView,
    summary="A referral's status and the offers made",
    responses={404: {"description": "No such referral in this local area"}},
)
async def read_referral(referral_id: str, runtime: RuntimeDep) -> ReferralView:
    referral = await get_referral(runtime=runtime, referral_id=referral_id)
    if referral is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no referral {referral_id!r}")
    return ReferralView(id=referral.pop("_id"), **referral)
