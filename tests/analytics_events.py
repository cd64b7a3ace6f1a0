"""Referral lifecycles as analytics sees them: the events of one referral from submission on."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Literal

from signpost.shared.events import Envelope, EventData
from signpost.shared.vocabulary import (
    DeclineReason,
    EscalationReason,
    NeedCode,
    NeedsDomain,
    Outcome,
    Sector,
    WithdrawReason,
)

from signpost.platform.lifecycles import ReferralEvents, offer

TENANT = "E06000023"
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
Path = Literal[
    "completed", "started", "accepted", "routed", "declined", "unmatched", "escalated", "withdrawn"
]
SCI = NeedsDomain.COMMUNICATION_AND_INTERACTION


def lifecycle(
    referral_id: str,
    path: Path = "completed",
    *,
    tenant: str = TENANT,
    at: datetime = T0,
    locality: str = "Ashley",
    setting: str = "URN100001",
    needs: tuple[str, ...] = ("SLCN",),
    child_ref: str = "",
    provision: str = "speech-therapy",
    sector: Sector = Sector.HEALTH,
    profile_after: int = 1,
    escalation: EscalationReason = EscalationReason.SAFEGUARDING,
    decline: DeclineReason = DeclineReason.NO_CAPACITY,
    information: bool = False,
) -> list[Envelope[EventData]]:
    """Submitted, then as far along `path` as it says; one day between each move."""
    codes = [NeedCode(need) for need in needs]
    referral = ReferralEvents(referral_id, tenant=tenant, source="tests")
    events = [
        referral.submitted(
            at=at,
            needs=codes,
            locality=locality,
            setting_id=setting,
            child_ref=child_ref,
            needs_profile={SCI: 3},
        )
    ]
    if information:
        events.append(referral.information_added(at=at, needs_profile={SCI: 4}))
    if path == "unmatched":
        return [*events, referral.unmatched(at=at, unmet_needs=codes, locality=locality)]
    if path == "escalated":
        return [
            *events,
            referral.escalated(at=at, reason=escalation, locality=locality, setting_id=setting),
        ]
    made = offer(provision, sector=sector, needs_met=codes, organisation_id="agency")
    day = timedelta(days=1)
    events.append(referral.routed(at=at + day, offers=[made]))
    if path == "declined":
        return [*events, referral.declined(made, at=at + 2 * day, reason=decline)]
    if path == "withdrawn":
        return [*events, referral.withdrawn(at=at + 2 * day, reason=WithdrawReason.OTHER)]
    if path == "routed":
        return events
    events.append(referral.accepted(made, at=at + 2 * day))
    if path == "accepted":
        return events
    events.append(referral.started(made, at=at + 4 * day))
    if path == "started":
        return events
    events.append(
        referral.completed(
            made, at=at + 30 * day, outcome=Outcome.NEEDS_MET, needs_profile_after={SCI: profile_after}
        )
    )
    return events
