"""The pure fold and the index: facts from events, sums from facts, each event once, whatever the
interleaving of referrals."""

from __future__ import annotations

import gc
import random
from datetime import date, datetime, timedelta
from typing import get_args

from signpost.analytics.projections.counters import Counters, measures, rereferrals
from signpost.analytics.projections.facts import apply_event, fact_id
from signpost.analytics.projections.index import DIMENSIONS, Days, FactIndex, Slice
from signpost.analytics.pulse.reader import Period
from signpost.shared.events import Envelope, EventData, ReferralRoutedV1
from signpost.shared.mongo import Document
from signpost.shared.vocabulary import Sector

from tests.analytics_events import T0, TENANT, Path, lifecycle

MARCH: Days = (date(2026, 3, 1), date(2026, 3, 31))


def fold(events: list[Envelope[EventData]]) -> dict[str, Document]:
    """An in-memory stand-in for the MongoDB fold: the facts, each with its write count."""
    facts: dict[str, Document] = {}
    for envelope in events:
        key = fact_id(envelope.tenant, envelope.data.referral_id)  # type: ignore[attr-defined]
        after = apply_event(facts.get(key), envelope)
        if after is not None:
            facts[key] = {**after, "version": facts.get(key, {}).get("version", 0) + 1}
    return facts


def indexed(facts: dict[str, Document]) -> FactIndex:
    index = FactIndex()
    for fact in facts.values():
        index.upsert(fact)
    return index


def reference(
    facts: dict[str, Document], *, tenant: str, days: Days | None, where: list[Slice], group_by: str | None
) -> dict[str, Counters]:
    """The index's answer worked out the slow, obvious way: `measures` per fact, summed per group."""
    children: dict[tuple[str, str], list[tuple[datetime, str]]] = {}
    for key, fact in facts.items():
        if fact["submitted"] is not None and fact["submitted"]["child_ref"]:
            child = (fact["tenant"], fact["submitted"]["child_ref"])
            children.setdefault(child, []).append((fact["submitted"]["at"], key))
    flagged = {key for child in children.values() for key, flag in rereferrals(child).items() if flag}
    found: dict[str, Counters] = {}
    for key, fact in facts.items():
        fact = {**fact, "rereferral": key in flagged}
        submitted = fact["submitted"]
        if fact["tenant"] != tenant or submitted is None:
            continue
        if days is not None and not days[0] <= submitted["at"].date() <= days[1]:
            continue
        dimensions = {d for d, _ in where} | ({group_by} if group_by else set())
        offers = fact["offers"]
        # Offer dimensions count a referral through the offers they name, once per sector or provision.
        views: list[tuple[dict[str, list[str]], dict[str, Document]]] = []
        base = {
            "locality": [submitted["locality"]],
            "setting": [submitted["setting"]],
            "level": [submitted["level"]],
            "need": list(set(submitted["needs"])),
            "area": list(set(submitted["areas"])),
        }
        if "provision" in dimensions:
            views = [
                ({**base, "provision": [p], "sector": [o["sector"]] if "sector" in o else []}, {p: o})
                for p, o in offers.items()
            ]
        elif "sector" in dimensions:
            sectors = sorted({o["sector"] for o in offers.values() if "sector" in o})
            views = [
                ({**base, "sector": [s]}, {p: o for p, o in offers.items() if o.get("sector") == s})
                for s in sectors
            ]
        else:
            views = [(base, offers)]
        for values, chosen in views:
            if not all(value in values.get(dimension, []) for dimension, value in where):
                continue
            for group in values.get(group_by, []) if group_by else ["total"]:
                into = found.setdefault(group, {})
                for name, value in measures(fact, chosen).items():
                    into[name] = into.get(name, 0) + value
    return {group: {k: v for k, v in counters.items() if v} for group, counters in found.items()}


def total(index: FactIndex, days: Days | None = MARCH, where: list[Slice] | None = None) -> Counters:
    return index.totals(tenant=TENANT, periods=[days], where=where or [])[0]


