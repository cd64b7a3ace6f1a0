"""The fault matrix: one fault per case under steady load on real servers, then the invariants
(tests/faults/harness.py). Only processes these tests started are killed, paused or restarted."""

from __future__ import annotations

import asyncio
import signal
import time
from typing import Any

import pytest
from pymongo import AsyncMongoClient
from signpost.shared.outbox import pending_count
from signpost.shared.settings import ServiceName

from signpost.platform.cluster import LocalCluster
from tests.faults.conftest import BROKER_OUTAGE_S, DOWN_S, LOAD_S, MONGODB_OUTAGE_S
from tests.faults.harness import CaseReport, Steady, check_invariants, under_load


async def _kill_and_restart(cluster: LocalCluster, service: ServiceName) -> None:
    await asyncio.to_thread(cluster.kill, service, signal.SIGKILL)
    await asyncio.sleep(DOWN_S)
    cluster.start_service(service)
    await asyncio.to_thread(cluster.wait_ready, service)


@pytest.mark.parametrize("service", ["routing", "analytics"])
async def test_kill_9_and_restart_a_consumer(
    cluster: LocalCluster, report: CaseReport, service: ServiceName
) -> None:
    report.fault = f"kill -9 {service}, down {DOWN_S:g} s, restarted"

    async def fault(_: Steady) -> None:
        await _kill_and_restart(cluster, service)

    attempts = await under_load(cluster, report, fault, warmup_s=LOAD_S, cooldown_s=LOAD_S)
    assert all(200 <= a.status < 300 for a in attempts), report.not_accepted  # intake never noticed
    await check_invariants(cluster, attempts, report)


async def test_mongodb_unreachable(cluster: LocalCluster, report: CaseReport) -> None:
    report.fault = f"SecantusDB stopped (SIGSTOP) for {MONGODB_OUTAGE_S:g} s"
    assert cluster.mongodb is not None
    mongodb = cluster.mongodb.process

    async def fault(_: Steady) -> None:
        mongodb.signal(signal.SIGSTOP)
        try:
            await asyncio.sleep(MONGODB_OUTAGE_S)
        finally:
            mongodb.signal(signal.SIGCONT)

    attempts = await under_load(cluster, report, fault, warmup_s=LOAD_S, cooldown_s=LOAD_S + 3)
    # Nobody had to restart anything: every service rode it out.
    assert all(process.exit_code() is None for process in cluster.services.values())
    await check_invariants(cluster, attempts, report)


async def test_broker_unreachable_intake_keeps_accepting(cluster: LocalCluster, report: CaseReport) -> None:
    report.fault = f"Tansu stopped (SIGSTOP) for {BROKER_OUTAGE_S:g} s"
    assert cluster.kafka is not None
    broker = cluster.kafka.process
    outage: list[float] = []

    async def fault(_: Steady) -> None:
        broker.signal(signal.SIGSTOP)
        outage.append(time.time())
        try:
            await asyncio.sleep(BROKER_OUTAGE_S)
        finally:
            outage.append(time.time())
            broker.signal(signal.SIGCONT)

    attempts = await under_load(cluster, report, fault, warmup_s=LOAD_S, cooldown_s=LOAD_S)
    during = [a for a in attempts if outage[0] <= a.sent_at <= outage[1]]
    assert len(during) >= report.rate * BROKER_OUTAGE_S * 0.8
    assert all(a.status == 201 for a in during), "intake stopped accepting while the broker was away"
    await check_invariants(cluster, attempts, report)


async def test_intake_killed_between_its_write_and_the_publish(
    cluster: LocalCluster, report: CaseReport
) -> None:
    report.fault = "Tansu stopped so the outbox cannot drain, intake killed -9 with events pending, both back"
    assert cluster.kafka is not None and cluster.mongodb is not None
    broker = cluster.kafka.process

    async def fault(_: Steady) -> None:
        broker.signal(signal.SIGSTOP)
        try:
            await asyncio.sleep(DOWN_S)  # referrals keep being accepted; their events wait in the outbox
            await asyncio.to_thread(cluster.kill, "intake", signal.SIGKILL)
            pending = await _pending_in_outbox(cluster)
            assert pending > 0, "intake was killed with nothing waiting to be published"
            report.fault += f" ({pending} events pending at the kill)"
        finally:
            broker.signal(signal.SIGCONT)
        cluster.start_service("intake")
        await asyncio.to_thread(cluster.wait_ready, "intake")

    attempts = await under_load(cluster, report, fault, warmup_s=LOAD_S, cooldown_s=LOAD_S)
    await check_invariants(cluster, attempts, report)


async def _pending_in_outbox(cluster: LocalCluster) -> int:
    assert cluster.mongodb is not None
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(cluster.mongodb.url)
    try:
        return await pending_count(mongo[cluster.database_name("intake")])
    finally:
        await mongo.close()


async def test_broker_restart_loses_its_log(cluster: LocalCluster, report: CaseReport) -> None:
    """Every service stays up: each notices the broker lost its log (signpost.shared.logwatch),
    creates the topics again and sends every event its outbox keeps once more. Analytics is paused
    first, so events it had not read yet are on the log that is lost (what a lagging consumer has)."""
    report.fault = (
        f"analytics paused, Tansu killed -9 and started empty on the same port {DOWN_S:g} s later, "
        "analytics resumed; no service restarted"
    )
    analytics = cluster.services["analytics"]
    window: list[float] = []

    async def fault(_: Steady) -> None:
        window.append(time.time())
        analytics.signal(signal.SIGSTOP)
        try:
            await asyncio.sleep(DOWN_S)  # what intake and routing publish now waits unread by analytics
            await asyncio.to_thread(cluster.restart_kafka, down_s=DOWN_S)
        finally:
            analytics.signal(signal.SIGCONT)
        window.append(time.time())

    attempts = await under_load(cluster, report, fault, warmup_s=LOAD_S, cooldown_s=LOAD_S)
    during = [a for a in attempts if window[0] <= a.sent_at <= window[1]]
    assert len(during) >= report.rate * 2 * DOWN_S * 0.8, f"only {len(during)} requests during the fault"
    refused = sorted({a.status for a in during if not 200 <= a.status < 300})
    assert not refused, f"intake did not accept every request while the broker restarted: {refused}"
    assert all(200 <= a.status < 300 for a in attempts), report.not_accepted
    assert all(process.exit_code() is None for process in cluster.services.values())
    await check_invariants(cluster, attempts, report)
