"""Timestamps accepted from callers: timezone-aware and representable in UTC.

A far-past time with a positive offset (e.g. `0001-01-01T00:16:00+15:16`) parses but
overflows when converted to UTC; refusing it here turns that into a 422, not a 500.
A number is refused too: pydantic would read `until=1.9` as 1.9 s after 1970, which no caller means.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated
from zoneinfo import ZoneInfo

from pydantic import AfterValidator, AwareDatetime, BeforeValidator


def _in_utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("is outside the range of dates that can be expressed in UTC") from None


def _not_a_number(value: object) -> object:
    if isinstance(value, int | float) or (isinstance(value, str) and _is_number(value)):
        raise ValueError("must be a date and time with a zone, such as 2026-01-05T09:00:00Z, not a number")
    return value


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


UtcDateTime = Annotated[AwareDatetime, BeforeValidator(_not_a_number), AfterValidator(_in_utc)]

# Where Signpost's children live: their birthdays and ages follow the English calendar, not UTC's.
ENGLAND = ZoneInfo("Europe/London")


def day_in_england(moment: datetime) -> date:
    """The date in England at `moment` (in summer time, an hour ahead of UTC's)."""
    return moment.astimezone(ENGLAND).date()
