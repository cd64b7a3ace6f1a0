"""What one referral fact counts (pure): its measures, seen through some or all of its offers.

Measures are by referral cohort: a referral counts in the period it was submitted
in, with how far it has got since. Offer-level dimensions (sector, provision)
restrict a referral to its offers there: "accepted" by provision P means P accepted it.
Every aggregate is a sum of these over facts (index.py), so it is the same whatever
order the events came in.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from signpost.shared.mongo import Document

Counters = dict[str, int]
REREFERRAL_WINDOW = timedelta(days=365)
MINUTES_PER_DAY = 1440
REREFERRED = "rereferred"


def measures(fact: Document, offers: dict[str, Document]) -> Counters:
    """The measures of one referral, seen through the given offers (all of them, or one provision's)."""
    submitted = fact["submitted"]
    at: datetime = submitted["at"]
    counted: Counters = {"submitted": 1}
    offered = [offer["offered_at"] for offer in offers.values() if "offered_at" in offer]
    if offered:
        counted["routed"] = 1
        _duration(counted, "route", at, min(offered))
    accepted = [offer for offer in offers.values() if "accepted_at" in offer]
    if accepted:
        counted["accepted"] = 1
        _duration(
            counted,
            "accept",
            min(offer.get("offered_at", at) for offer in accepted),
            min(offer["accepted_at"] for offer in accepted),
        )
    started = [offer["started_at"] for offer in offers.values() if "started_at" in offer]
    if started:
        counted["started"] = 1
        _duration(counted, "start", at, min(started))
    declines = [offer["declined"] for offer in offers.values() if "declined" in offer]
    if declines:
        counted["declined"] = 1
        for reason in declines:
            _add(counted, f"decline_{reason}", 1)
    before = submitted["profile"]
    for offer in offers.values():
        if "completed_at" not in offer:
            continue
        counted["completed"] = 1
        _add(counted, f"outcome_{offer['outcome']}", 1)
        common = before.keys() & offer["profile_after"].keys()
        if common:
            # Positive = less need: the sum over domains scored both at referral and at completion.
            _add(counted, "needs_change_sum", sum(before[d] - offer["profile_after"][d] for d in common))
            _add(counted, "needs_change_n", 1)
    if fact["unmatched"]:
        counted["unmatched"] = 1
    if fact["escalated"]:
        counted["escalated"] = 1
        counted[f"escalated_{fact['escalated']}"] = 1
    if fact["withdrawn_at"] is not None:
        counted["withdrawn"] = 1
    if fact.get("rereferral"):  # worked out across facts by the index
        counted[REREFERRED] = 1
    return counted


def rereferrals(submissions: Iterable[tuple[datetime, str]]) -> dict[str, bool]:
    """Per referral id: was the same child referred before, within the 12 months up to this one?"""
    flags: dict[str, bool] = {}
    earlier: list[datetime] = []
    for at, referral_id in sorted(submissions):
        flags[referral_id] = any(at - previous <= REREFERRAL_WINDOW for previous in earlier)
        earlier.append(at)
    return flags


def _duration(counted: Counters, name: str, start: datetime, end: datetime) -> None:
    counted[f"{name}_minutes"] = max(0, int((end - start).total_seconds() // 60))
    counted[f"{name}_n"] = 1


def _add(counted: Counters, name: str, value: int) -> None:
    counted[name] = counted.get(name, 0) + value
