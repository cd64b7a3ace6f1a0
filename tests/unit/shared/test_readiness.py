"""What `/readyz` asks of a service: MongoDB and its own checks, with Kafka reported but not
required (what goes to Kafka waits in the outbox), and both servers asked at once."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from signpost.shared import service


def app_with(*, kafka: Any, readiness: dict[str, Any] | None = None) -> FastAPI:
    """A service's health routes over a runtime whose broker pings with `kafka(timeout=...)`."""
    app = FastAPI()
    app.state.runtime = SimpleNamespace(
        broker=SimpleNamespace(ping=kafka), client=None, readiness=readiness or {}
    )
    app.include_router(service.health_router())
    return app


async def readyz(app: FastAPI) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        return await client.get("/readyz")


async def test_kafka_away_is_reported_and_the_service_stays_ready(monkeypatch: pytest.MonkeyPatch) -> None:
    async def mongodb_answers(_: object) -> bool:
        return True

    async def kafka_away(**_: float) -> bool:
        return False

    monkeypatch.setattr(service, "_ping_mongo", mongodb_answers)
    answer = await readyz(app_with(kafka=kafka_away))
    assert answer.status_code == 200
    assert answer.json()["checks"] == {"kafka": "unreachable", "mongodb": "ok"}


async def test_mongodb_or_an_own_check_failing_is_not_ready(monkeypatch: pytest.MonkeyPatch) -> None:
    async def mongodb_away(_: object) -> bool:
        raise ConnectionError

    async def mongodb_answers(_: object) -> bool:
        return True

    async def kafka_answers(**_: float) -> bool:
        return True

    monkeypatch.setattr(service, "_ping_mongo", mongodb_away)
    assert (await readyz(app_with(kafka=kafka_answers))).status_code == 503
    monkeypatch.setattr(service, "_ping_mongo", mongodb_answers)
    loading = app_with(kafka=kafka_answers, readiness={"projections": lambda: "loading"})
    answer = await readyz(loading)
    assert answer.status_code == 503 and answer.json()["checks"]["projections"] == "loading"


async def test_both_servers_are_asked_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each fake ping answers only once the other's has begun: asked one after the other, in
    either order, the first would run out its time and read as unreachable."""
    monkeypatch.setattr(service, "READINESS_TIMEOUT_S", 0.5)
    mongodb_asked, kafka_asked = asyncio.Event(), asyncio.Event()

    async def mongodb_once_kafka_is_asked(_: object) -> bool:
        mongodb_asked.set()
        await kafka_asked.wait()
        return True

    async def kafka_once_mongodb_is_asked(**_: float) -> bool:
        kafka_asked.set()
        await mongodb_asked.wait()
        return True

    monkeypatch.setattr(service, "_ping_mongo", mongodb_once_kafka_is_asked)
    answer = await readyz(app_with(kafka=kafka_once_mongodb_is_asked))
    assert answer.json()["checks"] == {"kafka": "ok", "mongodb": "ok"}
