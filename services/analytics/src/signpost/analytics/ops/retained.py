"""Counts by key of the records a log still retains: dead letters by the service that refused them.

A count that only grows drifts from the topic once retention deletes old records; these drop
them as the log start moves. Records are kept as runs of consecutive offsets with one key, so
memory grows with how often the key changes (a flood from one service is one run), not with
the records.
"""

from __future__ import annotations

from collections import Counter, defaultdict, deque
from dataclasses import dataclass

from aiokafka.structs import TopicPartition


@dataclass
class Run:
    key: str
    first: int  # offset of its first record still retained
    last: int

    @property
    def records(self) -> int:
        return self.last - self.first + 1


class RetainedCounts:
    def __init__(self) -> None:
        self._runs: defaultdict[TopicPartition, deque[Run]] = defaultdict(deque)

    def add(self, partition: TopicPartition, offset: int, key: str) -> None:
        runs = self._runs[partition]
        if runs and runs[-1].key == key and runs[-1].last == offset - 1:
            runs[-1].last = offset
        else:
            runs.append(Run(key, offset, offset))

    def retain_from(self, partition: TopicPartition, low: int) -> None:
        """Forget the records before `low`, the partition's first retained offset."""
        runs = self._runs[partition]
        while runs and runs[0].last < low:
            runs.popleft()
        if runs:
            runs[0].first = max(runs[0].first, low)

    def counts(self) -> Counter[str]:
        counts: Counter[str] = Counter()
        for runs in self._runs.values():
            for run in runs:
                counts[run.key] += run.records
        return counts
