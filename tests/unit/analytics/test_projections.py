"""The pure fold: facts from events, cells from facts, in any order, each event once."""

from __future__ import annotations

import random
from datetime import date, timedelta

from signpost.analytics.projections.cells import (
    TOTALS,
    Cells,
    accumulate,
    bucket_id,
    changes,
    contributions,
    escape_key,
    rereferrals,
    unescape_key,
    with_months,
)
from signpost.analytics.projections.facts import apply_event, fact_id
from signpost.analytics.pulse.reader import Period
from signpost.shared.events import Envelope, EventData
from signpost.shared.mongo import Document

from tests.analytics_events import T0, TENANT, lifecycle

DAY, MONTH = T0.date().isoformat(), T0.strftime("%Y-%m")


def fold(events: list[Envelope[EventData]]) -> tuple[dict[str, Document], Cells]:
    """An in-memory stand-in for the MongoDB fold: facts and buckets in dicts."""
    facts: dict[str, Document] = {}
    buckets: Cells = {}
    for envelope in events:
        key = fact_id(envelope.tenant, envelope.data.referral_id)  # type: ignore[attr-defined]
        after = apply_event(facts.get(key), envelope)
        if after is not None:
            accumulate(buckets, with_months(changes(facts.get(key), after)))
            facts[key] = after
    return facts, {bucket: cells for bucket, cells in buckets.items()}


def nonzero(buckets: Cells) -> Cells:
    return {
        bucket: {
            cell: kept for cell, values in cells.items() if (kept := {k: v for k, v in values.items() if v})
        }
        for bucket, cells in buckets.items()
    }


def totals(
    buckets: Cells, grain: str = "m", period: str = MONTH, where: tuple[str, str] = ("all", "")
) -> dict[str, int]:
    return buckets.get(bucket_id(TENANT, grain, period, *where), {}).get(TOTALS, {})


def test_a_completed_referral_counts_every_stage_and_its_timings() -> None:
    _, buckets = fold(lifecycle("r1", "completed", information=True))
    assert totals(buckets) == {
        "submitted": 1,
        "routed": 1,
        "route_minutes": 1440,
        "route_n": 1,
        "accepted": 1,
        "accept_minutes": 1440,
        "accept_n": 1,
        "started": 1,
        "start_minutes": 4 * 1440,
        "start_n": 1,
        "completed": 1,
        "outcome_needs_met": 1,
        # Re-scored from 4 (the profile as updated by information added) to 1.
        "needs_change_sum": 3,
        "needs_change_n": 1,
    }
    assert totals(buckets, "d", DAY) == totals(buckets)


def test_breakdowns_by_offer_dimensions_count_only_that_offer() -> None:
    _, buckets = fold(lifecycle("r1", "declined", provision="ot-clinic") + lifecycle("r2", "accepted"))
    everything = buckets[bucket_id(TENANT, "m", MONTH, "all", "")]
    assert everything[("provision", "ot-clinic")] == {
        "submitted": 1, "routed": 1, "route_minutes": 1440, "route_n": 1, "declined": 1, "decline_no_capacity": 1,
    }  # fmt: skip
    assert everything[("provision", "speech-therapy")]["accepted"] == 1
    assert everything[("sector", "health")]["submitted"] == 2
    assert everything[TOTALS]["declined"] == 1 and everything[TOTALS]["accepted"] == 1
    need = buckets[bucket_id(TENANT, "m", MONTH, "need", "SLCN")]
    assert need[("provision", "ot-clinic")]["declined"] == 1 and need[("sector", "health")]["submitted"] == 2


def test_escalation_unmatched_and_withdrawal_are_counted_by_reason() -> None:
    _, buckets = fold(
        lifecycle("r1", "escalated")
        + lifecycle("r2", "unmatched", needs=("PMLD",), locality="Brent")
        + lifecycle("r3", "withdrawn")
    )
    counted = totals(buckets)
    assert (counted["escalated"], counted["escalated_safeguarding"], counted["unmatched"], counted["withdrawn"]) == (
        1, 1, 1, 1,
    )  # fmt: skip
    need = buckets[bucket_id(TENANT, "m", MONTH, "need", "PMLD")]
    assert need[("locality", "Brent")]["unmatched"] == 1


def test_any_arrival_order_gives_the_same_numbers() -> None:
    events = (
        lifecycle("r1", "completed", child_ref="c1", information=True)
        + lifecycle("r2", "declined", child_ref="c1", at=T0 + timedelta(days=40))
        + lifecycle("r3", "escalated", locality="Brent")
        + lifecycle("r4", "accepted", child_ref="c2", needs=("ASD", "SEMH"))
    )
    facts, expected = fold(events)
    rng = random.Random(5)
    for _ in range(20):
        shuffled = events[:]
        rng.shuffle(shuffled)
        assert nonzero(fold(shuffled)[1]) == nonzero(expected)
    final = Cells()
    for fact in facts.values():
        accumulate(final, contributions(fact))
    assert nonzero(final) == nonzero(expected)


def test_a_redelivered_event_changes_nothing() -> None:
    events = lifecycle("r1", "accepted")
    facts, once = fold(events)
    fact = facts[fact_id(TENANT, "r1")]
    assert all(apply_event(fact, envelope) is None for envelope in events)
    assert fold(events + events)[1] == once


def test_rereferral_needs_the_same_child_within_twelve_months() -> None:
    flags = rereferrals(
        [
            (T0, "a"),
            (T0 + timedelta(days=200), "b"),
            (T0 + timedelta(days=700), "c"),
            (T0 - timedelta(days=1), "z"),
        ]
    )
    assert flags == {"z": False, "a": True, "b": True, "c": False}


def test_keys_survive_escaping() -> None:
    awkward = "St. Mary's | $pecial 100%"
    assert (
        "." not in escape_key(awkward) and "$" not in escape_key(awkward) and "|" not in escape_key(awkward)
    )
    assert unescape_key(escape_key(awkward)) == awkward


def test_a_period_reads_whole_months_and_edge_days() -> None:
    period = Period(date(2026, 1, 30), date(2026, 3, 2))
    assert period.buckets() == [
        ("d", "2026-01-30"),
        ("d", "2026-01-31"),
        ("m", "2026-02"),
        ("d", "2026-03-01"),
        ("d", "2026-03-02"),
    ]
    assert period.previous() == Period(date(2025, 12, 29), date(2026, 1, 29))
    weeks = Period(date(2026, 3, 4), date(2026, 3, 16)).split("week")
    assert [(w.start.day, w.end.day) for w in weeks] == [(4, 8), (9, 15), (16, 16)]
