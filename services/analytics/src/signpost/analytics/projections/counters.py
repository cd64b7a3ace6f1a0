"""What one referral fact counts (pure): its measures, seen through some or all of its offers.

Measures are by referral cohort: a referral counts in the period it was submitted
in, with how far it has got since. Offer-level dimensions (sector, provision)
restrict a referral to its offers there: "accepted" by provision P means P accepted it.
Every aggregate is a sum of these over facts (index.py), so it is the same whatever
order the referrals' events came in.

Each is a count of referrals (children), at most one in each view of a referral, which
small-number suppression relies on: a referral completed through several offers counts
once, with the outcome and re-score of its last completion among them.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable
from datetime import datetime

from signpost.analytics.projections.facts import unmatched, unmet_needs
from signpost.shared.mongo import Document

Counters = dict[str, int]
REREFERRAL_MONTHS = 12
MINUTES_PER_DAY = 1440
REREFERRED = "rereferred"
# The index keeps counters as 32-bit integers (4,083 years in minutes). Event times are refused that
# far apart, but a fact stored before they were must still load.
LONGEST_MINUTES = 2**31 - 1


def measures(fact: Document, offers: dict[str, Document]) -> Counters:
    """The measures of one referral, seen through the given offers (all of them, or one provision's)."""
    submitted = fact["submitted"]
    at: datetime = submitted["at"]
    counted: Counters = {"submitted": 1}
    offered = [offer["offered_at"] for offer in offers.values() if "offered_at" in offer]
    if offered:
        counted["routed"] = 1
        _duration(counted, "route", at, min(offered))
    accepted = [
        (offer["accepted_at"], offer.get("offered_at", at))
        for offer in offers.values()
        if "accepted_at" in offer
    ]
    if accepted:
        counted["accepted"] = 1
        first, offered_at = min(accepted)  # the first acceptance, from its own offer
        _duration(counted, "accept", offered_at, first)
    started = [offer["started_at"] for offer in offers.values() if "started_at" in offer]
    if started:
        counted["started"] = 1
        _duration(counted, "start", at, min(started))
    declines = [offer["declined"] for offer in offers.values() if "declined" in offer]
    if declines:
        counted["declined"] = 1
        for reason in declines:
            _add(counted, f"decline_{reason}", 1)
    completions = [(offer["completed_at"], key) for key, offer in offers.items() if "completed_at" in offer]
    if completions:
        last = offers[max(completions)[1]]
        counted["completed"] = 1
        counted[f"outcome_{last['outcome']}"] = 1
        # The profile as last updated when the offer completed (none kept by the previous release,
        # or when it completed before the submission arrived: the referral's).
        before = last.get("profile_before", submitted["profile"])
        common = before.keys() & last["profile_after"].keys()
        if common:
            # Positive = less need: the sum over domains scored both at referral and at completion.
            counted["needs_change_sum"] = sum(before[d] - last["profile_after"][d] for d in common)
            counted["needs_change_n"] = 1
    if unmatched(fact):  # as intake records it, from the whole fact (a previous release's: as stored)
        counted["unmatched"] = 1
    for need in unmet_needs(fact):  # unmet demand by need: only the needs left unmet
        counted[f"unmet_{need}"] = 1
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
    latest: datetime | None = None
    for at, referral_id in sorted(submissions):
        flags[referral_id] = latest is not None and latest >= _months_before(at, REREFERRAL_MONTHS)
        latest = at
    return flags


def _months_before(moment: datetime, months: int) -> datetime:
    """Calendar months, not days (a year may have 366); 12 months before 29 February is 28 February."""
    year, month = divmod(moment.year * 12 + moment.month - 1 - months, 12)
    day = min(moment.day, calendar.monthrange(year, month + 1)[1])
    return moment.replace(year=year, month=month + 1, day=day)


def _duration(counted: Counters, name: str, start: datetime, end: datetime) -> None:
    counted[f"{name}_minutes"] = min(LONGEST_MINUTES, max(0, int((end - start).total_seconds() // 60)))
    counted[f"{name}_n"] = 1


def _add(counted: Counters, name: str, value: int) -> None:
    counted[name] = counted.get(name, 0) + value