def test_a_completed_referral_counts_every_stage_and_its_timings() -> None:
    index = indexed(fold(lifecycle("r1", "completed", information=True)))
    assert total(index) == {
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
    assert total(index, (T0.date(), T0.date())) == total(index) == total(index, None)
    assert total(index, (T0.date() + timedelta(days=1), date(2026, 3, 31))) == {}


def test_breakdowns_by_offer_dimensions_count_only_that_offer() -> None:
    index = indexed(fold(lifecycle("r1", "declined", provision="ot-clinic") + lifecycle("r2", "accepted")))
    by_provision = index.breakdown(tenant=TENANT, days=MARCH, where=[], group_by="provision")
    assert by_provision["ot-clinic"] == {
        "submitted": 1, "routed": 1, "route_minutes": 1440, "route_n": 1, "declined": 1, "decline_no_capacity": 1,
    }  # fmt: skip
    assert by_provision["speech-therapy"]["accepted"] == 1
    assert index.breakdown(tenant=TENANT, days=MARCH, where=[], group_by="sector")["health"]["submitted"] == 2
    assert total(index)["declined"] == 1 and total(index)["accepted"] == 1
    slcn = [("need", "SLCN")]
    assert total(index, where=[*slcn, ("provision", "ot-clinic")])["declined"] == 1
    assert total(index, where=[*slcn, ("sector", "health")])["submitted"] == 2
    assert total(index, where=[("provision", "nowhere")]) == {}


def test_escalation_unmatched_and_withdrawal_are_counted_by_reason() -> None:
    index = indexed(
        fold(
            lifecycle("r1", "escalated")
            + lifecycle("r2", "unmatched", needs=("PMLD",), locality="Brent")
            + lifecycle("r3", "withdrawn")
        )
    )
    counted = total(index)
    assert (counted["escalated"], counted["escalated_safeguarding"], counted["unmatched"], counted["withdrawn"]) == (
        1, 1, 1, 1,
    )  # fmt: skip
    by_locality = index.breakdown(
        tenant=TENANT, days=MARCH, where=[("need", "PMLD")], group_by="locality", names=["unmatched"]
    )
    assert by_locality == {"Brent": {"unmatched": 1}}


def test_any_interleaving_of_referrals_gives_the_same_numbers() -> None:
    """A referral's events come in the order they happened (one partition), among other referrals'
    in any order; a submission arriving after the rest all the same is waited for."""
    referrals = [
        lifecycle("r1", "completed", child_ref="c1", information=True),
        lifecycle("r2", "declined", child_ref="c1", at=T0 + timedelta(days=40)),
        lifecycle("r3", "escalated", locality="Brent"),
        lifecycle("r4", "accepted", child_ref="c2", needs=("ASD", "SEMH")),
        lifecycle("r5", "withdrawn"),
    ]
    events = [event for referral in referrals for event in referral]

    def answers(index: FactIndex) -> list[object]:
        return [total(index, None)] + [
            index.breakdown(tenant=TENANT, days=None, where=[], group_by=dimension)
            for dimension in DIMENSIONS
        ]

    expected = answers(indexed(fold(events)))
    rng = random.Random(5)
    for _ in range(20):
        queues = []
        for submission, *rest in referrals:
            rest.insert(rng.randint(0, len(rest)), submission)
            queues.append(rest)
        interleaved = []
        while queues:
            queue = rng.choice(queues)
            interleaved.append(queue.pop(0))
            if not queue:
                queues.remove(queue)
        assert answers(indexed(fold(interleaved))) == expected


def test_a_redelivered_event_changes_nothing() -> None:
    events = lifecycle("r1", "accepted")
    facts = fold(events)
    fact = facts[fact_id(TENANT, "r1")]
    assert all(apply_event(fact, envelope) is None for envelope in events)
    assert total(indexed(fold(events + events))) == total(indexed(facts))


def test_a_fact_stored_with_an_absurd_time_still_loads_into_the_index() -> None:
    """Events with times years ahead are refused now; a fact an earlier release stored from one is
    counted with its durations capped, not an OverflowError that kept analytics from ever loading."""
    fact = fold(lifecycle("r1", "accepted"))[fact_id(TENANT, "r1")]
    for offer in fact["offers"].values():
        offer["accepted_at"] = datetime(9999, 12, 31, tzinfo=fact["submitted"]["at"].tzinfo)
    counted = total(indexed({fact["_id"]: fact}))
    assert counted["accepted"] == 1 and counted["accept_minutes"] == 2**31 - 1


def test_the_index_agrees_with_the_facts_for_any_filters_and_grouping() -> None:
    rng = random.Random(11)
    paths = get_args(Path)
    events: list[Envelope[EventData]] = []
    for n in range(150):
        events += lifecycle(
            f"r{n}",
            rng.choice(paths),
            tenant=rng.choice([TENANT, "E06000022"]),
            at=T0 + timedelta(days=rng.randint(-40, 40), hours=rng.randint(0, 23)),
            locality=rng.choice(["Ashley", "Brent", "Cove"]),
            setting=rng.choice(["URN1", "URN2", "URN3", "URN4"]),
            needs=tuple(rng.sample(["SLCN", "ASD", "SEMH", "PMLD"], rng.randint(1, 2))),
            provision=rng.choice(["speech-therapy", "ot-clinic", "family-hub"]),
            sector=rng.choice(list(Sector)),
            child_ref=rng.choice(["", "c1", "c2"]),
        )
    facts = fold(events)
    index = indexed(facts)
    filters: list[Slice] = [
        ("locality", "Brent"), ("need", "ASD"), ("setting", "URN2"), ("level", "targeted"),
        ("area", "communication_and_interaction"), ("provision", "ot-clinic"), ("sector", "health"),
    ]  # fmt: skip
    for _ in range(120):
        where = rng.sample(filters, rng.randint(0, 2))
        group_by = rng.choice([None, *(d for d in DIMENSIONS if d not in {w for w, _ in where})])
        days = rng.choice([None, MARCH, (date(2026, 2, 10), date(2026, 3, 5))])
        expected = reference(facts, tenant=TENANT, days=days, where=where, group_by=group_by)
        if group_by is None:
            assert index.totals(tenant=TENANT, periods=[days], where=where) == [expected.get("total", {})]
        else:
            assert index.breakdown(tenant=TENANT, days=days, where=where, group_by=group_by) == expected


def test_newer_versions_replace_older_ones_which_are_ignored_even_after_compaction() -> None:
    facts = fold(lifecycle("r1", "completed"))
    fact = facts[fact_id(TENANT, "r1")]
    older = fold(lifecycle("r1", "completed")[:2])[fact_id(TENANT, "r1")]
    index = FactIndex()
    for n in range(6000):  # enough rewrites of one fact to compact its dead rows away
        index.upsert({**fact, "version": n})
    index.upsert(older)  # a change stream catching up with an older copy
    assert total(index)["completed"] == 1 and len(index) == 1
    assert index.referring(tenant=TENANT, days=MARCH, where=[]) == {"URN100001"}


def test_the_index_leaves_the_garbage_collector_nothing_to_walk_per_referral() -> None:
    """A full collection walks every object the collector tracks: an entry per referral it
    tracked would add 226,000 objects to each one at 1M events (bench/analytics.py)."""
    fact = fold(lifecycle("r1", "completed"))[fact_id(TENANT, "r1")]
    index = FactIndex()
    index.upsert(fact)
    gc.collect()
    before = len(gc.get_objects())
    for n in range(2000):
        submitted = {**fact["submitted"], "child_ref": f"child-{n}"}
        index.upsert({**fact, "_id": f"{TENANT}|other-{n}", "submitted": submitted})
    gc.collect()
    gc.collect()  # a tuple is let go once what it holds was: its inner tuples in the first pass
    assert len(index) == 2001
    assert len(gc.get_objects()) - before < 100


def test_a_referral_arriving_late_makes_a_later_one_a_rereferral() -> None:
    later = fold(lifecycle("later", "routed", child_ref="c1", at=T0 + timedelta(days=100)))
    index = indexed(later)
    assert "rereferred" not in total(index, None)
    index.upsert(fold(lifecycle("earlier", "routed", child_ref="c1"))[fact_id(TENANT, "earlier")])
    assert total(index, None)["rereferred"] == 1
    by_provision = index.breakdown(tenant=TENANT, days=None, where=[], group_by="provision")
    assert by_provision == {"speech-therapy": total(index, None)}  # flagged in every view
    newer = {**later[fact_id(TENANT, "later")], "version": 9}  # a rewrite keeps the flag
    index.upsert(newer)
    assert total(index, None)["rereferred"] == 1


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


def test_periods_split_by_week_and_know_the_one_before() -> None:
    period = Period(date(2026, 1, 30), date(2026, 3, 2))
    assert period.previous() == Period(date(2025, 12, 29), date(2026, 1, 29))
    weeks = Period(date(2026, 3, 4), date(2026, 3, 16)).split("week")
    assert [(w.start.day, w.end.day) for w in weeks] == [(4, 8), (9, 15), (16, 16)]


def test_a_view_never_given_a_counter_reads_it_as_zero() -> None:
    # r2's routing never arrived, so its offer has no sector: its counters reach the referral
    # and provision views only, and the sector view is sized for r1's few.
    unrouted = [e for e in lifecycle("r2", "completed") if not isinstance(e.data, ReferralRoutedV1)]
    index = indexed(fold(lifecycle("r1", "routed") + unrouted))
    assert index.breakdown(tenant=TENANT, days=MARCH, where=[], group_by="sector") == {
        "health": {"submitted": 1, "routed": 1, "route_minutes": 1440, "route_n": 1}
    }
    assert index.totals(
        tenant=TENANT, periods=[MARCH], where=[("sector", "health")], names=["completed"]
    ) == [{}]
    assert total(index)["completed"] == 1
