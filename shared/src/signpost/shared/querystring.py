"""Query parameters a route does not take, or a single-valued one given twice, are refused (422 naming
each), not ignored: `?statuss=routed` answered with every referral, or `?status=a&status=b` with the
last, reads as an answer to what was asked."""

from __future__ import annotations

import types
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any, Union, get_args, get_origin

from fastapi import Request
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute


@dataclass(frozen=True)
class _Taken:
    names: frozenset[str]
    single: frozenset[str]  # those that hold one value


# Kept on the route itself (what it takes never changes once the app is built): a table by id(route)
# could hand a new route the entry of a collected one that had the same id.
_TAKEN_ATTRIBUTE = "_signpost_query_taken"


async def refuse_unknown_query(request: Request) -> None:
    """A dependency: 422 for a query parameter the route does not declare, or a single one repeated."""
    route = request.scope["route"]
    assert isinstance(route, APIRoute)
    taken: _Taken | None = getattr(route, _TAKEN_ATTRIBUTE, None)
    if taken is None:
        taken = _taken_by(route)
        setattr(route, _TAKEN_ATTRIBUTE, taken)
    given = request.query_params
    problems = [
        {
            "type": "extra_forbidden",
            "loc": ("query", name),
            "msg": f"is not a parameter here; this takes {', '.join(sorted(taken.names)) or 'none'}",
            "input": None,
        }
        for name in sorted(set(given) - taken.names)
    ] + [
        {
            "type": "repeated",
            "loc": ("query", name),
            "msg": "is given more than once; give it once",
            "input": None,
        }
        for name in sorted(taken.single)
        if len(given.getlist(name)) > 1
    ]
    if problems:
        raise RequestValidationError(problems)


def _taken_by(route: APIRoute) -> _Taken:
    query = list(_query_fields(route.dependant))
    return _Taken(
        names=frozenset(field.alias for field in query),
        single=frozenset(field.alias for field in query if not _holds_many(field.field_info.annotation)),
    )


def _query_fields(dependant: Dependant) -> Iterator[Any]:
    """The route's query parameters, its dependencies' included."""
    yield from dependant.query_params
    for dependency in dependant.dependencies:
        yield from _query_fields(dependency)


def _holds_many(annotation: Any) -> bool:
    """A list, set or tuple (maybe optional): given as many `name=` as it has values."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _holds_many(get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        return any(_holds_many(argument) for argument in get_args(annotation))
    return (origin or annotation) in (list, set, frozenset, tuple)
