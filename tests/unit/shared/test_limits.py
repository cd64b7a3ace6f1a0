"""The request body limit: one for every route, a larger one only where a route is named, and the
same 413 whether the route reads the body itself or FastAPI parses it into a model."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
from fastapi import FastAPI
from pydantic import BaseModel
from signpost.shared.limits import BodySizeLimitMiddleware
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp


async def echo_size(request: Request) -> JSONResponse:
    return JSONResponse({"bytes": len(await request.body())})


APP = Starlette(  # the middleware sits where services add it: inside the app's error handling
    routes=[Route("/small", echo_size, methods=["POST"]), Route("/import", echo_size, methods=["POST"])],
    middleware=[Middleware(BodySizeLimitMiddleware, max_bytes=1024, path_limits={"/import": 4096})],
)

MODEL_APP = FastAPI()
MODEL_APP.add_middleware(BodySizeLimitMiddleware, max_bytes=1024)


class Note(BaseModel):
    text: str


@MODEL_APP.post("/notes")
async def take_note(note: Note) -> dict[str, int]:
    return {"chars": len(note.text)}


async def post(path: str, content: bytes | AsyncIterator[bytes], app: ASGIApp = APP) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        return await client.post(path, content=content, headers={"content-type": "application/json"})


async def chunks() -> AsyncIterator[bytes]:
    """6000 bytes, streamed without a Content-Length."""
    for _ in range(6):
        yield b"x" * 1000


async def test_only_the_named_route_gets_the_larger_limit() -> None:
    assert (await post("/small", b"x" * 1024)).json() == {"bytes": 1024}
    refused = await post("/small", b"x" * 2000)
    assert refused.status_code == 413
    assert refused.json() == {"detail": "request body is larger than the 1024-byte limit"}
    assert (await post("/import", b"x" * 4000)).json() == {"bytes": 4000}
    over = await post("/import", b"x" * 5000)
    assert over.status_code == 413 and "4096-byte limit" in over.json()["detail"]


async def test_a_streamed_body_is_counted_against_its_route_limit() -> None:
    assert (await post("/import", chunks())).status_code == 413


async def test_a_streamed_body_over_the_limit_is_413_where_fastapi_parses_it() -> None:
    """FastAPI answers 400 to any error while it reads a model's body; the caller must learn the limit."""
    assert (await post("/notes", b'{"text": "hi"}', MODEL_APP)).json() == {"chars": 2}
    refused = await post("/notes", chunks(), MODEL_APP)
    assert refused.status_code == 413
    assert refused.json() == {"detail": "request body is larger than the 1024-byte limit"}
