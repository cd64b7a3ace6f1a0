"""The answers given before any handler runs are documented on exactly the operations that give them."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, FastAPI
from pydantic import BaseModel
from signpost.shared.auth.dependencies import AdminDep, PrincipalDep
from signpost.shared.auth.ratelimit import rate_limited_write
from signpost.shared.querystring import refuse_unknown_query
from signpost.shared.responses import document_shared_responses


class Body(BaseModel):
    name: str


def documented() -> dict[str, Any]:
    router = APIRouter(prefix="/v1")

    @router.get("/public")
    async def public() -> dict[str, str]:
        return {}

    @router.get("/private")
    async def private(principal: PrincipalDep) -> dict[str, str]:
        return {}

    @router.post("/writes", dependencies=[Depends(rate_limited_write)])
    async def writes(principal: AdminDep, body: Body) -> dict[str, str]:
        return {}

    @router.get("/own", responses={403: {"description": "Not the referrer"}})
    async def own(principal: PrincipalDep) -> dict[str, str]:
        return {}

    strict = APIRouter(prefix="/v1/strict")

    @strict.get("/none")
    async def takes_nothing() -> dict[str, str]:
        return {}

    app = FastAPI()
    app.include_router(router)
    app.include_router(strict, dependencies=[Depends(refuse_unknown_query)])
    document = app.openapi()
    document_shared_responses(document, app.routes)
    return document


def test_each_operation_documents_what_its_dependencies_and_body_can_answer() -> None:
    paths = documented()["paths"]
    assert set(paths["/v1/public"]["get"]["responses"]) == {"200"}
    assert set(paths["/v1/private"]["get"]["responses"]) == {"200", "401", "403", "503"}
    assert set(paths["/v1/writes"]["post"]["responses"]) == {
        "200", "400", "401", "403", "413", "422", "429", "503"
    }  # fmt: skip
    assert set(paths["/v1/strict/none"]["get"]["responses"]) == {"200", "422"}  # an unknown parameter


def test_a_route_s_own_description_is_kept_and_refusals_have_a_schema() -> None:
    document = documented()
    own = document["paths"]["/v1/own"]["get"]["responses"]
    assert own["403"]["description"] == "Not the referrer"
    unauthorised = own["401"]["content"]["application/json"]["schema"]
    assert unauthorised == {"$ref": "#/components/schemas/ErrorDetail"}
    assert document["components"]["schemas"]["ErrorDetail"]["required"] == ["detail"]
