"""Waiting times from the loop: the pure calculation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from signpost.routing.decisions.waiting import MIN_SAMPLES, SAMPLE, current_waiting_weeks, observed_wait_weeks
from signpost.shared.vocabulary import SMALL_NUMBER_THRESHOLD

ACCEPTED = datetime(2026, 9, 1, 10, 0, tzinfo=UTC)


def test_a_wait_runs_from_acceptance_to_start_in_weeks() -> None:
    assert observed_wait_weeks(ACCEPTED, ACCEPTED + timedelta(days=21)) == 3.0
    assert observed_wait_weeks(ACCEPTED, ACCEPTED + timedelta(days=3, hours=12)) == 0.5
    assert observed_wait_weeks(ACCEPTED, ACCEPTED - timedelta(seconds=2)) == 0.0  # clocks a moment apart


def test_too_few_waits_leave_the_catalogue_figure_alone() -> None:
    assert MIN_SAMPLES == SMALL_NUMBER_THRESHOLD == 5  # as few children as analytics would publish
    assert current_waiting_weeks([]) is None
    assert current_waiting_weeks([2.0, 9.0, 4.0, 6.0]) is None
    assert current_waiting_weeks([2.0, 9.0, 4.0, 6.0, 5.0]) == 5.0


def test_the_median_of_the_newest_waits_in_whole_weeks() -> None:
    assert (
        current_waiting_weeks([1.0, 2.0, 3.0, 4.0, 40.0, 50.0]) == 4.0
    )  # 3.5: one long wait does not drag it
    assert (
        current_waiting_weeks([1.4, 1.45, 1.3, 1.2, 1.49]) == 1.0
    )  # a child's own wait, no finer than a week
    assert current_waiting_weeks([0.2, 0.1, 0.3, 0.4, 0.0]) == 0.0
    newest_first = [1.0] * SAMPLE + [30.0] * 5  # older, longer waits have rolled out of the sample
    assert current_waiting_weeks(newest_first) == 1.0


def test_a_wait_beyond_the_catalogue_limit_is_capped() -> None:
    assert current_waiting_weeks([600.0, 700.0, 800.0, 900.0, 1000.0]) == 520
