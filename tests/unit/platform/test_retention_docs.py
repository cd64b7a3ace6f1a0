"""docs/operations.md says what bounds every collection that grows with use, processed_events
(never pruned, on purpose) included, and how to size analytics' memory."""

from __future__ import annotations

import re
from pathlib import Path

from signpost.intake.audit.service import AUDIT
from signpost.intake.referrals.models import REFERRALS
from signpost.intake.referrals.service import CHILD_DETAILS, IDEMPOTENCY_KEYS
from signpost.intake.subscriptions.models import DELIVERIES
from signpost.routing.decisions.service import DECISIONS, RESERVATIONS
from signpost.routing.decisions.waiting import WAITS
from signpost.shared.mongo import PROCESSED_EVENTS
from signpost.shared.outbox import OUTBOX

OPERATIONS = Path(__file__).parents[3] / "docs" / "operations.md"
GROWING = [
    OUTBOX,
    DELIVERIES,
    IDEMPOTENCY_KEYS,
    PROCESSED_EVENTS,
    REFERRALS,
    CHILD_DETAILS,
    AUDIT,
    DECISIONS,
    WAITS,
    RESERVATIONS,
]


def section(title: str) -> str:
    text = OPERATIONS.read_text()
    found = re.search(rf"^### {re.escape(title)}\n(.*?)(?=^#)", text, re.MULTILINE | re.DOTALL)
    assert found, f"docs/operations.md has no section {title!r}"
    return found.group(1)


def test_the_retention_table_names_what_bounds_each_growing_collection() -> None:
    rows = {
        name: row
        for row in section("What each collection keeps").splitlines()
        for name in re.findall(r"`([a-z_]+)`", row.split("|")[1] if row.startswith("|") else "")
    }
    assert sorted(set(GROWING) - rows.keys()) == []
    assert "on purpose" in rows[PROCESSED_EVENTS]  # not an oversight for someone to "fix"
    assert "nothing" in rows[RESERVATIONS]  # one per offer and per withdrawal, never deleted


def test_analytics_memory_has_a_sizing_formula_for_two_indexes_and_the_cache() -> None:
    text = section("Analytics memory")
    assert "process at rest + 2 \N{MULTIPLICATION SIGN} referrals" in text
    assert "two indexes at once" in text and "cache" in text and "bench/analytics.py" in text
