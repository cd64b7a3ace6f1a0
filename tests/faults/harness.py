"""What every fault case shares: steady load over HTTP while a fault happens, then the invariants."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from pymongo import AsyncMongoClient
from signpost.analytics.projections.sets import read_pointer
from signpost.shared.auth.principal import Role
from signpost.shared.events import ReferralEscalatedV1, ReferralRoutedV1, ReferralUnmatchedV1
from signpost.shared.mongo import Database, Document
from signpost.shared.outbox import OUTBOX, pending_count

from signpost.platform.cluster import LocalCluster
from signpost.platform.loadgen import Attempt, LoadResult, ReferralLoad

DECISION_TYPES = [ReferralRoutedV1.event_type, ReferralUnmatchedV1.event_type, ReferralEscalatedV1.event_type]
SETTLE_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class AnalyticsCounts:
    submitted: int  # referrals counted
    decided: int  # routing outcomes counted (routed, unmatched, escalated)


def admin_headers(cluster: LocalCluster) -> dict[str, str]:
    """An admin sees exact counts (unsuppressed) and routing's decisions."""
    return {"authorization": f"Bearer {cluster.token(Role.ADMIN, 'la-digital')}"}


async def analytics_counts(http: httpx.AsyncClient, cluster: LocalCluster) -> AnalyticsCounts:
    """The one place that reads analytics' counts (adapt here when the pulse API changes)."""
    pulse = (
        (await http.get(cluster.url("analytics", "/v1/pulse"), headers=admin_headers(cluster)))
        .raise_for_status()
        .json()
    )
    outcomes = pulse["by_outcome"]
    return AnalyticsCounts(
        submitted=pulse["submitted"],
        decided=sum(count for name, count in outcomes.items() if name != "awaiting_decision"),
    )


@dataclass
class CaseReport:
    """What one case did and found; docs/reliability.md is written from these."""

    name: str
    fault: str
    rate: float
    seconds: float = 0.0
    attempts: int = 0
    accepted: int = 0
    not_accepted: dict[int, int] = field(default_factory=dict)
    stored: int = 0
    decided_by_routing: int = 0
    escalated_at_intake: int = 0
    counted: int = 0
    republished: int = 0
    settle_s: float = 0.0
    outcome: str = "not run to the end"
    failure: str = ""  # the whole message of what failed, if anything did
    settings: dict[str, str] = field(default_factory=dict)  # the services' settings (SIGNPOST_<NAME>)
    broker: str = "embedded Tansu"


class Steady:
    """Referrals at `rate` per second over HTTP (open loop) until stopped; what intake answered is kept."""

    def __init__(self, cluster: LocalCluster, *, rate: float) -> None:
        tokens = [cluster.token(Role.PRACTITIONER, f"school-{n}") for n in range(4)]
        self._load = ReferralLoad(intake_url=cluster.url("intake"), tokens=tokens, timeout_s=15)
        self._stop = asyncio.Event()
        self._result = LoadResult(rate=rate, duration_s=0.0)
        self._task: asyncio.Task[LoadResult] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(
            self._load.run(rate=self._result.rate, duration_s=24 * 3600, stop=self._stop, result=self._result)
        )

    async def stop(self) -> list[Attempt]:
        self._stop.set()
        assert self._task is not None
        await self._task
        await self._load.close()
        return self.attempts

    @property
    def attempts(self) -> list[Attempt]:
        return list(self._result.attempts)


async def under_load(
    cluster: LocalCluster,
    report: CaseReport,
    fault: Callable[[Steady], Awaitable[None]],
    *,
    warmup_s: float = 3.0,
    cooldown_s: float = 3.0,
) -> list[Attempt]:
    """Steady load, `fault` in the middle of it, then load for a little longer; returns every attempt."""
    started = time.monotonic()
    load = Steady(cluster, rate=report.rate)
    load.start()
    try:
        await asyncio.sleep(warmup_s)
        await fault(load)
        await asyncio.sleep(cooldown_s)
    finally:
        attempts = await load.stop()
    report.seconds = time.monotonic() - started
    report.attempts = len(attempts)
    report.accepted = sum(1 for a in attempts if 200 <= a.status < 300)
    for attempt in attempts:
        if not 200 <= attempt.status < 300:
            report.not_accepted[attempt.status] = report.not_accepted.get(attempt.status, 0) + 1
    return attempts


