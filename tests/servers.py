"""Real Kafka and MongoDB servers for the tests, chosen in this order:

1. explicit URLs: SIGNPOST_KAFKA_BOOTSTRAP / SIGNPOST_MONGODB_URL;
2. testcontainers, when a Docker engine answers (MongoDB as a one-node replica
   set: the stock module is standalone, without transactions or change streams);
3. the embedded servers, Tansu and SecantusDB, on free loopback ports.

Never mocks: every integration and end-to-end test talks to one of these over TCP.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from signpost.shared.mongo import Document

from signpost.platform.embedded import EmbeddedServer, start_kafka, start_mongodb
from signpost.platform.processes import stop_all

MONGO_IMAGE = "mongo:8.0"
CONTAINER_MONGO_PORT = 27017  # inside the container; the host side is a free port testcontainers picks
KAFKA_IMAGE = "confluentinc/cp-kafka:7.9.0"


class Pausable(Protocol):
    def pause(self) -> None: ...
    def resume(self) -> None: ...


@dataclass(frozen=True)
class KafkaServer:
    bootstrap: str
    idempotence: bool  # Apache Kafka: on; Tansu refuses idempotent producers
    kind: str
    control: Pausable | None = None  # how a test makes the broker unreachable and back


@dataclass(frozen=True)
class MongoServer:
    url: str
    kind: str
    control: Pausable | None = None  # how a test makes the database unreachable and back


def docker_available() -> bool:
    if os.environ.get("SIGNPOST_TEST_NO_DOCKER"):
        return False
    try:
        import docker

        client = docker.from_env(timeout=3)
        client.ping()
        client.close()
    except Exception:
        return False
    return True


class _EmbeddedPause:
    """SIGSTOP/SIGCONT: the server stops answering (connections hang) but keeps its state."""

    def __init__(self, server: EmbeddedServer) -> None:
        self._server = server

    def pause(self) -> None:
        self._server.process.signal(signal.SIGSTOP)

    def resume(self) -> None:
        self._server.process.signal(signal.SIGCONT)


class _ContainerPause:
    def __init__(self, container: object) -> None:
        self._container = container

    def pause(self) -> None:
        self._container.get_wrapped_container().pause()  # type: ignore[attr-defined]

    def resume(self) -> None:
        self._container.get_wrapped_container().unpause()  # type: ignore[attr-defined]


@contextmanager
def kafka_server(log_dir: Path, *, dedicated: bool = False) -> Iterator[KafkaServer]:
    """A broker; `dedicated` ones are never the explicit URL, so a test may pause them."""
    explicit = os.environ.get("SIGNPOST_KAFKA_BOOTSTRAP")
    if explicit and not dedicated:
        idempotence = os.environ.get("SIGNPOST_KAFKA_IDEMPOTENCE", "true").lower() in {"1", "true", "yes"}
        yield KafkaServer(explicit, idempotence, "explicit")
    elif docker_available():
        from testcontainers.community.kafka import KafkaContainer

        with KafkaContainer(KAFKA_IMAGE).with_kraft() as container:
            yield KafkaServer(
                container.get_bootstrap_server(), True, "testcontainers", _ContainerPause(container)
            )
    else:
        server = start_kafka(log_file=log_dir / f"tansu-{time.monotonic_ns()}.log")
        try:
            yield KafkaServer(server.url, False, "embedded", _EmbeddedPause(server))
        finally:
            stop_all([server.process], timeout_s=5)


class RestartableKafka:
    """An embedded broker of a test's own, which the test restarts on the same port: memory storage,
    so the restart loses the log (what the services must notice and recover from)."""

    def __init__(self, log_dir: Path) -> None:
        self._log_dir = log_dir
        self._servers = [start_kafka(log_file=log_dir / f"tansu-restartable-{time.monotonic_ns()}.log")]

    @property
    def server(self) -> EmbeddedServer:
        return self._servers[-1]

    def as_server(self) -> KafkaServer:
        """What `settings_for` takes."""
        return KafkaServer(self.server.url, False, "embedded")

    async def restart(self) -> None:
        stop_all([self.server.process], timeout_s=5)
        log_file = self._log_dir / f"tansu-restarted-{time.monotonic_ns()}.log"
        self._servers.append(await asyncio.to_thread(start_kafka, port=self.server.port, log_file=log_file))

    def stop(self) -> None:
        stop_all([server.process for server in self._servers], timeout_s=5)


@contextmanager
def mongo_server(data_dir: Path, *, dedicated: bool = False) -> Iterator[MongoServer]:
    """A database; `dedicated` ones are never the explicit URL, so a test may pause them."""
    explicit = os.environ.get("SIGNPOST_MONGODB_URL")
    if explicit and not dedicated:
        yield MongoServer(explicit, "explicit")
    elif docker_available():
        yield from _mongo_replica_set_container()
    else:
        server = start_mongodb(data_dir=data_dir / "mongodb", log_file=data_dir / "secantus.log")
        try:
            yield MongoServer(server.url, "embedded", _EmbeddedPause(server))
        finally:
            stop_all([server.process], timeout_s=8)


def _mongo_replica_set_container() -> Iterator[MongoServer]:
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.wait_strategies import LogMessageWaitStrategy

    container = (
        DockerContainer(MONGO_IMAGE)
        .with_command("--replSet rs0 --bind_ip_all")
        .with_exposed_ports(CONTAINER_MONGO_PORT)
        .waiting_for(LogMessageWaitStrategy("Waiting for connections"))
    )
    with container:
        # Initiate with the address the container knows itself by, then connect directly.
        result = container.exec(
            [
                "mongosh",
                "--quiet",
                "--eval",
                f"rs.initiate({{_id:'rs0',members:[{{_id:0,host:'localhost:{CONTAINER_MONGO_PORT}'}}]}})",
            ]
        )
        if result.exit_code != 0:
            raise RuntimeError(f"rs.initiate failed: {result.output!r}")
        host, port = container.get_container_host_ip(), container.get_exposed_port(CONTAINER_MONGO_PORT)
        url = f"mongodb://{host}:{port}/?directConnection=true"
        _wait_for_primary(url)
        yield MongoServer(url, "testcontainers", _ContainerPause(container))


def _wait_for_primary(url: str) -> None:
    from pymongo import MongoClient

    deadline = time.monotonic() + 60
    with MongoClient[Document](url, serverSelectionTimeoutMS=1000) as client:
        while time.monotonic() < deadline:
            if client.admin.command("hello").get("isWritablePrimary"):
                return
            time.sleep(0.2)
    raise RuntimeError("MongoDB replica set did not elect a primary within 60 s")
