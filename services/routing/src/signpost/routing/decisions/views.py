"""Read routing's decision for a referral: admins only.

A decision is one child's needs and offers. Practitioners and agencies follow their referrals
through intake, which knows who may see which; routing does not.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, HTTPException, status
from pydantic import BaseModel, Field
from signpost.routing.decisions.service import get_decision
from signpost.shared.auth.dependencies import AdminDep
from signpost.shared.service import RuntimeDep

router = APIRouter(prefix="/v1/decisions", tags=["decisions"])


class Rerouted(BaseModel):
    type: str
    event_id: str
    decided_at: datetime
    data: dict[str, Any]


class DecisionView(Rerouted):
    referral_id: str
    tenant: str
    reroutes: list[Rerouted] = Field(
        default=[], description="What routing decided after each declined offer, oldest first"
    )


@router.get(
    "/{referral_id}",
    response_model=DecisionView,
    summary="Routing's decision for a referral, with each offer's explanation, and any re-routing after a decline",
    responses={404: {"description": "No decision yet for this referral"}},
)
async def read_decision(referral_id: str, runtime: RuntimeDep, _: AdminDep) -> DecisionView:
    decision = await get_decision(runtime=runtime, referral_id=referral_id)
    if decision is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no decision for referral {referral_id!r}")
    return DecisionView(referral_id=decision["_id"], **{k: v for k, v in decision.items() if k != "_id"})
