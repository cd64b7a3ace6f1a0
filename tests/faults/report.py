"""docs/reliability.md, written from what the fault matrix actually ran (SIGNPOST_WRITE_REPORT=1)."""

from __future__ import annotations

import platform
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path

from tests.faults.harness import CaseReport

INTRO = """# Reliability: the fault matrix

Written by `SIGNPOST_WRITE_REPORT=1 uv run --extra embedded pytest tests/faults` (do not edit by hand;
run it again). Each case runs the whole platform as separate processes (intake, routing,
analytics) on embedded SecantusDB and a broker started by the test (embedded Tansu; Apache
Kafka in a testcontainers container in the durable-broker cases, where Docker answers), drives
intake with steady load over HTTP (realistic referrals from `signpost.platform.samples`),
injects one fault, and then checks the invariants:

- every referral intake stored (every 2xx answer, and any stored while a process died
  mid-request) has exactly one routing decision (routing's `decisions` collection and
  `GET /v1/decisions/{id}`), or is a safeguarding escalation made by intake itself;
- exactly one decision event was staged per referral, and each referral's timeline shows
  exactly one decision;
- analytics counts every stored referral exactly once, referral by referral: one fact per
  referral holding its submitted event and one decision event, none of a referral never stored;
  and its pulse totals agree;
- no event is left unpublished in intake's or routing's outbox; nothing accepted is lost.

"Settle" is the time from the end of the load until all of the above held. "Re-published"
counts referrals whose submitted event intake's reconciliation job published again (after
`SIGNPOST_RECONCILE_AFTER_S`, as run: see the settings below).

In the broker-restart case no service is restarted: each notices, while it runs, that the
broker lost its log (`signpost.shared.logwatch`: the broker's cluster id changed, as the
embedded broker's does at every start, the referrals topic's partitions changed, its end offsets
went down, or the consumer group's offsets are gone), creates the topics again and
sends every event its outbox keeps as published (a week's worth) again, oldest first, before
anything new; consumers skip what they had by event id. Analytics is paused before the broker is
killed, so events it had not read are on the log that is lost; they are counted all the same,
and the case requires every request to have been accepted meanwhile.

Not covered here: events after the decision (offers accepted, declined, completed), which the
replay sends again like any other but which this load, submissions only, does not make.
"""

DURABLE_CASES = "tests/faults/test_durable_broker.py"


COLUMNS = [
    "case",
    "fault",
    "load",
    "accepted / sent",
    "not accepted",
    "stored",
    "routing decisions + intake escalations",
    "counted",
    "re-published",
    "settle",
    "result",
]


def table_row(cells: Sequence[str]) -> str:
    if len(cells) != len(COLUMNS):  # a row of another width does not render as a table
        raise ValueError(f"{len(cells)} cells for {len(COLUMNS)} columns")
    return "| " + " | ".join(cell.replace("|", "\\|").replace("\n", " ") for cell in cells) + " |"


def run_facts(
    cases: Sequence[CaseReport], *, durations: Mapping[str, float], docker_answered: bool
) -> list[str]:
    """What this run was: fault durations, the services' settings and brokers, whether Docker answered."""
    lines = [
        "Fault durations in this run: " + "; ".join(f"{what} {s:g} s" for what, s in durations.items()) + "."
    ]
    settings: dict[str, list[str]] = {}
    for case in cases:
        rendered = ", ".join(
            f"`SIGNPOST_{name.upper()}={value}`" for name, value in sorted(case.settings.items())
        )
        settings.setdefault(rendered or "the defaults", []).append(case.name)
    for rendered, names in settings.items():
        which = "every case" if len(names) == len(cases) else ", ".join(f"`{name}`" for name in names)
        lines.append(f"Services' settings in {which}: {rendered}.")
    brokers = sorted({case.broker for case in cases})
    lines.append(f"Brokers: {', '.join(brokers)}; database: embedded SecantusDB.")
    durable_ran = any(case.broker != "embedded Tansu" for case in cases)
    if not docker_answered:
        lines.append(
            f"No Docker engine answered on this machine, so the durable-broker cases ({DURABLE_CASES}: "
            "Apache Kafka in a testcontainers container, stopped or killed and started again under "
            "load) were skipped."
        )
    elif not durable_ran:
        lines.append(
            f"A Docker engine answered, but the durable-broker cases ({DURABLE_CASES}) were not run."
        )
    return lines


def write_reliability_report(
    cases: Sequence[CaseReport],
    *,
    path: Path,
    soak: bool,
    at: datetime,
    durations: Mapping[str, float],
    docker_answered: bool,
) -> None:
    lines = [
        INTRO,
        f"Last run: {at:%Y-%m-%d %H:%M} UTC on {platform.machine()} ({platform.python_version()}), "
        f"{'soak mode (SIGNPOST_FAULTS_SOAK=1)' if soak else 'CI mode'}.",
        "",
        *(f"{line}\n" for line in run_facts(cases, durations=durations, docker_answered=docker_answered)),
        table_row(COLUMNS),
        table_row(["---"] * len(COLUMNS)),
    ]
    for case in cases:
        refused = ", ".join(
            f"{'no answer' if status == 0 else status}: {count}"
            for status, count in sorted(case.not_accepted.items())
        )
        lines.append(
            table_row(
                [
                    f"`{case.name}`",
                    case.fault,
                    f"{case.rate:g}/s for {case.seconds:.0f} s",
                    f"{case.accepted} / {case.attempts}",
                    refused or "none",
                    str(case.stored),
                    f"{case.decided_by_routing} + {case.escalated_at_intake}",
                    str(case.counted),
                    str(case.republished),
                    f"{case.settle_s:.1f} s",
                    case.outcome,
                ]
            )
        )
    failed = [case for case in cases if case.failure]
    if failed:
        lines += ["", "## What failed", ""]
        for case in failed:
            lines += [f"`{case.name}` ({case.fault}):", "", "```", case.failure[:3000], "```", ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
