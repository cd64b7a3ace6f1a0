"""The Local Offer over HTTP: anyone may read it; admins change it."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, status
from pydantic import BaseModel
from signpost.routing.catalogue.models import Provision
from signpost.routing.catalogue.repository import search_provisions
from signpost.routing.catalogue.service import (
    NoSuchProvision,
    ProvisionExists,
    get_provision,
    retire,
    save_provision,
)
from signpost.shared.auth.dependencies import AdminDep
from signpost.shared.auth.ratelimit import rate_limited_write
from signpost.shared.service import RuntimeDep
from signpost.shared.text import SingleLine
from signpost.shared.vocabulary import NeedCode, Sector

router = APIRouter(prefix="/v1/provisions", tags=["catalogue"])
WRITES = [Depends(rate_limited_write)]


class ProvisionPage(BaseModel):
    items: list[Provision]
    total: int
    offset: int
    limit: int


@router.get("", response_model=ProvisionPage, summary="Search the Local Offer")
async def list_catalogue(
    runtime: RuntimeDep,
    need_code: NeedCode | None = None,
    sector: Sector | None = None,
    locality: Annotated[SingleLine | None, Query(max_length=64)] = None,
    active: bool | None = None,
    q: Annotated[
        SingleLine | None, Query(max_length=100, description="Words in the provision's name")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=100_000)] = 0,
) -> ProvisionPage:
    items, total = await search_provisions(
        runtime.db,
        need_code=need_code,
        sector=sector,
        locality=locality,
        active=active,
        text=q,
        limit=limit,
        offset=offset,
    )
    return ProvisionPage(items=items, total=total, offset=offset, limit=limit)


@router.get(
    "/{provision_id}", response_model=Provision, responses={404: {"description": "No such provision"}}
)
async def read_provision(provision_id: str, runtime: RuntimeDep) -> Provision:
    try:
        return await get_provision(runtime=runtime, provision_id=provision_id)
    except NoSuchProvision:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no provision {provision_id!r}") from None


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=Provision,
    dependencies=WRITES,
    summary="Add a provision (publishes provision.changed.v1)",
    responses={409: {"description": "A provision with this id exists"}},
)
async def create_provision(body: Provision, runtime: RuntimeDep, principal: AdminDep) -> Provision:
    try:
        return await save_provision(runtime=runtime, provision=body, change="created", principal=principal)
    except ProvisionExists:
        raise HTTPException(
            status.HTTP_409_CONFLICT, f"provision {body.id!r} exists; PUT to update it"
        ) from None


@router.put(
    "/{provision_id}",
    response_model=Provision,
    dependencies=WRITES,
    summary="Update a provision, e.g. its capacity or waiting time (publishes provision.changed.v1)",
    responses={
        404: {"description": "No such provision"},
        422: {"description": "The body's id differs from the path"},
    },
)
async def update_provision(
    provision_id: str, body: Provision, runtime: RuntimeDep, principal: AdminDep
) -> Provision:
    if body.id != provision_id:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            [{"field": "body.id", "message": f"must be {provision_id!r}, the id in the path"}],
        )
    try:
        return await save_provision(runtime=runtime, provision=body, change="updated", principal=principal)
    except NoSuchProvision:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no provision {provision_id!r}") from None


@router.post(
    "/{provision_id}/retire",
    response_model=Provision,
    dependencies=WRITES,
    summary="Retire a provision: kept for history, never offered again",
    responses={404: {"description": "No such provision"}},
)
async def retire_provision(provision_id: str, runtime: RuntimeDep, principal: AdminDep) -> Provision:
    try:
        return await retire(runtime=runtime, provision_id=provision_id, principal=principal)
    except NoSuchProvision:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no provision {provision_id!r}") from None