async def check_invariants(cluster: LocalCluster, attempts: list[Attempt], report: CaseReport) -> None:
    """Every accepted referral is stored, decided exactly once and counted exactly once; no outbox
    holds an unpublished event. Referrals stored without an answer reaching the client (the
    process died mid-request) must meet the same bar: stored means accepted. That holds after a
    broker lost its log too: each service sends its published events again when it finds its
    consumer group's offsets gone, so a decision intake had read but analytics had not still
    reaches analytics."""
    assert cluster.mongodb is not None
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(cluster.mongodb.url, tz_aware=True)
    intake, routing = mongo[cluster.database_name("intake")], mongo[cluster.database_name("routing")]
    accepted = {a.referral_id for a in attempts if 200 <= a.status < 300 and a.referral_id}
    assert accepted, "no referral was accepted at all"
    settle_started = time.monotonic()
    try:
        async with httpx.AsyncClient(timeout=10) as http:
            last: dict[str, Any] = {}

            async def settled() -> bool:
                last.update(
                    undecided=await intake["referrals"].count_documents({"status": "submitted"}),
                    stored=await intake["referrals"].count_documents({}),
                    routing_decisions=await routing["decisions"].count_documents({}),
                    analytics=await analytics_counts(http, cluster),
                    pending=await pending_count(intake) + await pending_count(routing),
                )
                return bool(
                    last["undecided"] == 0
                    and last["pending"] == 0
                    and last["analytics"].submitted >= last["stored"]
                    and last["analytics"].decided >= last["stored"]
                )

            await _eventually(
                settled,
                timeout_s=SETTLE_TIMEOUT_S,
                what=lambda: f"every referral decided and counted (last seen {last}; logs in {cluster.logs})",
            )
            report.settle_s = time.monotonic() - settle_started

            referrals = await intake["referrals"].find({}, {"status": 1, "safeguarding_concern": 1, "timeline": 1,
                                                            "reconciliations": 1, "submitted_event_id": 1}).to_list()  # fmt: skip
            stored = {doc["_id"]: doc for doc in referrals}
            report.stored = len(stored)
            report.republished = sum(1 for doc in referrals if doc.get("reconciliations"))
            lost = accepted - stored.keys()
            assert not lost, f"{len(lost)} accepted referral(s) are not stored: {sorted(lost)[:5]}"

            decisions = {doc["_id"] for doc in await routing["decisions"].find({}, {"_id": 1}).to_list()}
            safeguarding = {rid for rid, doc in stored.items() if doc["safeguarding_concern"]}
            report.decided_by_routing = len(decisions)
            report.escalated_at_intake = len(safeguarding)
            assert decisions == stored.keys() - safeguarding, "routing decided a different set of referrals"
            assert all(stored[rid]["status"] == "escalated" for rid in safeguarding)
            admin = admin_headers(cluster)
            for referral_id in accepted - safeguarding:
                answer = await http.get(cluster.url("routing", f"/v1/decisions/{referral_id}"), headers=admin)
                assert answer.status_code == 200, f"routing has no decision for accepted {referral_id}"

            # Exactly once: one decision event staged per referral, one decision on each timeline.
            staged = await (await routing[OUTBOX].aggregate([
                {"$match": {"headers.ce_type": {"$in": DECISION_TYPES}}},
                {"$group": {"_id": "$key", "events": {"$sum": 1}}},
            ])).to_list()  # fmt: skip
            assert {doc["_id"]: doc["events"] for doc in staged} == dict.fromkeys(decisions, 1)
            for referral_id, doc in stored.items():
                decided_entries = [e for e in doc["timeline"] if e["type"] in DECISION_TYPES]
                assert len(decided_entries) == 1, f"{referral_id} has {len(decided_entries)} decisions"

            # Counted exactly once, referral by referral: a total would let one referral counted
            # twice and another missed cancel out. Analytics keeps one fact per referral, holding
            # the ids of the events folded into it.
            analytics = mongo[cluster.database_name("analytics")]
            facts = await analytics_facts(analytics)
            decision_events = await decision_event_ids(intake) | await decision_event_ids(routing)
            submitted_events = {rid: doc.get("submitted_event_id") for rid, doc in stored.items()}
            problems = counting_problems(submitted_events, facts, decision_events)
            report.counted = sum(1 for fact in facts if fact.get("submitted") is not None)
            assert not problems, f"analytics did not count each referral once: {'; '.join(problems[:10])}"
            counts = await analytics_counts(http, cluster)  # and its pulse agrees with its facts
            assert counts.submitted == len(stored), counts
            assert counts.decided == len(stored), counts

            # Nothing stays unpublished. A late duplicate (a redelivery after a kill, a reconciled
            # submission) may stage a decision again for a moment, so wait for the outboxes to drain.
            async def drained() -> bool:
                return await pending_count(intake) == 0 and await pending_count(routing) == 0

            await _eventually(drained, timeout_s=30, what=lambda: "every outbox drained")
    finally:
        await mongo.close()
    report.outcome = "passed"


