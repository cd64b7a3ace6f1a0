"""Referral lifecycles as analytics sees them: the events of one referral from submission on."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Literal

from signpost.shared.events import (
    Envelope,
    EventData,
    ReferralEscalatedV1,
    ReferralRoutedV1,
    ReferralUnmatchedV1,
    ReferralWithdrawnV1,
)
from signpost.shared.lifecycle import ReferralStatus
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


def withdrawn(
    referral: ReferralEvents,
    *,
    at: datetime,
    withdrawn_from: ReferralStatus | None,
    reason: WithdrawReason = WithdrawReason.OTHER,
) -> Envelope[EventData]:
    """A withdrawal as intake publishes it, naming the status it was withdrawn from."""
    return referral.envelope(
        ReferralWithdrawnV1(
            referral_id=referral.referral_id, reason=reason, withdrawn_at=at, withdrawn_from=withdrawn_from
        )
    )


def of_routing(envelope: Envelope[EventData]) -> bool:
    """Whether routing publishes this event (its decisions); intake publishes every other one of a
    referral, the safeguarding escalation with the submission included."""
    data = envelope.data
    if isinstance(data, ReferralEscalatedV1):
        return data.reason is not EscalationReason.SAFEGUARDING
    return isinstance(data, ReferralRoutedV1 | ReferralUnmatchedV1)


def service_orders(events: Sequence[Envelope[EventData]]) -> Iterator[list[Envelope[EventData]]]:
    """Every order of one referral's events that keeps intake's in their order and routing's in
    theirs, as a broker that lost its log gets them again, each service's outbox in its own order."""
    intake = [event for event in events if not of_routing(event)]
    routing = [event for event in events if of_routing(event)]

    def merged(
        left: list[Envelope[EventData]], right: list[Envelope[EventData]]
    ) -> Iterator[list[Envelope[EventData]]]:
        if not left or not right:
            yield [*left, *right]
            return
        for rest in merged(left[1:], right):
            yield [left[0], *rest]
        for rest in merged(left, right[1:]):
            yield [right[0], *rest]

    yield from merged(intake, routing)
