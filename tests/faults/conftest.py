"""The fault matrix runs the platform as separate processes on embedded servers of its own, so it can
kill, pause and restart any of them. `SIGNPOST_FAULTS_SOAK=1` runs longer, heavier cases;
`SIGNPOST_WRITE_REPORT=1` writes what ran to docs/reliability.md."""

from __future__ import annotations

import os
from collections.abc import Generator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from signpost.platform.cluster import LocalCluster
from signpost.platform.embedded import EmbeddedUnavailable
from tests.conftest import prerequisite_missing
from tests.faults.harness import CaseReport
from tests.faults.report import write_reliability_report
from tests.servers import docker_available

SOAK = os.environ.get("SIGNPOST_FAULTS_SOAK", "").lower() in {"1", "true", "yes"}
REPORTS: list[CaseReport] = []

# How long each fault lasts and the steady load around it; docs/reliability.md gives them as run.
DOWN_S = 8.0 if SOAK else 3.0  # how long a killed service stays down
MONGODB_OUTAGE_S = 10.0
BROKER_OUTAGE_S = 30.0  # the figure, in CI too
LOAD_S = 30.0 if SOAK else 3.0  # steady load before and after each fault
DURATIONS = {
    "a killed service stays down": DOWN_S,
    "MongoDB unreachable": MONGODB_OUTAGE_S,
    "broker unreachable": BROKER_OUTAGE_S,
    "steady load before and after each fault": LOAD_S,
}

# The services' settings in every case (SIGNPOST_<NAME>); the report lists them as run.
CLUSTER_SETTINGS = {
    "rate_limit_writes_per_minute": "100000",
    "reconcile_after_s": "5",
    "reconcile_interval_s": "1",
    "outbox_poll_interval_s": "0.2",
    # The broker restart with every service kept up: each notices the lost log within 2 s, not 20.
    "log_watch_interval_s": "2",
    "topic_partitions": "3",
    # As in tests/conftest.py: consumer-group joins of 1 s instead of 3 s on Tansu.
    "kafka_session_timeout_ms": "2000",
    "kafka_heartbeat_interval_ms": "200",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.faults)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    cluster = LocalCluster(tmp_path, settings=CLUSTER_SETTINGS)
    try:
        cluster.start()
    except EmbeddedUnavailable as exc:
        cluster.stop()
        prerequisite_missing(f"the fault matrix needs the embedded servers: {exc}")
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def report(request: pytest.FixtureRequest) -> CaseReport:
    """This case's record; the test fills in the fault and the figures."""
    case = CaseReport(
        name=request.node.name, fault="", rate=8.0 if SOAK else 4.0, settings=dict(CLUSTER_SETTINGS)
    )
    REPORTS.append(case)
    return case


def pytest_sessionfinish(session: pytest.Session) -> None:
    if REPORTS and os.environ.get("SIGNPOST_WRITE_REPORT"):
        write_reliability_report(
            REPORTS,
            path=Path(__file__).parents[2] / "docs" / "reliability.md",
            soak=SOAK,
            at=datetime.now(UTC),
            durations=DURATIONS,
            docker_answered=docker_available(),
        )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    result: pytest.TestReport = yield
    case = getattr(item, "funcargs", {}).get("report")
    if isinstance(case, CaseReport) and result.failed and call.excinfo is not None:
        first_line = (
            str(call.excinfo.value).strip().splitlines()[0] if str(call.excinfo.value).strip() else ""
        )
        case.outcome = f"FAILED ({result.when}): {call.excinfo.typename}: {first_line[:200]}"
        case.failure = f"{call.excinfo.typename}: {str(call.excinfo.value).strip()}"
    return result
