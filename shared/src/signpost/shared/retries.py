"""How a consumer tells its failures apart, and what a parked or dead-lettered message carries.

Three kinds of failure, three treatments (the wiring is in `signpost.shared.kafka`):

- the infrastructure is away (MongoDB unreachable, not primary, timing out): every
  message would fail the same way, so parking them would only reorder the stream.
  The handler is retried in place with capped exponential backoff, in partition order;
- the handler fails on a valid event (a bug, or an event it cannot apply): the
  event is parked on the service's retry topic and the partition moves on; it is
  retried after each of `retry_delays_s`, then dead-lettered;
- the message is not an event at all: dead-lettered at once with the reason.

Pure functions only: no I/O here, so each piece has a unit test.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from pymongo.errors import ConnectionFailure, ExecutionTimeout, PyMongoError, WTimeoutError
from signpost.shared.errors import MAX_ERROR_CHARS

RETRY_PREFIX = "retry_"
DLQ_PREFIX = "dlq_"
NOT_AN_EVENT = "not-an-event"
HANDLER_FAILED = "handler-failed"


def is_infrastructure_failure(exc: BaseException) -> bool:
    """True when MongoDB, not the event, is the problem: retry in place until it is back."""
    if isinstance(exc, ConnectionFailure | ExecutionTimeout | WTimeoutError):
        # ConnectionFailure covers AutoReconnect, NotPrimaryError, NetworkTimeout,
        # ServerSelectionTimeoutError and WaitQueueTimeoutError.
        return True
    if isinstance(exc, PyMongoError):
        return bool(exc.timeout) or exc.has_error_label("TransientTransactionError")
    return False


def backoff_delay(attempt: int, *, initial_s: float, max_s: float) -> float:
    """Pause before in-place attempt `attempt + 1`: initial, doubled each time, capped."""
    return min(max_s, initial_s * 2.0 ** min(attempt - 1, 30))


def original_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The headers the producer sent, without what retries and dead-lettering added."""
    return {name: value for name, value in headers.items() if not name.startswith((RETRY_PREFIX, DLQ_PREFIX))}


@dataclass(frozen=True)
class Origin:
    """Where a message was first read: it keeps this through every retry."""

    topic: str
    partition: int
    offset: int

    def __str__(self) -> str:
        return f"{self.topic}[{self.partition}]@{self.offset}"


@dataclass(frozen=True)
class Failure:
    """A valid event whose handler failed `attempts` times in `service`."""

    service: str
    origin: Origin
    attempts: int
    first_failed_at: datetime
    last_error: str

    @classmethod
    def first(cls, *, service: str, origin: Origin, error: str, now: datetime) -> Failure:
        return cls(service=service, origin=origin, attempts=1, first_failed_at=now, last_error=error)

    def again(self, *, error: str) -> Failure:
        return replace(self, attempts=self.attempts + 1, last_error=error)

    def next_delay(self, delays_s: tuple[float, ...]) -> float | None:
        """The pause before the next attempt, or None when the retries are used up."""
        return delays_s[self.attempts - 1] if self.attempts <= len(delays_s) else None

    def retry_headers(self, *, not_before: datetime) -> dict[str, str]:
        return {
            "retry_service": self.service,
            "retry_topic": self.origin.topic,
            "retry_partition": str(self.origin.partition),
            "retry_offset": str(self.origin.offset),
            "retry_attempts": str(self.attempts),
            "retry_first_failed_at": self.first_failed_at.isoformat(),
            "retry_error": self.last_error,
            "retry_not_before": not_before.isoformat(),
        }

    def dead_letter_headers(self) -> dict[str, str]:
        return dead_letter_headers(
            kind=HANDLER_FAILED,
            error=self.last_error,
            service=self.service,
            origin=self.origin,
            attempts=self.attempts,
            first_failed_at=self.first_failed_at,
        )


@dataclass(frozen=True)
class Parked:
    """A message read back from a retry topic."""

    failure: Failure
    not_before: datetime

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> Parked:
        """Raises ValueError naming the header when the retry record is unreadable."""
        try:
            origin = Origin(
                topic=headers["retry_topic"],
                partition=int(headers["retry_partition"]),
                offset=int(headers["retry_offset"]),
            )
            failure = Failure(
                service=headers["retry_service"],
                origin=origin,
                attempts=int(headers["retry_attempts"]),
                first_failed_at=_aware(headers["retry_first_failed_at"]),
                last_error=headers["retry_error"],
            )
            not_before = _aware(headers["retry_not_before"])
        except KeyError as exc:
            raise ValueError(f"retry header {exc.args[0]} is missing") from None
        if failure.attempts < 1:
            raise ValueError(f"retry header retry_attempts: {failure.attempts} is not a count of failures")
        return cls(failure=failure, not_before=not_before)

    def wait_s(self, now: datetime, *, latest: datetime | None = None) -> float:
        """Seconds until it is due: at `not_before`, or at `latest` when that is sooner.

        A consumer passes the longest retry delay after the record was parked: one due further
        ahead (a bad header, or delays since shortened) would otherwise hold up its partition,
        every parked event behind it, for as long as it says."""
        due = self.not_before if latest is None else min(self.not_before, latest)
        return max(0.0, (due - now).total_seconds())


def retry_due(now: datetime, delay_s: float) -> datetime:
    return now + timedelta(seconds=delay_s)


# What `dead_letter_headers` may set.
DEAD_LETTER_HEADERS = frozenset(
    f"{DLQ_PREFIX}{name}"
    for name in ("kind", "error", "service", "topic", "partition", "offset", "attempts", "first_failed_at")
)


def dead_letter_headers(
    *,
    kind: str,
    error: str,
    service: str,
    origin: Origin,
    attempts: int,
    first_failed_at: datetime | None = None,
) -> dict[str, str]:
    """What `signpost dlq` shows: why, who refused it, where from, after how many attempts."""
    headers = {
        "dlq_kind": kind,
        "dlq_error": error[:MAX_ERROR_CHARS],
        "dlq_service": service,
        "dlq_topic": origin.topic,
        "dlq_partition": str(origin.partition),
        "dlq_offset": str(origin.offset),
        "dlq_attempts": str(attempts),
    }
    if first_failed_at is not None:
        headers["dlq_first_failed_at"] = first_failed_at.isoformat()
    return headers


def _aware(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
