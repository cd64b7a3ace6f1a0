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


def test_every_status_is_reachable_from_submitted() -> None:
    seen, frontier = {S.SUBMITTED}, [S.SUBMITTED]
    while frontier:
        for target in TRANSITIONS[frontier.pop()].values():
            if target not in seen:
                seen.add(target)
                frontier.append(target)
    assert seen == set(S)


@pytest.mark.parametrize(
    ("offers", "expected"),
    [
        ([S.ROUTED, S.ROUTED], S.ROUTED),
        ([S.ROUTED, S.DECLINED], S.ROUTED),
        ([S.DECLINED, S.DECLINED], S.DECLINED),
        ([S.ACCEPTED, S.ROUTED], S.ACCEPTED),
        ([S.ACCEPTED, S.DECLINED], S.ACCEPTED),
        ([S.IN_PROGRESS, S.ACCEPTED], S.IN_PROGRESS),
        ([S.COMPLETED, S.ACCEPTED], S.IN_PROGRESS),
        ([S.COMPLETED, S.DECLINED], S.COMPLETED),
        ([S.COMPLETED, S.COMPLETED], S.COMPLETED),
    ],
)
def test_a_package_shows_how_far_it_has_got(offers: list[ReferralStatus], expected: ReferralStatus) -> None:
    assert status_from_offers(offers) is expected


def test_a_package_only_moves_forward() -> None:
    """Whatever order agencies move in, the referral's status never goes back."""
    rank = {S.ROUTED: 0, S.DECLINED: 0, S.ACCEPTED: 1, S.IN_PROGRESS: 2, S.COMPLETED: 3}
    paths = {
        S.ROUTED: [S.ACCEPTED, S.DECLINED],
        S.ACCEPTED: [S.IN_PROGRESS],
        S.IN_PROGRESS: [S.COMPLETED],
    }

    def walk(offers: tuple[ReferralStatus, ...]) -> None:
        before = status_from_offers(list(offers))
        for index, status in enumerate(offers):
            for after in paths.get(status, []):
                moved = (*offers[:index], after, *offers[index + 1 :])
                now = status_from_offers(list(moved))
                if before is not S.DECLINED:
                    assert rank[now] >= rank[before] or (now is S.DECLINED and before is S.ROUTED), (
                        offers,
                        moved,
                    )
                walk(moved)

    walk((S.ROUTED, S.ROUTED, S.ROUTED))
