from datetime import UTC, datetime, timedelta

import pytest
from pymongo.errors import (
    AutoReconnect,
    ConnectionFailure,
    DuplicateKeyError,
    ExecutionTimeout,
    NetworkTimeout,
    NotPrimaryError,
    OperationFailure,
    ServerSelectionTimeoutError,
)
from signpost.shared.retries import (
    Failure,
    Origin,
    Parked,
    backoff_delay,
    dead_letter_headers,
    is_infrastructure_failure,
    original_headers,
)

NOW = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
ORIGIN = Origin("signpost.referrals", 4, 1234)


def test_backoff_doubles_from_the_first_pause_up_to_the_cap() -> None:
    delays = [backoff_delay(attempt, initial_s=0.5, max_s=10) for attempt in range(1, 9)]
    assert delays == [0.5, 1, 2, 4, 8, 10, 10, 10]
    assert backoff_delay(10_000, initial_s=0.5, max_s=10) == 10  # no overflow after days of outage


def transient_write_conflict() -> OperationFailure:
    return OperationFailure("WriteConflict", code=112, details={"errorLabels": ["TransientTransactionError"]})


@pytest.mark.parametrize(
    "error",
    [
        ConnectionFailure("connection refused"),
        AutoReconnect("primary stepped down"),
        NotPrimaryError("not primary"),
        NetworkTimeout("timed out"),
        ServerSelectionTimeoutError("no servers"),
        ExecutionTimeout("operation exceeded time limit", code=50),
        transient_write_conflict(),
    ],
    ids=lambda error: type(error).__name__,
)
def test_database_outages_are_infrastructure_failures(error: Exception) -> None:
    assert is_infrastructure_failure(error)


@pytest.mark.parametrize(
    "error",
    [
        RuntimeError("bug"),
        KeyError("provision_id"),
        DuplicateKeyError("E11000 duplicate key"),
        OperationFailure("bad query", code=2),
    ],
    ids=lambda error: type(error).__name__,
)
def test_handler_errors_are_not_infrastructure_failures(error: Exception) -> None:
    assert not is_infrastructure_failure(error)


def test_retry_delays_are_used_in_turn_then_the_event_is_done_for() -> None:
    failure = Failure.first(service="routing", origin=ORIGIN, error="RuntimeError: bug", now=NOW)
    delays = (1.0, 5.0, 30.0)
    schedule = []
    while (delay := failure.next_delay(delays)) is not None:
        schedule.append((failure.attempts, delay))
        failure = failure.again(error="RuntimeError: bug")
    assert schedule == [(1, 1.0), (2, 5.0), (3, 30.0)]
    assert failure.attempts == 4 and failure.first_failed_at == NOW


def test_a_parked_event_reads_back_what_was_written() -> None:
    failure = Failure.first(service="analytics", origin=ORIGIN, error="KeyError: 'x'", now=NOW)
    not_before = NOW + timedelta(seconds=5)
    headers = {"ce_id": "e-1", **failure.retry_headers(not_before=not_before)}
    parked = Parked.from_headers(headers)
    assert parked.failure == failure and parked.not_before == not_before
    assert parked.wait_s(NOW) == 5 and parked.wait_s(NOW + timedelta(seconds=9)) == 0
    assert original_headers(headers) == {"ce_id": "e-1"}


def test_a_parked_event_is_due_at_the_latest_when_its_consumer_says() -> None:
    failure = Failure.first(service="routing", origin=ORIGIN, error="KeyError: 'x'", now=NOW)
    far_ahead = datetime(9999, 12, 31, tzinfo=UTC)
    parked = Parked.from_headers(failure.retry_headers(not_before=far_ahead))
    assert parked.wait_s(NOW, latest=NOW + timedelta(seconds=30)) == 30
    assert parked.wait_s(NOW + timedelta(seconds=31), latest=NOW + timedelta(seconds=30)) == 0
    soon = Parked.from_headers(failure.retry_headers(not_before=NOW + timedelta(seconds=5)))
    assert soon.wait_s(NOW, latest=NOW + timedelta(seconds=30)) == 5


@pytest.mark.parametrize(
    ("drop_or_change", "message"),
    [
        ({"retry_attempts": None}, "retry header retry_attempts is missing"),
        ({"retry_attempts": "0"}, "not a count of failures"),
        ({"retry_not_before": "tomorrow"}, "Invalid isoformat"),
    ],
)
def test_unreadable_retry_headers_are_named(drop_or_change: dict[str, str | None], message: str) -> None:
    headers = Failure.first(service="routing", origin=ORIGIN, error="E", now=NOW).retry_headers(
        not_before=NOW
    )
    for name, value in drop_or_change.items():
        if value is None:
            del headers[name]
        else:
            headers[name] = value
    with pytest.raises(ValueError, match=message):
        Parked.from_headers(headers)


def test_dead_letter_headers_say_who_why_where_and_how_often() -> None:
    failure = Failure(
        service="intake", origin=ORIGIN, attempts=4, first_failed_at=NOW, last_error="RuntimeError: bug"
    )
    assert failure.dead_letter_headers() == {
        "dlq_kind": "handler-failed",
        "dlq_error": "RuntimeError: bug",
        "dlq_service": "intake",
        "dlq_topic": "signpost.referrals",
        "dlq_partition": "4",
        "dlq_offset": "1234",
        "dlq_attempts": "4",
        "dlq_first_failed_at": "2026-11-24T09:00:00+00:00",
    }
    unreadable = dead_letter_headers(
        kind="not-an-event", error="body: empty", service="routing", origin=ORIGIN, attempts=0
    )
    assert unreadable["dlq_attempts"] == "0" and "dlq_first_failed_at" not in unreadable


def test_original_headers_drop_only_what_retries_and_dead_letters_added() -> None:
    headers = {"ce_id": "e", "content-type": "application/json", "retry_attempts": "1", "dlq_error": "x"}
    assert original_headers(headers) == {"ce_id": "e", "content-type": "application/json"}
