"""How the database answers a query: tests check that a list is read from an index holding its
whole filter and sort, so a page reads its own documents and no others, however long the history."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pymongo.asynchronous.cursor import AsyncCursor


def _stages(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in [plan.get("inputStage"), *plan.get("inputStages", [])]:
        if child:
            yield from _stages(child)


async def scanned(found: AsyncCursor[Any]) -> tuple[list[dict[str, Any] | None], dict[str, Any]]:
    """The key pattern of every scan in the winning plan (None for a collection scan), and the
    execution statistics. SecantusDB's planner sorts and counts as if there were no limit, so what a
    test can check there is that each index entry read is a document kept: examined docs == keys."""
    explained = await found.explain()
    scans = [s for s in _stages(explained["queryPlanner"]["winningPlan"]) if "SCAN" in s["stage"]]
    return [s.get("keyPattern") for s in scans], explained["executionStats"]
