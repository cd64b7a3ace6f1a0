"""The fold's cache of what it wrote: bounded, least recently written out first, per collection."""

from __future__ import annotations

from signpost.analytics.projections.cache import WriteCache


def test_keeps_the_most_recently_written_per_collection() -> None:
    cache = WriteCache(size=2)
    cache.put_many("facts", [{"_id": "a", "version": 1}, {"_id": "b", "version": 1}])
    cache.put_many("facts", [{"_id": "a", "version": 2}])  # rewritten: now the most recent
    cache.put_many("tenants", [{"_id": "a", "version": 1}])  # the same id elsewhere is another entry
    assert cache.get_many("facts", ["a", "b", "c"]) == {"a": {"_id": "a", "version": 2}}
    assert cache.get_many("tenants", ["a"]) == {"a": {"_id": "a", "version": 1}}
    cache.clear()
    assert cache.get_many("facts", ["a"]) == {}


def test_size_zero_keeps_nothing() -> None:
    cache = WriteCache(size=0)
    cache.put_many("facts", [{"_id": "a"}])
    assert cache.get_many("facts", ["a"]) == {}


def test_says_since_when_it_holds_copies_so_a_writer_can_tell_whether_it_was_alone_since() -> None:
    cache = WriteCache(size=10)
    assert cache.since is None
    cache.put_many("facts", [{"_id": "a"}])
    first = cache.since
    assert first is not None
    cache.put_many("facts", [{"_id": "b"}])
    assert cache.since == first  # the oldest copy decides
    cache.clear()
    assert cache.since is None
