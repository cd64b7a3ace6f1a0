"""The Local Offer over HTTP: anyone may read it; admins change it."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Header, HTTPException, Query, Response, status
from pydantic import BaseModel
from signpost.routing.catalogue.models import CLOCK_SKEW_MINUTES, Provision, ahead_of_now
from signpost.routing.catalogue.repository import search_provisions
from signpost.routing.catalogue.service import (
    NoSuchProvision,
    ProvisionExists,
    RetiredByUpdate,
    StaleCapacity,
    StaleProvision,
    get_versioned,
    retire,
    save_provision,
    save_versioned,
)
from signpost.shared.auth.dependencies import AdminDep
from signpost.shared.auth.ratelimit import rate_limited_write
from signpost.shared.service import RuntimeDep, refused
from signpost.shared.text import SingleLine
from signpost.shared.vocabulary import NeedCode, Sector

router = APIRouter(prefix="/v1/provisions", tags=["catalogue"])
WRITES = [Depends(rate_limited_write)]
ETAG_HELP = (
    "The provision's version: every change to it moves it on, routing's own (a place held or given "
    "back, a waiting time learnt) included. Send it back as If-Match on PUT."
)


_OUR_TAG = re.compile(r'"([0-9]{1,18})"')


def etag(version: int) -> str:
    return f'"{version}"'


def versions_read(if_match: str | None) -> frozenset[int] | None:
    """The versions an If-Match names (None: no condition; `*` matches any stored provision). Any
    other tag, a weak one included (If-Match compares strongly), could never match: a mistake to
    name (422), not a provision that has changed since (412)."""
    if if_match is None or if_match.strip() == "*":
        return None
    versions: set[int] = set()
    for tag in if_match.split(","):
        if (ours := _OUR_TAG.fullmatch(tag.strip())) is None:
            raise refused(
                'must be ETags this API gave, such as "7" (quotes included), or *', "header.If-Match"
            )
        versions.add(int(ours[1]))
    return frozenset(versions)


def _refuse_future_capacity(body: Provision) -> None:
    if ahead_of_now(body.capacity.updated if body.capacity else None):
        raise refused(
            f"is more than {CLOCK_SKEW_MINUTES} minutes ahead of now: send when the places were counted",
            "body.capacity.updated",
        )


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
    "/{provision_id}",
    response_model=Provision,
    responses={
        200: {"headers": {"ETag": {"description": ETAG_HELP, "schema": {"type": "string"}}}},
        404: {"description": "No such provision"},
    },
)
async def read_provision(provision_id: str, runtime: RuntimeDep, response: Response) -> Provision:
    try:
        found = await get_versioned(runtime=runtime, provision_id=provision_id)
    except NoSuchProvision:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no provision {provision_id!r}") from None
    response.headers["ETag"] = etag(found.version)
    return found.provision


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=Provision,
    dependencies=WRITES,
    summary="Add a provision (publishes provision.changed.v1)",
    responses={409: {"description": "A provision with this id exists"}},
)
async def create_provision(body: Provision, runtime: RuntimeDep, principal: AdminDep) -> Provision:
    _refuse_future_capacity(body)
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
        200: {"headers": {"ETag": {"description": ETAG_HELP, "schema": {"type": "string"}}}},
        404: {"description": "No such provision"},
        409: {"description": "The body would retire the provision (POST .../retire does that)"},
        412: {
            "description": "If-Match names a version the provision has moved on from, or the body's "
            "capacity.updated is older than the stored capacity's (GET it again)"
        },
        422: {
            "description": "The body's id differs from the path, it leaves a field out, its "
            "capacity.updated is in the future, or If-Match holds a tag this API never gave"
        },
    },
)
async def update_provision(
    provision_id: str,
    body: Annotated[
        Provision,
        Body(
            description="The whole provision, as GET answers it and edited: every field is required "
            "(null for none), since a field left out would otherwise be reset to its default; "
            "`active` true, or false only if it is retired already (POST .../retire retires; "
            "`active: true` brings a retired provision back)."
        ),
    ],
    runtime: RuntimeDep,
    principal: AdminDep,
    response: Response,
    if_match: Annotated[
        str | None,
        Header(
            description="The ETag of the GET the body was edited from: the change is refused (412) "
            "if the provision has changed since, e.g. routing held a place, so a figure read "
            "before does not overwrite it. Without it the body is stored as given, unless its "
            "capacity.updated is older than the stored one's (412 too). Only ETags this API "
            "gave (or *) are taken: any other tag is refused (422)."
        ),
    ] = None,
) -> Provision:
    if body.id != provision_id:
        raise refused(f"must be {provision_id!r}, the id in the path", "body.id")
    if missing := [f"body.{name}" for name in Provision.model_fields if name not in body.model_fields_set]:
        raise refused("Field required: a PUT replaces the whole provision, null for none", *missing)
    _refuse_future_capacity(body)
    try:
        saved = await save_versioned(
            runtime=runtime,
            provision=body,
            change="updated",
            principal=principal,
            read=versions_read(if_match),
        )
    except NoSuchProvision:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no provision {provision_id!r}") from None
    except RetiredByUpdate:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"a PUT does not retire a provision: POST /v1/provisions/{provision_id}/retire does",
        ) from None
    except StaleProvision as stale:
        raise HTTPException(
            status.HTTP_412_PRECONDITION_FAILED,
            f"provision {provision_id!r} has changed since the version you read (now {etag(stale.version)}),"
            " e.g. a place held or given back: GET it again and make your change to that",
            headers={"ETag": etag(stale.version)},
        ) from None
    except StaleCapacity as stale:
        raise HTTPException(
            status.HTTP_412_PRECONDITION_FAILED,
            f"the capacity sent is as of {body.capacity.updated if body.capacity else None}, but provision"
            f" {provision_id!r}'s changed at {stale.updated.isoformat()}, e.g. a place held or given back:"
            " GET it again and make your change to that (or send capacity.updated as now, or none, to"
            " state the figure afresh)",
        ) from None
    response.headers["ETag"] = etag(saved.version)
    return saved.provision


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
