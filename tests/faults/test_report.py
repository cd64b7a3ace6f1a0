"""docs/reliability.md says what the run was, not what it was once: no cluster needed."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from tests.faults.harness import CaseReport
from tests.faults.report import write_reliability_report

DURATIONS = {"broker unreachable": 30.0, "a killed service stays down": 3.0}


def write(tmp_path: Path, cases: list[CaseReport], *, docker_answered: bool) -> str:
    path = tmp_path / "reliability.md"
    at = datetime(2026, 12, 7, 14, 0, tzinfo=UTC)
    write_reliability_report(
        cases, path=path, soak=False, at=at, durations=DURATIONS, docker_answered=docker_answered
    )
    return path.read_text()


def test_the_settings_durations_and_docker_are_those_of_the_run(tmp_path: Path) -> None:
    case = CaseReport(
        name="test_x", fault="f", rate=4.0, settings={"reconcile_after_s": "7"}, outcome="passed"
    )
    text = write(tmp_path, [case], docker_answered=False)
    assert "`SIGNPOST_RECONCILE_AFTER_S=7`" in text and "RECONCILE_AFTER_S=5" not in text
    assert "broker unreachable 30 s; a killed service stays down 3 s" in text
    assert "No Docker engine answered" in text and "## What failed" not in text

    durable = CaseReport(name="test_d", fault="f", rate=4.0, broker="Apache Kafka (testcontainers)")
    text = write(tmp_path, [case, durable], docker_answered=True)
    assert "No Docker engine" not in text and "Apache Kafka (testcontainers)" in text


def test_a_failed_invariant_is_given_in_full(tmp_path: Path) -> None:
    message = (
        "AssertionError: analytics did not count each referral once: r2 counted 2 times | r3 not counted"
    )
    case = CaseReport(
        name="test_x", fault="f", rate=4.0, outcome="FAILED (call): AssertionError", failure=message
    )
    text = write(tmp_path, [case], docker_answered=False)
    assert "## What failed" in text and message in text
    row = next(line for line in text.splitlines() if line.startswith("| `test_x`"))
    assert row.count(" | ") == 10  # one row of 11 cells, whatever the message holds
