from datetime import UTC, datetime

import pytest
from pydantic import TypeAdapter, ValidationError
from signpost.shared.timestamps import UtcDateTime

adapter = TypeAdapter(UtcDateTime)


def test_an_aware_time_is_converted_to_utc() -> None:
    assert adapter.validate_python("2026-01-05T09:00:00+01:00") == datetime(2026, 1, 5, 8, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "words"),
    [("0001-01-01T00:16:00+15:16", "outside the range"), ("2026-01-05T09:00:00", "timezone")],
)
def test_unrepresentable_or_naive_times_are_refused(value: str, words: str) -> None:
    with pytest.raises(ValidationError, match=words):
        adapter.validate_python(value)


@pytest.mark.parametrize("value", ["1.9", "1767603600", " 1e9 ", "-1", 1767603600, 1.9])
def test_a_number_is_refused_rather_than_read_as_seconds_since_1970(value: object) -> None:
    # pydantic alone answers 1970-01-01T00:00:01.9Z for "1.9": an audit query `until=1.9` matched nothing.
    with pytest.raises(ValidationError, match="not a number"):
        adapter.validate_python(value)
    with pytest.raises(ValidationError, match="not a number"):
        TypeAdapter(UtcDateTime | None).validate_python(value)
