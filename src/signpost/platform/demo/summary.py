"""What the demo did, what the platform says it counted, and how the mix compares with the calibration."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from signpost.shared.vocabulary import NeedCode

from signpost.platform.demo.agencies import Completion
from signpost.platform.demo.calibration import Calibration
from signpost.platform.demo.referrals import GeneratedReferral

# A share outside expected ± 3 binomial standard errors happens about 1 time in 370 by chance, so
# across the dozen need codes a correct generator is flagged in about 1 run in 30. Re-referrals
# repeat a child's need, which widens the spread by up to about a fifth: three leave room for it.
Z = 3.0
FEW = 5  # below this many expected referrals the normal approximation says little
MIN_COMPLETIONS = 5  # a service needs this many completions to be ranked in "what works"
ROUTED_STATUSES = {"routed", "accepted", "declined", "in_progress", "completed"}


@dataclass(frozen=True)
class PlatformCounts:
    """What analytics says it counted. The one place that reads analytics' pulse answer."""

    submitted: int
    by_need_code: dict[str, int]
    routed_decisions: int  # routed events, re-routes after a decline included
    unmatched_decisions: int
    escalated_safeguarding: int
    escalated_ehc_assessment: int
    awaiting_decision: int

    def since(self, baseline: PlatformCounts) -> PlatformCounts:
        """What was counted after `baseline` (analytics keeps counting across demo runs)."""
        return self._minus(baseline)

    def without(self, others: PlatformCounts) -> PlatformCounts:
        """These counts less `others` (referrals someone else sent while the demo ran)."""
        return self._minus(others)

    def _minus(self, other: PlatformCounts) -> PlatformCounts:
        return PlatformCounts(
            submitted=self.submitted - other.submitted,
            by_need_code={
                code: count - other.by_need_code.get(code, 0)
                for code, count in self.by_need_code.items()
                if count - other.by_need_code.get(code, 0)
            },
            routed_decisions=self.routed_decisions - other.routed_decisions,
            unmatched_decisions=self.unmatched_decisions - other.unmatched_decisions,
            escalated_safeguarding=self.escalated_safeguarding - other.escalated_safeguarding,
            escalated_ehc_assessment=self.escalated_ehc_assessment - other.escalated_ehc_assessment,
            awaiting_decision=self.awaiting_decision - other.awaiting_decision,
        )


def read_platform_counts(pulse: dict[str, Any]) -> PlatformCounts:
    outcomes = pulse.get("by_outcome", {})
    return PlatformCounts(
        submitted=pulse.get("submitted", 0),
        by_need_code=dict(pulse.get("by_need_code", {})),
        routed_decisions=outcomes.get("routed", 0),
        unmatched_decisions=outcomes.get("unmatched", 0),
        escalated_safeguarding=outcomes.get("escalated_safeguarding", 0),
        escalated_ehc_assessment=outcomes.get("escalated_ehc_assessment", 0),
        awaiting_decision=outcomes.get("awaiting_decision", 0),
    )


def counts_of(referrals: list[dict[str, Any]]) -> PlatformCounts:
    """What analytics counts for these referrals, from intake's views of them (`GET /v1/referrals`).
    Routed decisions count each routed referral once: re-routes are not compared."""
    statuses = Counter(referral["status"] for referral in referrals)
    escalations = Counter(r["escalation_reason"] for r in referrals if r["status"] == "escalated")
    return PlatformCounts(
        submitted=len(referrals),
        by_need_code=dict(Counter(code for referral in referrals for code in referral["need_codes"])),
        routed_decisions=sum(statuses[status] for status in ROUTED_STATUSES),
        unmatched_decisions=statuses["unmatched"],
        escalated_safeguarding=escalations["safeguarding"],
        escalated_ehc_assessment=escalations["ehc_assessment"],
        awaiting_decision=statuses["submitted"],
    )


@dataclass
class ReferralResult:
    referral: GeneratedReferral
    http_status: int
    id: str | None = None
    status: str | None = None
    escalation_reason: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class NeedShare:
    need: NeedCode
    count: int
    share: float
    expected: float
    tolerance: float  # Z binomial standard errors at this sample size
    sample: int

    @property
    def within(self) -> bool:
        return abs(self.share - self.expected) <= self.tolerance

    @property
    def verdict(self) -> str:
        if self.expected * self.sample < FEW:
            return "too few to judge"
        return "ok" if self.within else "outside"


