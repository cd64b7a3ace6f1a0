"""The closing summary: sampling tolerance, and agreement with what analytics counted."""

from __future__ import annotations

import math
from typing import Any

from signpost.shared.vocabulary import NeedCode

from signpost.platform.demo.calibration import Calibration
from signpost.platform.demo.referrals import GeneratedReferral
from signpost.platform.demo.summary import DemoSummary, ReferralResult, Z, read_platform_counts

PULSE: dict[str, Any] = {
    "tenant": "E06000023",
    "submitted": 10,
    "by_need_code": {"ASD": 4, "SLCN": 7},
    "by_outcome": {
        "routed": 8,
        "unmatched": 1,
        "escalated_safeguarding": 1,
        "escalated_ehc_assessment": 0,
        "awaiting_decision": 0,
    },
}


def summary_of(referrals: list[GeneratedReferral], calibration: Calibration) -> DemoSummary:
    summary = DemoSummary(period="autumn", seed=1, calibration=calibration)
    for number, referral in enumerate(referrals):
        escalated = referral.safeguarding
        summary.add(
            ReferralResult(
                referral=referral,
                http_status=201,
                id=f"r{number}",
                status="escalated" if escalated else "routed",
                escalation_reason="safeguarding" if escalated else None,
            )
        )
    return summary


def test_need_shares_carry_a_binomial_tolerance(
    referrals: list[GeneratedReferral], calibration: Calibration
) -> None:
    summary = summary_of(referrals[:400], calibration)
    shares = {share.need: share for share in summary.need_shares()}
    slcn = shares[NeedCode.SLCN]
    p = calibration.expected_primary_need_shares()[NeedCode.SLCN]
    assert math.isclose(slcn.tolerance, Z * math.sqrt(p * (1 - p) / 400))
    assert slcn.count == sum(r.primary_need is NeedCode.SLCN for r in referrals[:400])
    assert shares[NeedCode.MSI].verdict == "too few to judge"
    assert "calibration" in summary.render()


def test_the_summary_is_confirmed_only_by_matching_counts(
    referrals: list[GeneratedReferral], calibration: Calibration
) -> None:
    summary = summary_of(referrals[:50], calibration)
    baseline = read_platform_counts(PULSE)
    sent = summary.need_codes_sent()
    after = {
        **PULSE,
        "submitted": PULSE["submitted"] + 50,
        "by_need_code": {code: PULSE["by_need_code"].get(code, 0) + n for code, n in sent.items()},
        "by_outcome": {
            **PULSE["by_outcome"],
            "escalated_safeguarding": 1 + sum(r.safeguarding for r in referrals[:50]),
        },
    }
    summary.platform = read_platform_counts(after).since(baseline)
    assert summary.confirmed_by_platform() == []
    assert "analytics       confirms" in summary.render()

    summary.platform = read_platform_counts({**after, "submitted": 59}).since(baseline)
    assert summary.confirmed_by_platform() == ["submitted: analytics counted 49, the demo 50"]
