"""What tells a running service that the broker lost its log, and what does not."""

from __future__ import annotations

from signpost.shared.logwatch import LogState, log_lost

BEFORE = LogState(ends={0: 40, 1: 37, 2: 52}, committed=True)


def test_a_log_that_kept_going_is_not_lost() -> None:
    assert log_lost(BEFORE, LogState(ends={0: 41, 1: 37, 2: 60}, committed=True), had_offsets=True) is None
    assert log_lost(None, BEFORE, had_offsets=False) is None  # the first reading is only a baseline


def test_a_topic_recreated_with_another_partition_count() -> None:
    now = LogState(ends={0: 0, 1: 2, 2: 0, 3: 1}, committed=False)
    assert "partitions went from [0, 1, 2] to [0, 1, 2, 3]" in str(log_lost(BEFORE, now, had_offsets=True))
    assert log_lost(BEFORE, LogState(ends={}, committed=False), had_offsets=True) is not None


def test_end_offsets_that_went_down() -> None:
    now = LogState(ends={0: 3, 1: 37, 2: 60}, committed=True)  # a new log, and the group committed on it
    assert log_lost(BEFORE, now, had_offsets=True) == "end offsets went down on partition(s) [0]"


def test_offsets_gone_from_a_group_that_had_them() -> None:
    now = LogState(ends={0: 40, 1: 37, 2: 52}, committed=False)
    assert log_lost(BEFORE, now, had_offsets=True) == "the consumer group's committed offsets are gone"
    # A group that never committed (nothing to read yet) says nothing.
    assert log_lost(BEFORE, now, had_offsets=False) is None


def test_a_broker_with_another_cluster_id() -> None:
    # The embedded broker restarted: a new log, which may already look like the old one.
    before = LogState(ends={0: 40, 1: 37, 2: 52}, committed=True, cluster="signpost-a")
    now = LogState(ends={0: 45, 1: 37, 2: 60}, committed=True, cluster="signpost-b")
    assert log_lost(before, now, had_offsets=True) == (
        "the broker's cluster id went from 'signpost-a' to 'signpost-b'"
    )
    kept = LogState(ends={0: 45, 1: 37, 2: 60}, committed=True, cluster="signpost-a")
    assert log_lost(before, kept, had_offsets=True) is None
