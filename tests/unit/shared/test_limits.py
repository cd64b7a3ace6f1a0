"""The request body limit: one for every route, and a larger one only where a route is named."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
from signpost.shared.limits import BodySizeLimitMiddleware
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


async def echo_size(request: Request) -> JSONResponse:
    return JSONResponse({"bytes": len(await request.body())})


APP = Starlette(  # the middleware sits where services add it: inside the app's error handling
    routes=[Route("/small", echo_size, methods=["POST"]), Route("/import", echo_size, methods=["POST"])],
    middleware=[Middleware(BodySizeLimitMiddleware, max_bytes=1024, path_limits={"/import": 4096})],
)


async def post(path: str, content: bytes | AsyncIterator[bytes]) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=APP), base_url="http://test") as client:
        return await client.post(path, content=content)


async def test_only_the_named_route_gets_the_larger_limit() -> None:
    assert (await post("/small", b"x" * 1024)).json() == {"bytes": 1024}
    refused = await post("/small", b"x" * 2000)
    assert refused.status_code == 413
    assert refused.json() == {"detail": "request body is larger than the 1024-byte limit"}
    assert (await post("/import", b"x" * 4000)).json() == {"bytes": 4000}
    over = await post("/import", b"x" * 5000)
    assert over.status_code == 413 and "4096-byte limit" in over.json()["detail"]


async def test_a_streamed_body_is_counted_against_its_route_limit() -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(6):
            yield b"x" * 1000

    assert (await post("/import", chunks())).status_code == 413
