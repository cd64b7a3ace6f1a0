import pytest
from signpost.shared.lifecycle import (
    CLOSED,
    TRANSITIONS,
    IllegalTransition,
    Move,
    ReferralStatus,
    allowed_moves,
    apply_move,
    status_from_offers,
)

S, M = ReferralStatus, Move


def test_the_closed_loop_happy_path() -> None:
    status = S.SUBMITTED
    for move in (M.ROUTE, M.ACCEPT, M.START, M.COMPLETE):
        status = apply_move(status, move)
    assert status is S.COMPLETED


def test_a_declined_referral_can_be_routed_again() -> None:
    assert apply_move(apply_move(S.ROUTED, M.DECLINE), M.ROUTE) is S.ROUTED


@pytest.mark.parametrize("status", [s for s in S if s not in CLOSED])
def test_withdrawn_from_any_open_state(status: ReferralStatus) -> None:
    assert apply_move(status, M.WITHDRAW) is S.WITHDRAWN


@pytest.mark.parametrize("status", sorted(CLOSED))
def test_closed_referrals_allow_nothing(status: ReferralStatus) -> None:
    assert allowed_moves(status) == []
    with pytest.raises(IllegalTransition, match="none \\(the referral is closed\\)"):
        apply_move(status, M.WITHDRAW)


def test_an_illegal_move_names_the_current_state_and_the_allowed_moves() -> None:
    with pytest.raises(IllegalTransition) as caught:
        apply_move(S.SUBMITTED, M.COMPLETE)
    assert caught.value.current is S.SUBMITTED
    assert caught.value.allowed == [M.ROUTE, M.UNMATCH, M.ESCALATE, M.WITHDRAW]
    assert (
        str(caught.value)
        == "cannot complete a referral that is submitted; allowed: route, unmatch, escalate, withdraw"
    )


def test_an_offers_illegal_move_names_the_offer() -> None:
    with pytest.raises(IllegalTransition) as caught:
        apply_move(S.ROUTED, M.START, {M.ACCEPT, M.DECLINE, M.START, M.COMPLETE}, what="offer")
    assert str(caught.value) == "cannot start an offer that is routed; allowed: accept, decline"


def test_every_status_is_reachable_from_submitted() -> None:
    seen, frontier = {S.SUBMITTED}, [S.SUBMITTED]
    while frontier:
        for target in TRANSITIONS[frontier.pop()].values():
            if target not in seen:
                seen.add(target)
                frontier.append(target)
    assert seen == set(S)


@pytest.mark.parametrize(
    ("offers", "awaiting_routing", "expected"),
    [
        ([S.ROUTED, S.ROUTED], False, S.ROUTED),
        ([S.ROUTED, S.DECLINED], True, S.ROUTED),
        ([S.DECLINED, S.DECLINED], True, S.DECLINED),
        ([S.DECLINED, S.DECLINED], False, S.UNMATCHED),
        ([S.ACCEPTED, S.ROUTED], False, S.ACCEPTED),
        ([S.ACCEPTED, S.DECLINED], True, S.ACCEPTED),
        ([S.IN_PROGRESS, S.ACCEPTED], False, S.IN_PROGRESS),
        ([S.COMPLETED, S.ACCEPTED], False, S.IN_PROGRESS),
        ([S.COMPLETED, S.DECLINED], True, S.IN_PROGRESS),
        ([S.COMPLETED, S.DECLINED], False, S.COMPLETED),
        ([S.COMPLETED, S.COMPLETED], False, S.COMPLETED),
    ],
)
def test_a_package_shows_how_far_it_has_got(
    offers: list[ReferralStatus], awaiting_routing: bool, expected: ReferralStatus
) -> None:
    assert status_from_offers(offers, awaiting_routing=awaiting_routing) is expected


Package = tuple[tuple[ReferralStatus, bool], ...]  # each offer's status, and whether a decline awaits routing


def _package_status(offers: Package) -> ReferralStatus:
    return status_from_offers([status for status, _ in offers], awaiting_routing=any(a for _, a in offers))


def _next(offers: Package) -> list[Package]:
    """Every package one move on: an agency's move, or routing's answer to a decline."""
    agency = {S.ROUTED: [S.ACCEPTED, S.DECLINED], S.ACCEPTED: [S.IN_PROGRESS], S.IN_PROGRESS: [S.COMPLETED]}
    moved: list[Package] = []
    for index, (status, awaiting) in enumerate(offers):
        before, after = offers[:index], offers[index + 1 :]
        moved += [(*before, (to, to is S.DECLINED), *after) for to in agency.get(status, [])]
        if awaiting:  # routing names the needs unmet, or re-routes them to one more offer
            moved.append((*before, (S.DECLINED, False), *after))
            if len(offers) < 5:
                moved.append((*before, (S.DECLINED, False), *after, (S.ROUTED, False)))
    return moved


def test_a_package_only_moves_forward_and_closes_only_once_routing_has_answered() -> None:
    """Whatever order agencies and routing move in, the referral's status never goes back, and it is
    never closed while routing may still replace a declined offer."""
    rank = {S.ROUTED: 0, S.DECLINED: 0, S.UNMATCHED: 0, S.ACCEPTED: 1, S.IN_PROGRESS: 2, S.COMPLETED: 3}
    seen: set[Package] = set()
    frontier: list[Package] = [((S.ROUTED, False),) * 3]
    while frontier:
        offers = frontier.pop()
        before = _package_status(offers)
        assert before not in CLOSED or not any(a for _, a in offers), offers
        for moved in _next(offers):
            assert rank[_package_status(moved)] >= rank[before], (offers, moved)
            if moved not in seen:
                seen.add(moved)
                frontier.append(moved)


def test_a_decline_routing_has_not_answered_keeps_a_finished_package_open() -> None:
    """A completed, B declined: B's replacement may still come, so the referral is not closed."""
    waiting = status_from_offers([S.COMPLETED, S.DECLINED], awaiting_routing=True)
    assert waiting is S.IN_PROGRESS and waiting not in CLOSED
    assert status_from_offers([S.COMPLETED, S.DECLINED, S.ROUTED]) is S.IN_PROGRESS  # re-routed
    assert status_from_offers([S.COMPLETED, S.DECLINED]) is S.COMPLETED  # B's needs named unmet


def test_moves_are_listed_and_refused_among_those_the_caller_can_make() -> None:
    offer_moves = {M.ACCEPT, M.DECLINE, M.START, M.COMPLETE}
    assert allowed_moves(S.ROUTED, offer_moves) == [M.ACCEPT, M.DECLINE]
    assert allowed_moves(S.DECLINED, offer_moves) == []
    with pytest.raises(IllegalTransition) as caught:
        apply_move(S.ROUTED, M.COMPLETE, offer_moves)
    assert caught.value.allowed == [M.ACCEPT, M.DECLINE]
    with pytest.raises(IllegalTransition, match=r"allowed: none$"):
        apply_move(S.DECLINED, M.ACCEPT, offer_moves)
