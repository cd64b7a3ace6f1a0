"""Admins read the audit trail; nobody can change it."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel
from signpost.intake.audit.service import Purpose, find_records
from signpost.shared.auth.dependencies import AdminDep
from signpost.shared.service import RuntimeDep, refused
from signpost.shared.timestamps import UtcDateTime

router = APIRouter(prefix="/v1/audit", tags=["audit"])


class AuditRecord(BaseModel):
    id: str
    at: datetime
    subject: str
    name: str | None
    role: str
    organisation: str
    referral_id: str
    what: str
    purpose: Purpose | Literal["retention"]  # RETENTION: personal data erased after its retention period


@router.get(
    "",
    response_model=list[AuditRecord],
    summary="Who read which child's identifying details, when and why, and when retention erased them",
)
async def get_audit(
    runtime: RuntimeDep,
    _: AdminDep,
    referral_id: str | None = None,
    subject: str | None = None,
    since: UtcDateTime | None = None,
    until: UtcDateTime | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[AuditRecord]:
    if since and until and since > until:  # would match nothing: say so rather than answer []
        raise refused(f"{since.isoformat()} is after `until` ({until.isoformat()})", "query.since")
    records = await find_records(
        runtime=runtime, referral_id=referral_id, subject=subject, since=since, until=until, limit=limit
    )
    return [
        AuditRecord(id=record.pop("_id"), **{k: v for k, v in record.items() if k != "tenant"})
        for record in records
    ]
