"""Query parameters a route does not take, or a single one repeated, are refused, not ignored."""

from __future__ import annotations

from typing import Annotated, Any

import httpx
from fastapi import APIRouter, Depends, FastAPI, Query
from signpost.shared.querystring import refuse_unknown_query

router = APIRouter()


def paging(limit: Annotated[int, Query(ge=1)] = 50) -> int:
    return limit


@router.get("/things")
async def things(
    status: str | None = None,
    tags: Annotated[list[str] | None, Query()] = None,
    limit: int = Depends(paging),
) -> dict[str, Any]:
    return {"status": status, "tags": tags, "limit": limit}


APP = FastAPI()
APP.include_router(router, dependencies=[Depends(refuse_unknown_query)])


async def get(query: str) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=APP), base_url="http://test") as client:
        return await client.get(f"/things{query}")


def problems(response: httpx.Response) -> list[tuple[str, str]]:
    assert response.status_code == 422, response.text
    return [(".".join(problem["loc"]), problem["msg"]) for problem in response.json()["detail"]]


async def test_what_a_route_takes_goes_through_its_dependencies_and_lists_included() -> None:
    answer = await get("?status=routed&tags=a&tags=b&limit=5")
    assert answer.json() == {"status": "routed", "tags": ["a", "b"], "limit": 5}


async def test_a_parameter_the_route_does_not_take_is_named() -> None:
    assert problems(await get("?statuss=routed&x=1")) == [
        ("query.statuss", "is not a parameter here; this takes limit, status, tags"),
        ("query.x", "is not a parameter here; this takes limit, status, tags"),
    ]


async def test_a_single_parameter_given_twice_is_refused_not_read_as_the_last() -> None:
    assert problems(await get("?status=routed&status=submitted")) == [
        ("query.status", "is given more than once; give it once")
    ]
