"""The school year the demo streams: terms, half terms and holidays, and how referrals follow them.

Dates are a typical English local authority's 2025/26 calendar. A day's referral
intensity is relative to an ordinary school day (1.0): weekends and holidays fall to the
calibrated holiday factor, a term starts slowly and peaks before it breaks up.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from signpost.platform.demo.calibration import Seasonality


@dataclass(frozen=True)
class Term:
    name: str
    start: date
    end: date  # last day of term
    half_term: tuple[date, date]

    def in_school(self, day: date) -> bool:
        return (
            self.start <= day <= self.end
            and not (self.half_term[0] <= day <= self.half_term[1])
            and day.weekday() < 5
        )


TERMS: dict[str, Term] = {
    "autumn": Term("autumn", date(2025, 9, 3), date(2025, 12, 19), (date(2025, 10, 27), date(2025, 10, 31))),
    "spring": Term("spring", date(2026, 1, 5), date(2026, 3, 27), (date(2026, 2, 16), date(2026, 2, 20))),
    "summer": Term("summer", date(2026, 4, 13), date(2026, 7, 22), (date(2026, 5, 25), date(2026, 5, 29))),
}
PERIODS = (*TERMS, "year")
WEEKEND_FACTOR = 0.05  # practitioners seldom refer at weekends
RAMP_WEEKS = 2  # a term's first weeks are quieter while settings get to know new pupils
PEAK_WEEKS = 4  # referrals rise before a term breaks up


@dataclass(frozen=True)
class Period:
    name: str
    start: date
    end: date  # inclusive

    @property
    def start_at(self) -> datetime:
        return datetime.combine(self.start, time())

    @property
    def end_at(self) -> datetime:
        """Midnight at the end of the last day."""
        return datetime.combine(self.end + timedelta(days=1), time())

    @property
    def days(self) -> list[date]:
        return [self.start + timedelta(days=n) for n in range((self.end - self.start).days + 1)]


def period(name: str) -> Period:
    """A term, or the school year from the first day of autumn to the day before the next autumn."""
    if name == "year":
        start = TERMS["autumn"].start
        return Period("year", start, start.replace(year=start.year + 1) - timedelta(days=1))
    term = TERMS[name]
    return Period(name, term.start, term.end)


def intensity(day: date, seasonality: Seasonality) -> float:
    """Relative referral volume on `day` (1.0 = an ordinary school day)."""
    term = next((t for t in TERMS.values() if t.start <= day <= t.end), None)
    if day.weekday() >= 5:
        return WEEKEND_FACTOR
    if term is None or not term.in_school(day):
        return seasonality.holiday_factor
    if (day - term.start).days < RAMP_WEEKS * 7:
        return seasonality.term_start_factor
    if (term.end - day).days < PEAK_WEEKS * 7:
        return seasonality.term_end_factor
    return 1.0
