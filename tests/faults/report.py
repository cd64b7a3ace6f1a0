"""docs/reliability.md, written from what the fault matrix actually ran (SIGNPOST_WRITE_REPORT=1)."""

from __future__ import annotations

import platform
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from tests.faults.harness import CaseReport

INTRO = """# Reliability: the fault matrix

Written by `SIGNPOST_WRITE_REPORT=1 uv run --extra embedded pytest tests/faults` (do not edit by hand;
run it again). Each case runs the whole platform as separate processes (intake, routing,
analytics) on embedded Tansu and SecantusDB started by the test, drives intake with steady
load over HTTP (realistic referrals from `signpost.platform.samples`), injects one fault, and
then checks the invariants:

- every referral intake stored (every 2xx answer, and any stored while a process died
  mid-request) has exactly one routing decision (routing's `decisions` collection and
  `GET /v1/decisions/{id}`), or is a safeguarding escalation made by intake itself;
- exactly one decision event was staged per referral, and each referral's timeline shows
  exactly one decision;
- analytics counts every stored referral exactly once, and every outcome exactly once;
- no event is left unpublished in intake's or routing's outbox; nothing accepted is lost.

"Settle" is the time from the end of the load until all of the above held. "Re-published"
counts referrals whose submitted event intake's reconciliation job published again
(`SIGNPOST_RECONCILE_AFTER_S=5` in these runs).

After the broker restart each service that relays events finds its consumer group's offsets
gone and sends every event still in its outbox as published (a week's worth) again, oldest
first; consumers skip what they had by event id. So a decision that intake had read but
analytics had not when the broker lost its log is counted too, and this case requires every
outcome counted, like the others.

Not covered here: a durable broker (Apache Kafka via testcontainers) killed and restarted,
since this machine has no Docker engine; and events after the decision (offers accepted,
declined, completed), which the replay sends again like any other but which this load,
submissions only, does not make.
"""


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
    return "| " + " | ".join(cells) + " |"


def write_reliability_report(cases: Sequence[CaseReport], *, path: Path, soak: bool, at: datetime) -> None:
    lines = [
        INTRO,
        f"Last run: {at:%Y-%m-%d %H:%M} UTC on {platform.machine()} ({platform.python_version()}), "
        f"{'soak mode (SIGNPOST_FAULTS_SOAK=1)' if soak else 'CI mode'}.",
        "",
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
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
