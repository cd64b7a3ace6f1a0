"""Open Referral UK over HTTP: admins import a feed; anyone reads the catalogue back as one."""

from __future__ import annotations

import math
import re
from functools import partial
from typing import Annotated, Any

import httpx
from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, HttpUrl, model_validator
from signpost.routing.catalogue.models import PROVISIONS, Provision
from signpost.routing.catalogue.repository import from_document
from signpost.routing.oruk.feed import (
    ORUK_VERSION,
    PROFILE_URL,
    full_service,
    organisation_feed_id,
    service_feed_id,
    signpost_term_query,
    summary,
)
from signpost.routing.oruk.fetch import FeedError, fetch_feed, read_document, refuse_unless_allowed
from signpost.routing.oruk.importer import ImportInterrupted, details_from_document, import_services
from signpost.routing.oruk.models import ORUK_DETAILS, ImportReport, OrukDetails, is_uuid
from signpost.routing.oruk.taxonomy import load_taxonomy_map
from signpost.shared.auth.dependencies import AdminDep
from signpost.shared.auth.ratelimit import rate_limited_write
from signpost.shared.mongo import Document
from signpost.shared.outbound import OutboundRefused, check_outbound
from signpost.shared.service import Runtime, RuntimeDep, refused
from signpost.shared.text import SingleLine

IMPORT_PATH = "/v1/catalogue/import"
_UUID_TEXT = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"

import_router = APIRouter(tags=["catalogue"])
feed_router = APIRouter(prefix="/oruk", tags=["open referral uk"])


class ImportRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source_url: HttpUrl | None = Field(
        default=None, description="An ORUK feed's base URL (its `/services` is read)."
    )
    feed: dict[str, Any] | list[Any] | None = Field(
        default=None, description="An ORUK document: a page of services, one service, or a list of services."
    )

    @model_validator(mode="after")
    def _one_source(self) -> ImportRequest:
        if (self.source_url is None) == (self.feed is None):
            raise ValueError("send either source_url or feed, not both and not neither")
        return self


@import_router.post(
    IMPORT_PATH,
    response_model=ImportReport,
    dependencies=[Depends(rate_limited_write)],
    summary="Import an Open Referral UK feed into the Local Offer (publishes provision.changed.v1 per change)",
    responses={
        413: {"description": "The body is over SIGNPOST_MAX_IMPORT_BYTES"},
        502: {"description": "The feed could not be read; nothing was imported"},
        503: {"description": "Writing stopped part-way; the body has the report of what was written"},
    },
)
async def import_catalogue(body: ImportRequest, runtime: RuntimeDep, principal: AdminDep) -> Any:
    taxonomy = load_taxonomy_map(runtime.settings.oruk_taxonomy_map)
    if body.source_url is not None:
        source = str(body.source_url).rstrip("/")
        loopback_only = runtime.settings.outbound_loopback_only
        try:
            check_outbound(source, loopback_only=loopback_only)
            httpx.Request("GET", source)  # built as the fetch's is: a host IDNA refuses fails here
        except OutboundRefused as exc:
            raise refused(str(exc), "body.source_url") from None
        except (httpx.InvalidURL, UnicodeError) as exc:
            raise refused(f"bad URL: {exc}", "body.source_url") from None
        try:
            async with httpx.AsyncClient(
                timeout=runtime.settings.oruk_fetch_timeout_s,
                follow_redirects=True,
                event_hooks={"request": [partial(refuse_unless_allowed, loopback_only=loopback_only)]},
            ) as client:
                feed = await fetch_feed(
                    source,
                    client=client,
                    max_bytes=runtime.settings.max_import_bytes,
                    timeout_s=runtime.settings.oruk_fetch_timeout_s,
                )
        except FeedError as exc:
            raise HTTPException(status.HTTP_502_BAD_GATEWAY, f"nothing imported: {exc}") from None
    else:
        source = "document"
        try:
            feed = read_document(body.feed)
        except ValueError as exc:
            raise refused(str(exc), "body.feed") from None
    try:
        return await import_services(
            runtime=runtime,
            principal=principal,
            services=feed.services,
            taxonomy=taxonomy,
            source=source,
            warnings=feed.warnings,
        )
    except ImportInterrupted as exc:
        return JSONResponse(
            {
                "detail": f"{exc}; the report says what was written, import again to finish",
                "report": exc.report.model_dump(mode="json"),
            },
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
        )


@feed_router.get("/", summary="About this Open Referral UK API")
async def about(request: Request) -> dict[str, str]:
    return {
        "version": ORUK_VERSION,
        "profile": PROFILE_URL,
        "openapi_url": str(request.url_for("openapi")),
    }


class ServicePage(BaseModel):
    """An ORUK page: the Page fields and `contents`."""

    total_items: int
    total_pages: int
    page_number: int
    size: int
    first_page: bool
    last_page: bool
    empty: bool
    contents: list[dict[str, Any]]