async def analytics_facts(analytics: Database) -> list[Document]:
    """Analytics' facts in its active projection set (services/analytics/.../projections/sets.py)."""
    active = (await read_pointer(analytics)).active
    projection = {"referral_id": 1, "events": 1, "submitted": 1}
    return await analytics[active.facts].find({}, projection).to_list()


async def decision_event_ids(db: Database) -> dict[str, set[str]]:
    """The ids of the decision events a service staged, by referral (the outbox's key)."""
    found: dict[str, set[str]] = {}
    async for doc in db[OUTBOX].find({"headers.ce_type": {"$in": DECISION_TYPES}}, {"key": 1}):
        found.setdefault(doc["key"], set()).add(doc["_id"])
    return found


def counting_problems(
    submitted_events: Mapping[str, str | None],
    facts: Sequence[Mapping[str, Any]],
    decision_events: Mapping[str, set[str]],
) -> list[str]:
    """What is wrong with analytics' count, referral by referral: each stored referral (id ->
    its submitted event's id) must have exactly one fact, counted as submitted, holding its
    submitted event and exactly one of its decision events, no event twice; no fact may be of a
    referral that was never stored. Empty when all is well."""
    problems: list[str] = []
    per_referral = Counter(str(fact["referral_id"]) for fact in facts)
    for referral_id in sorted(per_referral.keys() - submitted_events.keys()):
        problems.append(f"{referral_id} counted but never stored")
    for referral_id, times in sorted(per_referral.items()):
        if times > 1 and referral_id in submitted_events:
            problems.append(f"{referral_id} counted {times} times")
    by_referral = {str(fact["referral_id"]): fact for fact in facts}
    for referral_id, submitted_event in sorted(submitted_events.items()):
        fact = by_referral.get(referral_id)
        if fact is None:
            problems.append(f"{referral_id} not counted")
            continue
        events = [str(event_id) for event_id in fact["events"]]
        if fact.get("submitted") is None or submitted_event not in events:
            problems.append(f"{referral_id} not counted as submitted")
        if len(set(events)) != len(events):
            problems.append(f"{referral_id} has an event folded in twice")
        decided = set(events) & decision_events.get(referral_id, set())
        if len(decided) != 1:
            problems.append(f"{referral_id} has {len(decided)} decisions counted")
    return problems


async def _eventually(
    probe: Callable[[], Awaitable[bool]], *, timeout_s: float, what: Callable[[], str]
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if await probe():
                return
        except (httpx.HTTPError, OSError):
            pass  # a service still starting
        await asyncio.sleep(0.25)
    raise AssertionError(f"not reached within {timeout_s:.0f} s: {what()}")
