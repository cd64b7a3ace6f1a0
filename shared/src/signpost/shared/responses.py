"""The answers every service gives outside its handlers, in one place for every OpenAPI document.

Authentication, the write rate limit and the body size limit answer before a handler runs, so a
route's own `responses=` rarely names them. `document_shared_responses` adds them to each operation
from what the route really depends on: an operation behind `get_principal` documents 401, 403 and
503, one behind `rate_limited_write` 429, one behind `refuse_unknown_query` 422 (where it has no
parameter of its own to document it), one that takes a body 400 (not JSON) and 413. An answer the route already
documents keeps the route's own description.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic import BaseModel, Field
from signpost.shared.auth.dependencies import get_principal
from signpost.shared.auth.ratelimit import rate_limited_write
from signpost.shared.querystring import refuse_unknown_query


class ErrorDetail(BaseModel):
    """What a refusal outside validation looks like (422 answers carry a list of problems instead)."""

    detail: str = Field(description="Why the request was refused, in plain words.")


_DETAIL = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorDetail"}}}

AUTHENTICATION: dict[int, dict[str, Any]] = {
    401: {
        "description": "No bearer token, or one that is invalid or expired (with a `WWW-Authenticate` challenge)",
        "content": _DETAIL,
    },
    403: {
        "description": "The token is for another local area, or its role may not do this",
        "content": _DETAIL,
    },
    503: {
        "description": "The identity provider's signing keys cannot be fetched just now (with `Retry-After`)",
        "content": _DETAIL,
    },
}
RATE_LIMIT: dict[int, dict[str, Any]] = {
    429: {"description": "Too many writes from this caller (with `Retry-After`)", "content": _DETAIL},
}
QUERY: dict[int, dict[str, Any]] = {
    422: {
        "description": "A query parameter this operation does not take, or one that holds a single value given twice",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/HTTPValidationError"}}},
    },
}
BODY: dict[int, dict[str, Any]] = {
    400: {"description": "The request body is not well-formed JSON", "content": _DETAIL},
    413: {"description": "The request body is over the size limit", "content": _DETAIL},
}


def shared_responses(route: Any) -> dict[int, dict[str, Any]]:
    """The answers `route` (an APIRoute, or FastAPI's view of one as included) can give before its
    handler runs."""
    calls = set(_calls(route.dependant))
    return {
        **(AUTHENTICATION if get_principal in calls else {}),
        **(RATE_LIMIT if rate_limited_write in calls else {}),
        **(QUERY if refuse_unknown_query in calls else {}),
        **(BODY if route.body_field is not None else {}),
    }


def document_shared_responses(document: dict[str, Any], routes: Iterable[Any]) -> None:
    """Add each route's shared answers to its operations in the OpenAPI `document`, in place."""
    paths = document.get("paths", {})
    added = False
    # Each route as included, so a router's own dependencies count too.
    for route in iter_route_contexts(list(routes)):
        if not isinstance(route.original_route, APIRoute) or not route.include_in_schema:
            continue
        shared = shared_responses(route)
        for method in route.methods or ():
            operation = paths.get(route.path_format, {}).get(method.lower())
            if operation is None:
                continue
            responses = operation.setdefault("responses", {})
            for status, response in shared.items():
                if str(status) not in responses:
                    responses[str(status)] = response
                    added = True
    if added:
        schemas = document.setdefault("components", {}).setdefault("schemas", {})
        schemas["ErrorDetail"] = ErrorDetail.model_json_schema()


def _calls(dependant: Dependant) -> Iterator[Any]:
    for dependency in dependant.dependencies:
        yield dependency.call
        yield from _calls(dependency)
