"""Small-number suppression: primary, derived and complementary, and what admins see."""

from __future__ import annotations

import pytest
from signpost.analytics.pulse.measures import MEASURES
from signpost.analytics.pulse.service import Filters, QueryProblem, check_group
from signpost.analytics.pulse.suppression import (
    THRESHOLD,
    Figure,
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