@dataclass
class DemoSummary:
    period: str
    seed: int
    calibration: Calibration
    catalogue: dict[str, int] = field(default_factory=dict)
    catalogue_skipped: list[str] = field(default_factory=list)
    settings_registered: int = 0
    results: list[ReferralResult] = field(default_factory=list)
    moves: Counter[str] = field(default_factory=Counter)
    referrals_moved: dict[str, set[str]] = field(default_factory=dict)  # move -> referral ids
    move_failures: Counter[str] = field(default_factory=Counter)
    decline_reasons: Counter[str] = field(default_factory=Counter)
    offers_seen: int = 0
    improvement_by_provision: dict[str, list[int]] = field(default_factory=dict)
    still_open: int = 0
    live: PlatformCounts | None = None
    platform: PlatformCounts | None = None  # counted by analytics during this run, others' referrals left out
    others_sent: int = 0  # referrals someone else sent during this run (a person trying the API, say)

    def add(self, result: ReferralResult) -> None:
        self.results.append(result)

    def record_move(
        self, move: str, http_status: int, *, referral_id: str, reason: str | None = None
    ) -> bool:
        if http_status != 200:
            self.move_failures[f"{move} ({http_status})"] += 1
            return False
        self.moves[move] += 1
        self.referrals_moved.setdefault(move, set()).add(referral_id)
        if reason:
            self.decline_reasons[reason] += 1
        return True

    def record_completion(self, offer: dict[str, Any], completion: Completion) -> None:
        before = sum(offer["needs_profile"].values())
        after = sum(completion.needs_profile_after.values())
        self.improvement_by_provision.setdefault(offer["provision_name"], []).append(before - after)

    @property
    def sent(self) -> int:
        return len(self.results)

    @property
    def accepted(self) -> int:
        return sum(1 for r in self.results if r.http_status == 201)

    def accepted_results(self) -> list[ReferralResult]:
        return [r for r in self.results if r.http_status == 201]

    def outcomes(self) -> Counter[str]:
        """Each accepted referral once, by where routing sent it (as intake shows it now)."""
        counts: Counter[str] = Counter()
        for result in self.accepted_results():
            if result.status == "escalated":
                counts[f"escalated_{result.escalation_reason}"] += 1
            elif result.status in ROUTED_STATUSES:
                counts["routed"] += 1
            else:
                counts[result.status or "unknown"] += 1
        return counts

    def need_codes_sent(self) -> Counter[str]:
        return Counter(need.value for r in self.accepted_results() for need in r.referral.need_codes)

    def need_shares(self) -> list[NeedShare]:
        """Primary needs of the referrals sent against the calibrated mix."""
        primaries = Counter(r.referral.primary_need for r in self.results)
        n = len(self.results)
        expected = self.calibration.expected_primary_need_shares()
        return [
            NeedShare(
                need=need,
                count=primaries[need],
                share=primaries[need] / n if n else 0.0,
                expected=p,
                tolerance=Z * math.sqrt(p * (1 - p) / n) if n else 1.0,
                sample=n,
            )
            for need, p in sorted(expected.items(), key=lambda item: -item[1])
        ]

    def status_line(self) -> str:
        live = self.live
        decided = (
            f"routed {live.routed_decisions}  escalated {live.escalated_safeguarding + live.escalated_ehc_assessment}"
            f"  unmatched {live.unmatched_decisions}"
            if live
            else ""
        )
        return (
            f"sent {self.sent} (201: {self.accepted})  {decided}  offers {self.offers_seen}: "
            f"accepted {self.moves['accepted']} declined {self.moves['declined']} "
            f"completed {self.moves['completed']}"
        )

    def confirmed_by_platform(self) -> list[str]:
        """Disagreements between what the demo sent and what analytics counted (empty when none)."""
        if self.platform is None:
            return ["analytics was not read"]
        problems = []
        outcomes = self.outcomes()
        checks = {
            "submitted": (self.platform.submitted, self.accepted),
            "escalated for safeguarding": (
                self.platform.escalated_safeguarding,
                outcomes["escalated_safeguarding"],
            ),
            "escalated for an EHC needs assessment": (
                self.platform.escalated_ehc_assessment,
                outcomes["escalated_ehc_assessment"],
            ),
        }
        for what, (platform, demo) in checks.items():
            if platform != demo:
                problems.append(f"{what}: analytics counted {platform}, the demo {demo}")
        if self.platform.by_need_code != dict(self.need_codes_sent()):
            problems.append(
                f"need codes: analytics counted {self.platform.by_need_code}, the demo sent {dict(self.need_codes_sent())}"
            )
        return problems

    def render(self) -> str:
        outcomes = self.outcomes()
        refused = Counter(r.http_status for r in self.results if r.http_status != 201)
        lines = [
            "",
            f"Signpost demo: {self.period} term{'s' if self.period == 'year' else ''} (seed {self.seed})",
            f"  catalogue       imported {self.catalogue.get('created', 0)} new, "
            f"{self.catalogue.get('updated', 0)} updated, {self.catalogue.get('unchanged', 0)} unchanged, "
            f"{self.catalogue.get('skipped', 0)} skipped",
            *(f"                  skipped {line}" for line in self.catalogue_skipped[:5]),
            f"  settings        {self.settings_registered} registered with analytics (coverage counts them)",
            f"  referrals sent  {self.sent}: accepted by HTTP (201) {self.accepted}"
            + (f", refused {dict(refused)}" if refused else "")
            + f"; re-referrals of the same child {sum(r.referral.re_referral for r in self.results)}",
            f"  routing         routed {outcomes['routed']}, escalated {outcomes['escalated_safeguarding']} "
            f"(safeguarding) + {outcomes['escalated_ehc_assessment']} (EHC needs assessment), "
            f"unmatched {outcomes['unmatched']}, awaiting a decision {outcomes['submitted']}",
            f"  agencies        offers {self.offers_seen}: accepted {self.moves['accepted']}, "
            f"declined {self.moves['declined']} {dict(self.decline_reasons.most_common())}, "
            f"started {self.moves['started']}, completed {self.moves['completed']}; "
            f"{self.still_open} still waiting to start or finish when the period ended",
            # The pulse counts referrals, however many offers each had: these are its figures.
            "  by referral     "
            + ", ".join(
                f"{label} {len(self.referrals_moved.get(move, ()))}"
                for move, label in (
                    ("accepted", "accepted"),
                    ("started", "started"),
                    ("completed", "completed"),
                    ("declined", "with an offer declined"),
                )
            )
            + " (as the dashboard counts them)",
        ]
        if self.move_failures:
            lines.append(f"                  refused moves {dict(self.move_failures)}")
        if self.improvement_by_provision:
            ranked = sorted(
                (
                    (sum(v) / len(v), name, len(v))
                    for name, v in self.improvement_by_provision.items()
                    if len(v) >= MIN_COMPLETIONS
                ),
                reverse=True,
            )
            if ranked:
                best, worst = ranked[0], ranked[-1]
                lines.append(
                    f"  what works      mean needs-score improvement: best {best[1]} {best[0]:+.1f} "
                    f"(n={best[2]}), least {worst[1]} {worst[0]:+.1f} (n={worst[2]})"
                )
        lines.append(f"  primary need    sent     share   calibration (± {Z:g} standard errors)")
        for share in self.need_shares():
            lines.append(
                f"    {share.need.value:<5}       {share.count:>5}  {share.share:>7.1%}   "
                f"{share.expected:>6.1%} ± {share.tolerance:.1%}  {share.verdict}"
            )
        if self.others_sent:
            lines.append(
                f"  not the demo's  {self.others_sent} referral{'s' if self.others_sent != 1 else ''} "
                "sent by someone else during the run: the demo's agencies left them alone, "
                "and the check below leaves them out"
            )
        problems = self.confirmed_by_platform()
        lines.append(
            "  analytics       confirms these counts (submitted, escalations, need codes)"
            if not problems
            else "  analytics       differs: " + "; ".join(problems)
        )
        return "\n".join(lines)
