"""Read the catalogue routing matches against."""

from __future__ import annotations

from fastapi import APIRouter
from signpost.routing.catalogue.models import Provision
from signpost.routing.catalogue.repository import list_provisions
from signpost.shared.service import RuntimeDep

router = APIRouter(prefix="/v1/provisions", tags=["catalogue"])


@router.get("", response_model=list[Provision], summary="The Local Offer provisions routing matches against")
async def get_provisions(runtime: RuntimeDep, active_only: bool = False) -> list[Provision]:
    return await list_provisions(runtime.db, active_only=active_only)
