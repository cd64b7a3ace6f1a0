"""Session-wide real servers, and per-test settings with their own topics and databases."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import httpx
import pytest
from fastapi import FastAPI
from pymongo import AsyncMongoClient
from signpost.shared.auth.principal import Role
from signpost.shared.auth.tokens import issue_dev_token
from signpost.shared.mongo import Document
from signpost.shared.settings import Settings

from signpost.platform.embedded import EmbeddedUnavailable
from tests.servers import KafkaServer, MongoServer, RestartableKafka, kafka_server, mongo_server

T = TypeVar("T")

pytest_plugins = ["tests.hang_report"]

# pytest-xdist (`-n`, `--dist loadfile` in pyproject) hands out whole modules, so module-scoped
# services start once per module; the slowest areas go first, so that no worker starts one of
# them when the others are nearly done.
SLOWEST_FIRST = ("tests/faults/", "tests/e2e/", "tests/examples/", "tests/integration/")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        areas = enumerate(SLOWEST_FIRST)
        return next((n for n, area in areas if item.nodeid.startswith(area)), len(SLOWEST_FIRST))

    items.sort(key=rank)


@pytest.fixture(scope="session")
def server_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("server-logs")


@pytest.fixture(scope="session")
def kafka(server_logs: Path) -> Iterator[KafkaServer]:
    with kafka_server(server_logs) as server:
        yield server


@pytest.fixture
def own_kafka(server_logs: Path) -> Iterator[KafkaServer]:
    """A broker of this test's own, started empty, so pausing it disturbs no other test; beside
    `kafka`, it is what a broker that lost its log looks like."""
    with kafka_server(server_logs, dedicated=True) as server:
        yield server


@pytest.fixture
def restartable_kafka(server_logs: Path) -> Iterator[RestartableKafka]:
    try:
        broker = RestartableKafka(server_logs)
    except EmbeddedUnavailable as exc:
        prerequisite_missing(f"needs the embedded broker: {exc}")
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def mongodb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MongoServer]:
    with mongo_server(tmp_path_factory.mktemp("mongodb")) as server:
        yield server


@pytest.fixture(scope="module")
def pausable_mongodb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MongoServer]:
    with mongo_server(tmp_path_factory.mktemp("pausable-mongodb"), dedicated=True) as server:
        assert server.control is not None
        yield server


def fail_fast_client(url: str) -> AsyncMongoClient[Document]:
    """A client whose operations against a stopped (paused) server fail in half a second."""
    return AsyncMongoClient(
        url, tz_aware=True, serverSelectionTimeoutMS=500, socketTimeoutMS=500, connectTimeoutMS=500
    )


def settings_for(kafka: KafkaServer, mongodb: MongoServer, **overrides: object) -> Settings:
    """Settings on the given servers, with topics and databases no other test uses."""
    run = uuid.uuid4().hex[:10]
    values: dict[str, Any] = {
        "kafka_bootstrap": kafka.bootstrap,
        "kafka_idempotence": kafka.idempotence,
        "mongodb_url": mongodb.url,
        "topic_prefix": f"t{run}.",
        "database_prefix": f"t{run}",
        "topic_partitions": 3,
        "outbox_poll_interval_s": 0.2,
        "log_format": "json",
        # A consumer-group join on Tansu takes half the session timeout, rounded up to whole seconds
        # (DESIGN.md): 1 s here instead of 3 s per subscriber; 10 heartbeats per session still
        # leave a busy test process room before the broker would give its partitions away.
        "kafka_session_timeout_ms": 2000,
        "kafka_heartbeat_interval_ms": 200,
        **overrides,
    }
    return Settings(_env_file=None, **values)


@pytest.fixture(scope="session")
def dev_key_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("dev-issuer") / "signing-key.pem"


@pytest.fixture
def settings(kafka: KafkaServer, mongodb: MongoServer, dev_key_file: Path) -> Settings:
    return settings_for(kafka, mongodb, auth_dev_key_file=dev_key_file)


@pytest.fixture(scope="module")
def module_settings(kafka: KafkaServer, mongodb: MongoServer, dev_key_file: Path) -> Settings:
    """For modules that share one running service across their tests (start-up costs seconds)."""
    return settings_for(kafka, mongodb, auth_dev_key_file=dev_key_file)


class Tokens:
    """Development tokens for the given settings' tenant and key."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    def token(self, role: str, organisation: str, *, tenant: str | None = None) -> str:
        return issue_dev_token(
            key_file=self._settings.dev_key_file,
            subject=f"{role}@{organisation}",
            role=Role(role),
            organisation=organisation,
            tenant=tenant or self._settings.tenant,
            name=f"Test {role}",
        )

    def practitioner(self, organisation: str = "school-ashley-primary") -> str:
        return self.token("practitioner", organisation)

    def agency(self, organisation: str) -> str:
        return self.token("agency", organisation)

    def admin(self) -> str:
        return self.token("admin", "la-digital")


@pytest.fixture
def tokens(settings: Settings) -> Tokens:
    return Tokens(settings)


@asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """Run an app's lifespan (broker, consumers, relay) and talk to it over ASGI."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://signpost.test") as client:
            yield client


def prerequisite_missing(reason: str) -> NoReturn:
    """Skip a test whose prerequisite this machine lacks; under CI (CI=true), which provides
    every one of them, fail instead, so a broken setup never passes as skipped tests."""
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


async def eventually(
    probe: Callable[[], Awaitable[T | None]], *, timeout_s: float = 30.0, what: str = "condition"
) -> T:
    """Poll `probe` until it returns something truthy, or fail after `timeout_s`.

    A probe stuck on a server that stopped answering counts against the same deadline, so the
    test fails with this message instead of hanging until pytest-timeout kills the worker."""
    deadline = time.monotonic() + timeout_s
    last: T | None = None
    while (remaining := deadline - time.monotonic()) > 0:
        try:
            last = await asyncio.wait_for(probe(), remaining)
        except TimeoutError:
            raise AssertionError(
                f"{what}: the probe did not answer within {timeout_s} s (last: {last!r})"
            ) from None
        if last:
            return last
        await asyncio.sleep(0.05)
    raise AssertionError(f"{what} not reached within {timeout_s} s (last: {last!r})")
