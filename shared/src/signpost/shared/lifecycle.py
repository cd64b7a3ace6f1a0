"""The closed-loop lifecycle of a referral: one explicit state machine every service shares.

submitted → routed (offers made) / unmatched / escalated → accepted / declined →
in progress → completed; withdrawn from any open state. A declined referral can be
routed again to the next provision.
"""

from __future__ import annotations

from collections.abc import Collection
from enum import StrEnum
from types import MappingProxyType


class ReferralStatus(StrEnum):
    SUBMITTED = "submitted"
    ROUTED = "routed"
    UNMATCHED = "unmatched"
    ESCALATED = "escalated"
    ACCEPTED = "accepted"
    DECLINED = "declined"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    WITHDRAWN = "withdrawn"


class Move(StrEnum):
    ROUTE = "route"
    UNMATCH = "unmatch"
    ESCALATE = "escalate"
    ACCEPT = "accept"
    DECLINE = "decline"
    START = "start"
    COMPLETE = "complete"
    WITHDRAW = "withdraw"


S, M = ReferralStatus, Move

CLOSED: frozenset[ReferralStatus] = frozenset({S.COMPLETED, S.WITHDRAWN})

_MOVES: dict[ReferralStatus, dict[Move, ReferralStatus]] = {
    S.SUBMITTED: {M.ROUTE: S.ROUTED, M.UNMATCH: S.UNMATCHED, M.ESCALATE: S.ESCALATED},
    S.ROUTED: {M.ACCEPT: S.ACCEPTED, M.DECLINE: S.DECLINED, M.ESCALATE: S.ESCALATED},
    S.UNMATCHED: {M.ROUTE: S.ROUTED, M.ESCALATE: S.ESCALATED},
    S.ESCALATED: {},
    S.ACCEPTED: {M.START: S.IN_PROGRESS, M.ESCALATE: S.ESCALATED},
    S.DECLINED: {M.ROUTE: S.ROUTED, M.UNMATCH: S.UNMATCHED, M.ESCALATE: S.ESCALATED},
    S.IN_PROGRESS: {M.COMPLETE: S.COMPLETED, M.ESCALATE: S.ESCALATED},
    S.COMPLETED: {},
    S.WITHDRAWN: {},
}
for _status, _moves in _MOVES.items():
    if _status not in CLOSED:
        _moves[M.WITHDRAW] = S.WITHDRAWN

TRANSITIONS: MappingProxyType[ReferralStatus, MappingProxyType[Move, ReferralStatus]] = MappingProxyType(
    {status: MappingProxyType(moves) for status, moves in _MOVES.items()}
)


ANY_MOVE: frozenset[Move] = frozenset(Move)


class IllegalTransition(ValueError):
    """A move the current status does not allow; says what is allowed instead, of the moves the
    caller could make (`among`)."""

    def __init__(
        self,
        current: ReferralStatus,
        move: Move,
        among: Collection[Move] = ANY_MOVE,
        *,
        what: str = "referral",
    ) -> None:
        self.current = current
        self.move = move
        self.allowed = allowed_moves(current, among)
        none = f"none (the {what} is closed)" if current in CLOSED else "none"
        allowed = ", ".join(self.allowed) or none
        super().__init__(f"cannot {move.value} {_article(what)} that is {current.value}; allowed: {allowed}")


def _article(noun: str) -> str:
    return f"an {noun}" if noun[0] in "aeiou" else f"a {noun}"


def allowed_moves(current: ReferralStatus, among: Collection[Move] = ANY_MOVE) -> list[Move]:
    """The moves `current` allows, of those `among`: a caller lists only what its endpoints take."""
    return [move for move in TRANSITIONS[current] if move in among]


def apply_move(
    current: ReferralStatus, move: Move, among: Collection[Move] = ANY_MOVE, *, what: str = "referral"
) -> ReferralStatus:
    """The status after `move`, or IllegalTransition naming the moves allowed `among` the caller's;
    `what` moves (a referral, or one offer of its package) is what the refusal names."""
    try:
        return TRANSITIONS[current][move]
    except KeyError:
        raise IllegalTransition(current, move, among, what=what) from None


def status_from_offers(offers: list[ReferralStatus], *, awaiting_routing: bool = False) -> ReferralStatus:
    """A routed referral's status, from the statuses of the offers in its package.

    Each offer follows the state machine on its own (one agency's accept or decline);
    the referral shows how far the package has got, and only ever moves forward.
    A declined offer drops out of the package once routing has answered it (re-routed
    to another provision, which joins the package, or its needs named unmet). Until
    then (`awaiting_routing`) the package stays open: in progress rather than completed
    when every other offer is completed, declined rather than unmatched when every offer
    is declined. With every offer declined and answered, the referral is unmatched.
    """
    live = [status for status in offers if status is not S.DECLINED]
    if not live:
        return S.DECLINED if awaiting_routing else S.UNMATCHED
    if all(status is S.COMPLETED for status in live):
        return S.IN_PROGRESS if awaiting_routing else S.COMPLETED
    if S.IN_PROGRESS in live or S.COMPLETED in live:
        return S.IN_PROGRESS
    if S.ACCEPTED in live:
        return S.ACCEPTED
    return S.ROUTED
