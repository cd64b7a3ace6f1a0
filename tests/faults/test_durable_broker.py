"""The fault matrix against a durable broker: Apache Kafka in a testcontainers container, stopped
or killed -9 and started again under steady load, then the same invariants as every other case
(tests/faults/harness.py). Only where a Docker engine answers, by the same rule as
tests/integration/test_testcontainers.py: without one (CI has none) these cases are skipped.

Unlike the embedded Tansu, the broker keeps its log, its topics and the consumer groups' offsets
across the restart (the container's filesystem survives a stop), so the services only reconnect:
no replay, and intake keeps accepting throughout, its events waiting in the outbox."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from signpost.platform.cluster import LocalCluster
from signpost.platform.embedded import EmbeddedUnavailable
from signpost.platform.processes import free_port
from tests.conftest import prerequisite_missing
from tests.faults.conftest import BROKER_OUTAGE_S, CLUSTER_SETTINGS, LOAD_S
from tests.faults.harness import CaseReport, Steady, check_invariants, under_load
from tests.servers import KAFKA_IMAGE, docker_available

if TYPE_CHECKING:
    from testcontainers.community.kafka import KafkaContainer

pytestmark = [
    pytest.mark.docker,
    pytest.mark.skipif(
        not docker_available(), reason="no Docker engine answers: the durable-broker fault cases not run"
    ),
]

CONTAINER_KAFKA_PORT = 9093  # KafkaContainer's client listener inside the container
BROKER_BACK_TIMEOUT_S = 120.0  # a killed KRaft broker recovers its log before it answers
# Apache Kafka refuses a session timeout under group.min.session.timeout.ms (6 s by default): the
# services keep their defaults for it and the heartbeat here, unlike on Tansu.
DURABLE_SETTINGS = {
    **{
        name: value
        for name, value in CLUSTER_SETTINGS.items()
        if name not in {"kafka_session_timeout_ms", "kafka_heartbeat_interval_ms"}
    },
    "topic_replication_factor": "1",
}


@pytest.fixture
def kafka_container() -> Iterator[KafkaContainer]:
    """A single-node KRaft broker whose client port is bound to a fixed host port: the broker
    advertises the host port it was started with (testcontainers writes it into the container's
    start script), and Docker would map a new random one when the container starts again."""
    from testcontainers.community.kafka import KafkaContainer

    container = KafkaContainer(KAFKA_IMAGE).with_kraft().with_bind_ports(CONTAINER_KAFKA_PORT, free_port())
    with container:
        yield container


@pytest.fixture
def durable_cluster(tmp_path: Path, kafka_container: KafkaContainer) -> Iterator[LocalCluster]:
    cluster = LocalCluster(
        tmp_path, settings=DURABLE_SETTINGS, kafka_bootstrap=kafka_container.get_bootstrap_server()
    )
    try:
        cluster.start()
    except EmbeddedUnavailable as exc:
        cluster.stop()
        prerequisite_missing(f"the fault matrix needs embedded SecantusDB: {exc}")
    try:
        yield cluster
    finally:
        cluster.stop()


async def _wait_until_the_broker_answers(bootstrap: str) -> None:
    deadline = time.monotonic() + BROKER_BACK_TIMEOUT_S
    while True:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
        try:
            await admin.start()
            await admin.list_topics()
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(1.0)
        finally:
            await admin.close()


@pytest.mark.parametrize("how", ["stop", "kill"])
async def test_durable_broker_stopped_and_started_again(
    durable_cluster: LocalCluster, kafka_container: KafkaContainer, report: CaseReport, how: str
) -> None:
    """`stop`: docker stop (SIGTERM, the broker shuts down cleanly); `kill`: docker kill (SIGKILL)."""
    report.broker = f"Apache Kafka ({KAFKA_IMAGE}, testcontainers)"
    report.settings = dict(DURABLE_SETTINGS)
    report.fault = f"Kafka container {'stopped' if how == 'stop' else 'killed -9'}, down {BROKER_OUTAGE_S:g} s, started again"
    container = kafka_container.get_wrapped_container()
    bootstrap = kafka_container.get_bootstrap_server()
    window: list[float] = []

    async def fault(_: Steady) -> None:
        window.append(time.time())
        if how == "stop":
            await asyncio.to_thread(container.stop, timeout=30)
        else:
            await asyncio.to_thread(container.kill)
        await asyncio.sleep(BROKER_OUTAGE_S)
        await asyncio.to_thread(container.start)
        await _wait_until_the_broker_answers(bootstrap)
        window.append(time.time())

    attempts = await under_load(durable_cluster, report, fault, warmup_s=LOAD_S, cooldown_s=LOAD_S)
    during = [a for a in attempts if window[0] <= a.sent_at <= window[1]]
    assert len(during) >= report.rate * BROKER_OUTAGE_S * 0.8, (
        f"only {len(during)} requests while it was away"
    )
    refused = [a.status for a in during if not 200 <= a.status < 300]
    assert not refused, (
        f"intake did not accept {len(refused)} of {len(during)} requests while the broker was away"
    )
    await check_invariants(durable_cluster, attempts, report)
