"""The pulse check over HTTP."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel
from signpost.analytics.pulse.projection import read_pulse
from signpost.shared.service import RuntimeDep

router = APIRouter(prefix="/v1/pulse", tags=["pulse"])


class Outcomes(BaseModel):
    routed: int
    unmatched: int
    escalated_safeguarding: int
    escalated_ehc_assessment: int
    awaiting_decision: int


class Pulse(BaseModel):
    tenant: str
    submitted: int
    by_need_code: dict[str, int]
    by_outcome: Outcomes


@router.get("", response_model=Pulse, summary="Referral counts by need code and by routing outcome")
async def get_pulse(
    runtime: RuntimeDep,
    tenant: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9_-]{1,32}$")] = None,
) -> Pulse:
    tenant = tenant or runtime.settings.tenant
    counts = await read_pulse(runtime=runtime, tenant=tenant)
    outcomes = counts.get("by_outcome", {})
    submitted = counts.get("submitted", 0)
    decided = {name: outcomes.get(name, 0) for name in Outcomes.model_fields if name != "awaiting_decision"}
    return Pulse(
        tenant=tenant,
        submitted=submitted,
        by_need_code=dict(sorted(counts.get("by_need_code", {}).items())),
        by_outcome=Outcomes(
            **decided,
            # An outcome can be counted before its submission on another partition; never go negative.
            awaiting_decision=max(0, submitted - sum(decided.values())),
        ),
    )
