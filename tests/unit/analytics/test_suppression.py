"""Small-number suppression: primary, derived and complementary, and what admins see."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import product

import pytest
from signpost.analytics.pulse.measures import MEASURES
from signpost.analytics.pulse.service import Filters, QueryProblem, check_group
from signpost.analytics.pulse.suppression import (
    THRESHOLD,
    Figure,
    Hidden,
    Reason,
    change,
    count_figure,
    figure,
    hide_counts,
    notice,
)


def test_counts_of_one_to_four_are_hidden_zero_and_five_are_shown() -> None:
    assert count_figure(0, protect=True) == Figure(value=0)
    assert count_figure(4, protect=True) == Figure(value=None, suppressed=True, reason=Reason.SMALL_NUMBER)
    assert count_figure(5, protect=True) == Figure(value=5)
    assert count_figure(4, protect=False) == Figure(value=4)


def test_a_rate_or_mean_over_a_hidden_count_is_hidden() -> None:
    rate, mean = MEASURES["escalation_rate"], MEASURES["days_to_start"]
    few_escalations = {"submitted": 40, "escalated": 3}
    hidden = hide_counts([few_escalations], total=None, counts=["submitted", "escalated"], partition=False)[0]
    assert figure(rate, few_escalations, hidden=hidden, protect=True).reason is Reason.DERIVED
    assert figure(rate, few_escalations, hidden=hidden, protect=False).value == 0.075
    few_starts = {"start_minutes": 3 * 1440 * 4, "start_n": 4}
    hidden = hide_counts([few_starts], total=None, counts=["start_n"], partition=False)[0]
    assert figure(mean, few_starts, hidden=hidden, protect=True).suppressed
    assert figure(mean, few_starts, hidden={}, protect=True).value == 3.0


def test_a_lone_hidden_cell_in_a_partition_takes_the_next_smallest_with_it() -> None:
    rows = [{"submitted": 3}, {"submitted": 9}, {"submitted": 7}, {"submitted": 0}]
    hidden = hide_counts(rows, total={"submitted": 19}, counts=["submitted"], partition=True)
    assert hidden == [
        {"submitted": Reason.SMALL_NUMBER},
        {},
        {"submitted": Reason.COMPLEMENTARY},  # 7, not the 0 (zero reveals nothing)
        {},
    ]


def test_two_hidden_cells_protect_each_other_and_overlapping_groups_need_no_complement() -> None:
    rows = [{"n": 3}, {"n": 2}, {"n": 9}]
    assert hide_counts(rows, total={"n": 14}, counts=["n"], partition=True)[2] == {}
    assert hide_counts([{"n": 3}, {"n": 9}], total={"n": 12}, counts=["n"], partition=False)[1] == {}


SMALL, COMPLEMENT = Reason.SMALL_NUMBER, Reason.COMPLEMENTARY


@pytest.mark.parametrize(
    ("cells", "hidden"),
    [
        ([1, 1, 50], [SMALL, SMALL, COMPLEMENT]),  # else 52 - 50 = 2: both 1
        ([4, 4, 9], [SMALL, SMALL, COMPLEMENT]),  # else 17 - 9 = 8: both 4
        ([1, 5, 50], [SMALL, COMPLEMENT, COMPLEMENT]),  # else 56 - 50 = 6, one 1 to 4, one 5 or more: 1 and 5
    ],
)
def test_hidden_cells_their_sum_pins_down_take_the_next_smallest_with_them(
    cells: list[int], hidden: list[Reason]
) -> None:
    found = hide_counts([{"n": n} for n in cells], total={"n": sum(cells)}, counts=["n"], partition=True)
    assert [row.get("n") for row in found] == hidden


def test_no_hidden_cell_of_a_partition_can_be_worked_out_unless_every_cell_is_hidden() -> None:
    for cells in product([0, 1, 2, 3, 4, 5, 6, 9], repeat=3):
        total = sum(cells)
        found = hide_counts([{"n": n} for n in cells], total={"n": total}, counts=["n"], partition=True)
        if total < THRESHOLD or all("n" in row for row, n in zip(found, cells, strict=True) if n):
            continue  # no total to subtract from; or nothing left to hide (all of 1 + 5 = 6: the known limit)
        assert all(len(values) > 1 for values in worked_out(cells, total, found)), (cells, found)


def worked_out(cells: Sequence[int], total: int, hidden: list[Hidden]) -> list[set[int]]:
    """The values each hidden cell could have, given the total, the cells shown and the reasons."""
    withheld = [i for i, row in enumerate(hidden) if "n" in row]
    left = total - sum(n for i, n in enumerate(cells) if i not in withheld)
    ranges = [
        range(1, THRESHOLD) if hidden[i]["n"] is SMALL else range(THRESHOLD, left + 1) for i in withheld
    ]
    possible: list[set[int]] = [set() for _ in withheld]
    for values in product(*ranges):
        if sum(values) == left:
            for seen, value in zip(possible, values, strict=True):
                seen.add(value)
    return possible


ESCALATIONS = {"submitted": 40, "escalated": 15, "escalated_ehc_assessment": 12, "escalated_safeguarding": 3}


def test_escalations_by_reason_add_up_to_all_so_a_hidden_reason_takes_the_other_with_it() -> None:
    # One cell on its own (the summary, a benchmarking area): 15 escalated less 12 to EHC is 3.
    [hidden] = hide_counts([ESCALATIONS], total=None, counts=list(ESCALATIONS), partition=False)
    shown = {
        name: figure(measure, ESCALATIONS, hidden=hidden, protect=True) for name, measure in MEASURES.items()
    }
    assert shown["escalated"].value == 15 and shown["escalation_rate"].value == 0.375
    assert shown["escalated_safeguarding"].reason is Reason.SMALL_NUMBER
    assert shown["escalated_ehc_assessment"].reason is Reason.COMPLEMENTARY
    assert shown["safeguarding_rate"].reason is shown["ehc_assessment_rate"].reason is Reason.DERIVED
    # The rows of a breakdown of one escalation measure, each row like a cell.
    rows = [ESCALATIONS, {"submitted": 20, "escalated": 9, "escalated_ehc_assessment": 9}]
    hidden_rows = hide_counts(
        rows, total=None, counts=MEASURES["ehc_assessment_rate"].counts(), partition=False
    )
    assert [row.get("escalated_ehc_assessment") for row in hidden_rows] == [Reason.COMPLEMENTARY, None]
    # Both reasons hidden and still pinned down (4 + 4 = 8): the whole is hidden too.
    both = {"escalated": 8, "escalated_ehc_assessment": 4, "escalated_safeguarding": 4}
    assert hide_counts([both], total=None, counts=list(both), partition=False)[0]["escalated"] is (
        Reason.COMPLEMENTARY
    )


def test_a_change_from_a_hidden_figure_is_hidden() -> None:
    assert change(
        Figure(value=10), Figure(value=None, suppressed=True, reason=Reason.SMALL_NUMBER)
    ).suppressed
    assert change(Figure(value=10), Figure(value=6)).value == 4


def test_grouping_by_a_dimension_already_filtered_on_is_refused() -> None:
    check_group(Filters(locality="Ashley", need="ASD", sector="health"), "provision")  # any other is fine
    with pytest.raises(QueryProblem) as refused:
        check_group(Filters(locality="Ashley"), "locality")
    assert refused.value.field == "query.group_by"


def test_callers_below_admin_are_told_that_suppression_applies_and_what_each_reason_means() -> None:
    told = notice(protect=True)
    assert told is not None and told.threshold == THRESHOLD
    assert "suppressed" in told.note
    assert set(told.reasons) == set(Reason)
    assert notice(protect=False) is None  # admins see every figure
