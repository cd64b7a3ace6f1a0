"""The dashboard's pages and assets, served as analytics serves them, beside an API whose
answers each test chooses: the client's behaviour in a browser, in seconds, with no platform.

Answers are built with the API's own response models, so their shape is the real one."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from signpost.analytics.benchmarking.views import AreaFigure, Benchmarking
from signpost.analytics.dashboard.views import router as dashboard_router
from signpost.analytics.ops.models import DeadLetters, OpsView
from signpost.analytics.pulse.measures import MEASURES
from signpost.analytics.pulse.models import (
    Breakdown,
    BreakdownRow,
    Declines,
    MeasureTrend,
    PeriodOut,
    Summary,
    Trend,
    TrendPoint,
    UnmetDemand,
    Waiting,
    WhatWorks,
)
from signpost.analytics.pulse.suppression import Figure, Reason, notice

PERIOD = PeriodOut(start=date(2026, 3, 1), end=date(2026, 3, 28))
TENANT = "E06000023"
# Read by the page for display only ("who"): the canned API checks no signature.
TOKEN = (
    ".".join(
        base64.urlsafe_b64encode(json.dumps(part).encode()).decode().rstrip("=")
        for part in ({"alg": "none"}, {"sub": "analyst-la-insight", "role": "analyst", "tenant": TENANT})
    )
    + ".unsigned"
)

Answer = Callable[[Mapping[str, str]], tuple[int, Any]]


def count(value: float) -> Figure:
    return Figure(value=value)


def withheld(reason: Reason = Reason.SMALL_NUMBER) -> Figure:
    return Figure(value=None, suppressed=True, reason=reason)


def scope(filters: dict[str, str] | None = None, *, protect: bool = True) -> dict[str, Any]:
    """The fields every pulse answer starts with."""
    return {
        "tenant": TENANT,
        "period": PERIOD,
        "filters": filters or {},
        "suppression_threshold": 5 if protect else None,
        "suppression": notice(protect=protect),
    }


def breakdown(
    rows: list[tuple[str, str, Figure]], *, group_by: str = "setting", filters: dict[str, str] | None = None
) -> Breakdown:
    """Rows of (group id, label, figure) of the `submitted` measure."""
    return Breakdown(
        **scope(filters),
        measure="submitted",
        description="Referrals submitted in the period.",
        group_by=group_by,
        partition=True,
        total=BreakdownRow(group="total", label="All", value=count(100), base=None),
        rows=[BreakdownRow(group=group, label=label, value=value, base=None) for group, label, value in rows],
    )


def summary() -> Summary:
    return Summary(
        **scope(),
        previous_period=PeriodOut(start=date(2026, 2, 1), end=date(2026, 2, 28)),
        measures=[
            MeasureTrend(
                measure=name,
                description=measure.description,
                current=count(10),
                previous=count(8),
                change=count(2),
            )
            for name, measure in MEASURES.items()
        ],
        coverage=None,
    )


def trend(params: Mapping[str, str]) -> Trend:
    return Trend(
        **scope(),
        measure=params.get("measure", "submitted"),
        description="",
        interval=params.get("interval", "week"),
        points=[TrendPoint(period=PERIOD, value=count(10), base=None)],
    )


def ops_view() -> OpsView:
    return OpsView(
        sampled_at=None,
        sample_interval_s=5,
        error=None,
        lag=[],
        topics=[],
        dead_letters=DeadLetters(topic="signpost.dead-letters", total=0, by_service={}),
        history=[],
        health=[],
    )


def benchmarking(params: Mapping[str, str]) -> Benchmarking:
    return Benchmarking(
        measure=params.get("measure", "submitted"),
        description="",
        period=PERIOD,
        suppression_threshold=5,
        suppression=notice(protect=True),
        areas=[AreaFigure(tenant=TENANT, value=count(10), base=None, submitted=count(10))],
    )


def measures() -> dict[str, dict[str, str]]:
    return {
        name: {"kind": measure.kind, "description": measure.description} for name, measure in MEASURES.items()
    }


def _fixed(body: Callable[[], BaseModel | dict[str, Any]]) -> Answer:
    return lambda _: (200, body())


def _by_params(body: Callable[[Mapping[str, str]], BaseModel]) -> Answer:
    return lambda params: (200, body(params))


def ordinary_answers() -> dict[str, Answer]:
    """An answer for every path a page reads: each page loads."""
    return {
        "/v1/pulse/measures": _fixed(measures),
        "/v1/pulse/summary": _fixed(summary),
        "/v1/pulse/trend": _by_params(trend),
        "/v1/pulse/waiting": _fixed(lambda: Waiting(**scope(), rows=[])),
        "/v1/pulse/unmet-demand": _fixed(lambda: UnmetDemand(**scope(), needs=[])),
        "/v1/pulse/breakdown": _fixed(
            lambda: breakdown([("Ashley", "Ashley", count(12))], group_by="locality")
        ),
        "/v1/pulse/what-works": _by_params(
            lambda params: WhatWorks(**scope(), group_by=params.get("group_by", "provision"), rows=[])
        ),
        "/v1/pulse/declines": _fixed(lambda: Declines(**scope(), rows=[])),
        "/v1/benchmarking": _by_params(benchmarking),
        "/v1/ops": _fixed(ops_view),
    }


@dataclass
class Asked:
    path: str
    params: dict[str, str]
    headers: dict[str, str]


@dataclass
class CannedApi:
    answers: dict[str, Answer] = field(default_factory=ordinary_answers)
    asked: list[Asked] = field(default_factory=list)

    def answer(self, path: str, body: BaseModel | dict[str, Any], *, status: int = 200) -> None:
        self.answers[path] = lambda _: (status, body)

    def answer_with(self, path: str, answer: Answer) -> None:
        self.answers[path] = answer

    def reset(self) -> None:
        self.answers, self.asked = ordinary_answers(), []

    def app(self) -> FastAPI:
        app = FastAPI()
        app.include_router(dashboard_router)

        @app.get("/v1/{rest:path}")
        async def canned(rest: str, request: Request) -> JSONResponse:
            path = f"/v1/{rest}"
            params = dict(request.query_params)
            self.asked.append(Asked(path, params, dict(request.headers)))
            status, body = self.answers[path](params)
            if isinstance(body, BaseModel):
                body = body.model_dump(mode="json", by_alias=True)
            return JSONResponse(body, status_code=status)

        return app


def refused(field_name: str, message: str) -> dict[str, Any]:
    """A 422's body, as the API words one."""
    return {"detail": [{"field": field_name, "message": message}]}
