"""Where live events go while a rebuild fills a new projection set, and which of a batch's records
a set being rebuilt must already hold before taking it."""

from __future__ import annotations

from aiokafka import ConsumerRecord, TopicPartition
from signpost.analytics.projections.consumer import Fetched
from signpost.analytics.projections.sets import Pointer, ProjectionSet

ACTIVE, BUILDING = ProjectionSet("live"), ProjectionSet("r20261208000000abcd")


def test_live_events_go_into_a_set_being_rebuilt_only_once_its_replay_has_caught_up() -> None:
    replaying = Pointer(active=ACTIVE, building=BUILDING)
    assert replaying.targets() == [ACTIVE]
    assert replaying.in_use() == [ACTIVE, BUILDING]  # followed all the same, so a swap finds it loaded

    caught_up = Pointer(active=ACTIVE, building=BUILDING, caught_up=True)
    assert caught_up.targets() == [ACTIVE, BUILDING]
    assert caught_up.in_order(BUILDING) and not caught_up.in_order(ACTIVE)

    alone = Pointer(active=ACTIVE, building=None)
    assert alone.targets() == alone.in_use() == [ACTIVE] and not alone.in_order(ACTIVE)


def record(topic: str, partition: int, offset: int) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(
        topic=topic,
        partition=partition,
        offset=offset,
        timestamp=0,
        timestamp_type=0,
        key=b"k",
        value=b"not an event",
        checksum=None,
        serialized_key_size=1,
        serialized_value_size=12,
        headers=[],
    )


def test_a_batch_spans_each_partition_of_an_ordered_topic_from_its_first_record_past_its_last() -> None:
    batch = Fetched(
        {
            TopicPartition("referrals", 0): [record("referrals", 0, 7), record("referrals", 0, 8)],
            TopicPartition("referrals", 3): [record("referrals", 3, 0)],
            TopicPartition("provisions", 0): [record("provisions", 0, 40)],
        },
        max_bytes=1024,
        assignment=0,
    )
    # Records that are not events count too: the set moves past them as the active one does.
    assert batch.events == [] and len(batch.invalid) == 4
    assert batch.spans({"referrals"}) == {("referrals", 0): (7, 9), ("referrals", 3): (0, 1)}