@feed_router.get("/services", response_model=ServicePage, summary="Services, a page at a time (ORUK)")
async def list_services(
    runtime: RuntimeDep,
    text: Annotated[
        SingleLine | None, Query(max_length=100, description="Words in the service's or organisation's name")
    ] = None,
    search: Annotated[SingleLine | None, Query(max_length=100, description="The same as `text`")] = None,
    taxonomy_term_id: Annotated[SingleLine | None, Query(max_length=100)] = None,
    organization_id: Annotated[SingleLine | None, Query(max_length=100)] = None,
    minimum_age: Annotated[
        float | None, Query(ge=0, le=150, description="Services whose minimum age is at least this")
    ] = None,
    maximum_age: Annotated[
        float | None, Query(ge=0, le=150, description="Services whose maximum age is at most this")
    ] = None,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    per_page: Annotated[int, Query(ge=1, le=500)] = 50,
) -> ServicePage:
    conditions: list[Document] = []
    if words := (text or search):
        pattern = {"$regex": re.escape(words), "$options": "i"}  # escaped: matched literally
        conditions.append({"$or": [{"name": pattern}, {"organisation": pattern}]})
    if taxonomy_term_id:
        conditions.append(await _with_term(runtime, taxonomy_term_id))
    if organization_id:
        conditions.append(await _of_organisation(runtime, organization_id))
    if minimum_age is not None:
        conditions.append({"min_age": {"$gte": minimum_age}})
    if maximum_age is not None:
        conditions.append({"max_age": {"$lte": maximum_age}})
    query: Document = {"$and": conditions} if conditions else {}
    total = await runtime.db[PROVISIONS].count_documents(query)
    found = runtime.db[PROVISIONS].find(query).sort("_id").skip((page - 1) * per_page).limit(per_page)
    provisions = [from_document(document) async for document in found]
    details = await _details_of(runtime, provisions)
    contents = [summary(p, details.get(p.id)) for p in provisions]
    total_pages = math.ceil(total / per_page)
    return ServicePage(
        total_items=total,
        total_pages=total_pages,
        page_number=page,
        size=len(contents),
        first_page=page == 1,
        last_page=page >= total_pages,
        empty=total == 0,
        contents=contents,
    )


@feed_router.get(
    "/services/{service_id}",
    summary="One service in full (ORUK): organization, eligibility, areas, taxonomy terms, capacity, contacts",
    responses={404: {"description": "No such service"}},
)
async def read_service(service_id: str, runtime: RuntimeDep) -> dict[str, Any]:
    provision = await _find_service(runtime, service_id)
    if provision is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no service {service_id!r}")
    details = await _details_of(runtime, [provision])
    return full_service(
        provision,
        details.get(provision.id),
        tenant=runtime.settings.tenant,
        taxonomy=load_taxonomy_map(runtime.settings.oruk_taxonomy_map),
    )


async def _details_of(runtime: Runtime, provisions: list[Provision]) -> dict[str, OrukDetails]:
    ids = [p.id for p in provisions]
    found = runtime.db[ORUK_DETAILS].find({"_id": {"$in": ids}})
    return {document["_id"]: details_from_document(document) async for document in found}


async def _find_service(runtime: Runtime, service_id: str) -> Provision | None:
    """By provision id, or by the UUID the feed derives for a provision whose id is not one."""
    if (document := await runtime.db[PROVISIONS].find_one({"_id": service_id})) is not None:
        return from_document(document)
    if not is_uuid(service_id):
        return None
    wanted = service_id.lower()
    async for document in runtime.db[PROVISIONS].find({"_id": {"$not": {"$regex": _UUID_TEXT}}}):
        provision = from_document(document)
        if service_feed_id(provision) == wanted:
            return provision
    return None


async def _with_term(runtime: Runtime, term_id: str) -> Document:
    if (ours := signpost_term_query(term_id)) is not None:
        return ours
    provision_ids = await runtime.db[ORUK_DETAILS].distinct(
        "_id", {"term_ids": {"$in": [term_id, term_id.lower()]}}
    )
    return {"_id": {"$in": provision_ids}}


async def _of_organisation(runtime: Runtime, organization_id: str) -> Document:
    """Our organisation id, the source's organization id, or the UUID the feed shows for either."""
    wanted = organization_id.lower()
    imported = await runtime.db[ORUK_DETAILS].distinct(
        "_id",
        {
            "$or": [
                {"organization.id": {"$in": [organization_id, wanted]}},
                {"organization.source_id": organization_id},
            ]
        },
    )
    ours = [
        organisation_id
        for organisation_id in await runtime.db[PROVISIONS].distinct("organisation_id")
        if organisation_id == wanted or organisation_feed_id(organisation_id) == wanted
    ]
    return {"$or": [{"_id": {"$in": imported}}, {"organisation_id": {"$in": ours}}]}
