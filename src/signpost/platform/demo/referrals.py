"""Referrals as practitioners in the area would write them, calibrated to calibration.json.

Deterministic: the same area, calibration, seed and `today` give the same referrals.
`today` anchors dates of birth, since the platform works out a child's age on the day it
receives the referral.
"""

from __future__ import annotations

import bisect
import itertools
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any, TypeVar

from signpost.shared.vocabulary import (
    BROAD_AREA_OF,
    FamilyNeed,
    LevelOfNeed,
    NeedCode,
    NeedsDomain,
    Sector,
    Urgency,
)

from signpost.platform.demo.area import LocalArea, Phase, Setting
from signpost.platform.demo.calendar import Period, intensity
from signpost.platform.demo.calibration import Calibration

K = TypeVar("K")
RE_REFERRAL_WINDOW = timedelta(days=365)

BOYS = (
    "Oliver",
    "Muhammad",
    "Noah",
    "George",
    "Leo",
    "Arthur",
    "Jack",
    "Theo",
    "Oscar",
    "Harry",
    "Isaac",
    "Yusuf",
    "Kacper",
    "Tyler",
    "Reggie",
    "Mason",
    "Ibrahim",
    "Ezra",
    "Riley",
    "Jayden",
)
GIRLS = (
    "Olivia",
    "Amelia",
    "Isla",
    "Lily",
    "Freya",
    "Ava",
    "Aisha",
    "Maryam",
    "Sophia",
    "Poppy",
    "Willow",
    "Zara",
    "Evie",
    "Hana",
    "Maja",
    "Ruby",
    "Daisy",
    "Nevaeh",
    "Ellie",
    "Grace",
)
FAMILY_NAMES = (
    "Smith",
    "Jones",
    "Williams",
    "Taylor",
    "Brown",
    "Davies",
    "Evans",
    "Khan",
    "Ali",
    "Hussain",
    "Wilson",
    "Thomas",
    "Roberts",
    "Johnson",
    "Lewis",
    "Walker",
    "Nowak",
    "Okafor",
    "Mohamed",
    "Hughes",
    "Green",
    "Edwards",
    "Hall",
    "Wood",
    "Clarke",
    "Begum",
    "Ahmed",
    "Cooper",
    "Ward",
    "Patel",
)
STREETS = (
    "Church Road",
    "Stapleton Road",
    "Whitehall Road",
    "Gloucester Road",
    "Filton Avenue",
    "Wells Road",
    "Bishport Avenue",
    "Kingsweston Road",
    "Southmead Road",
    "Lodge Causeway",
    "Chelsea Road",
    "Sheene Road",
    "Lockleaze Road",
    "Cheltenham Road",
)
POSTCODE_DISTRICT = {
    "Southmead": "BS10",
    "Henbury and Brentry": "BS10",
    "Lockleaze": "BS7",
    "Horfield": "BS7",
    "Ashley": "BS6",
    "Easton": "BS5",
    "Lawrence Hill": "BS5",
    "Eastville": "BS5",
    "Filwood": "BS4",
    "Hartcliffe and Withywood": "BS13",
    "Bedminster": "BS3",
    "Knowle": "BS4",
    "Avonmouth and Lawrence Weston": "BS11",
    "Clifton": "BS8",
    "Redland": "BS6",
    "Bishopston and Ashley Down": "BS7",
}
# Sharing scopes families agree to, most often every sector.
SHARING: tuple[tuple[tuple[Sector, ...], float], ...] = (
    (tuple(Sector), 0.55),
    ((Sector.EDUCATION, Sector.HEALTH, Sector.SOCIAL_CARE), 0.2),
    ((Sector.EDUCATION, Sector.HEALTH), 0.2),
    ((Sector.HEALTH, Sector.SOCIAL_CARE, Sector.VOLUNTARY), 0.05),
)
URGENCY = {Urgency.ROUTINE: 0.7, Urgency.SOON: 0.25, Urgency.URGENT: 0.05}
FAMILY_NEED_WEIGHTS = {
    FamilyNeed.FAMILY_RELATIONSHIPS: 0.25,
    FamilyNeed.HEALTH: 0.2,
    FamilyNeed.FINANCIAL_STABILITY: 0.15,
    FamilyNeed.EDUCATION: 0.15,
    FamilyNeed.HOUSING: 0.1,
    FamilyNeed.EARLY_YEARS: 0.08,
    FamilyNeed.DOMESTIC_ABUSE: 0.04,
    FamilyNeed.SUBSTANCE_USE: 0.03,
}
# Typical score in the primary need's domain at each level (0-4), before a little noise.
LEVEL_SCORE = {
    LevelOfNeed.UNIVERSAL: 1,
    LevelOfNeed.EARLY_HELP: 2,
    LevelOfNeed.TARGETED: 3,
    LevelOfNeed.SPECIALIST: 4,
}
REFERRER_ROLE = {
    Phase.EARLY_YEARS: ("early_years_practitioner", "health_visitor"),
    Phase.PRIMARY: ("senco", "senco", "teacher"),
    Phase.SECONDARY: ("senco", "senco", "teacher", "school_nurse"),
    Phase.SPECIAL: ("senco", "teacher"),
    Phase.COLLEGE: ("senco", "other"),
}


@dataclass(frozen=True)
class Child:
    given_name: str
    family_name: str
    date_of_birth: date
    male: bool
    nhs_number: str | None
    address: dict[str, str]
    locality: str


@dataclass(frozen=True)
class GeneratedReferral:
    number: int
    at: datetime  # when, on the simulated calendar
    setting: Setting
    child: Child
    age_years: int
    re_referral: bool
    primary_need: NeedCode
    need_codes: tuple[NeedCode, ...]
    level: LevelOfNeed
    safeguarding: bool
    body: dict[str, Any]  # what the practitioner POSTs to /v1/referrals


@dataclass
class _History:
    child: Child
    setting: Setting
    age: int
    primary_need: NeedCode
    level: LevelOfNeed
    last: datetime  # the child's latest referral
    closes: datetime  # when it would have closed


class ReferralGenerator:
    def __init__(self, area: LocalArea, calibration: Calibration, *, seed: int, today: date) -> None:
        self.area, self.calibration, self.today = area, calibration, today
        self.rng = random.Random(seed)
        self._history: list[_History] = []
        self._numbers = itertools.count(1)
        self._localities = {locality.name: locality for locality in area.localities}

    def _referral(self, at: datetime, re_referral_chance: float) -> GeneratedReferral:
        cal, rng = self.calibration, self.rng
        closed = [h for h in self._history if h.closes <= at and at - h.last <= RE_REFERRAL_WINDOW]
        if closed and rng.random() < re_referral_chance:
            past = rng.choice(closed)
            past.last, past.closes = at, self._closes(at)
            return self._build(at, past.child, past.setting, past.age, past.primary_need, past.level, True)
        level = _draw(rng, cal.level_of_need)
        primary = _draw(rng, cal.primary_need_shares(level))
        age = _draw(rng, {age: w for age, w in cal.age_weights.items() if _age_fits(age, primary, level)})
        setting = self._setting_for(age)
        child = self._child(age, setting)
        self._history.append(_History(child, setting, age, primary, level, at, self._closes(at)))
        return self._build(at, child, setting, age, primary, level, False)

    def _closes(self, at: datetime) -> datetime:
        """When a referral made `at` would have closed: after the agencies' calibrated weeks of support.
        The wait for support to start is left out (many referrals close without support, declined or
        unmatched), so even the shortest term has children back in time to reach the calibrated share."""
        return at + timedelta(weeks=self.rng.uniform(*self.calibration.agencies.support_weeks))

    def schedule(self, period: Period, count: int) -> list[datetime]:
        """`count` arrival times over `period`, following school-term seasonality, in order."""
        days = period.days
        cumulative = list(itertools.accumulate(intensity(day, self.calibration.seasonality) for day in days))
        times = []
        for _ in range(count):
            day = days[bisect.bisect_left(cumulative, self.rng.random() * cumulative[-1])]
            seconds = self.rng.uniform(8.5 * 3600, 17.5 * 3600)  # the working day
            times.append(datetime.combine(day, time()) + timedelta(seconds=seconds))
        return sorted(times)

    def expected_count(self, period: Period) -> int:
        """How many referrals the area sends over `period` (calibrated per ordinary school week)."""
        per_day = self.calibration.referrals_per_school_week / 5
        return round(per_day * sum(intensity(day, self.calibration.seasonality) for day in period.days))

    def stream(self, arrivals: Sequence[datetime]) -> Iterator[GeneratedReferral]:
        """A referral at each arrival time. No child can come back in the first weeks, before any earlier
        referral would have closed, so each later referral is a re-referral with the chance that brings
        the whole stream to the calibrated share."""
        wanted = self.calibration.re_referral_share * len(arrivals)
        repeats = 0
        for done, at in enumerate(arrivals):
            referral = self._referral(at, (wanted - repeats) / (len(arrivals) - done))
            repeats += referral.re_referral
            yield referral

    def _setting_for(self, age: int) -> Setting:
        locality = _draw(self.rng, {name: loc.weight for name, loc in self._localities.items()})
        fits = [s for s in self.area.settings if s.min_age <= age <= s.max_age]
        local = [s for s in fits if s.locality == locality and s.phase is not Phase.SPECIAL]
        # A few children of every age are at a special school; colleges take post-16 from anywhere.
        if age >= 2 and self.rng.random() < 0.08:
            local = [s for s in fits if s.phase is Phase.SPECIAL] or local
        return self.rng.choice(local or fits)

    def _child(self, age: int, setting: Setting) -> Child:
        rng = self.rng
        male = rng.random() < self.calibration.male_share
        born = self.today - timedelta(days=age * 365 + rng.randrange(30, 330))
        while _age_on(born, self.today) != age:  # leap years: keep the age exact
            born += timedelta(days=1 if _age_on(born, self.today) > age else -1)
        locality = (
            setting.locality
            if setting.phase not in (Phase.SPECIAL, Phase.COLLEGE)
            else (_draw(rng, {name: loc.weight for name, loc in self._localities.items()}))
        )
        district = POSTCODE_DISTRICT.get(locality, "BS1")
        postcode = f"{district} {rng.randrange(1, 10)}{rng.choice('ABDEFGHJLNPQRSTUWXYZ')}{rng.choice('ABDEFGHJLNPQRSTUWXYZ')}"
        return Child(
            given_name=rng.choice(BOYS if male else GIRLS),
            family_name=rng.choice(FAMILY_NAMES),
            date_of_birth=born,
            male=male,
            nhs_number=_test_nhs_number(rng) if rng.random() < 0.6 else None,
            address={
                "line1": f"{rng.randrange(1, 240)} {rng.choice(STREETS)}",
                "town": "Bristol",
                "postcode": postcode,
            },
            locality=locality,
        )

    def _build(
        self,
        at: datetime,
        child: Child,
        setting: Setting,
        age: int,
        primary: NeedCode,
        level: LevelOfNeed,
        re_referral: bool,
    ) -> GeneratedReferral:
        cal, rng = self.calibration, self.rng
        needs = [primary]
        others = [need for need in cal.secondary_needs.get(primary, []) if _age_fits(age, need, level)]
        if rng.random() < cal.secondary_need_share and others:
            needs.append(rng.choice(others))
        family = []
        if rng.random() < cal.family_needs_share:
            family = sorted({_draw(rng, FAMILY_NEED_WEIGHTS) for _ in range(rng.choice((1, 1, 2)))})
        safeguarding = rng.random() < cal.safeguarding_share
        cycles = rng.choice((0, 1, 1, 2, 2, 3, 4)) if level is not LevelOfNeed.UNIVERSAL else 0
        scope = _draw(rng, dict(SHARING))
        body: dict[str, Any] = {
            "referrer": {
                "name": f"{rng.choice(('Sam', 'Alex', 'Jo', 'Chris', 'Priya', 'Kemi', 'Tom', 'Hannah'))} {rng.choice(FAMILY_NAMES)}",
                "role": rng.choice(REFERRER_ROLE[setting.phase]),
                "organisation": setting.name.split(",")[0],
                "setting_id": setting.id,
            },
            "child": {
                "given_name": child.given_name,
                "family_name": child.family_name,
                "date_of_birth": child.date_of_birth.isoformat(),
                "address": child.address,
                **({"nhs_number": child.nhs_number} if child.nhs_number else {}),
            },
            "locality": child.locality,
            "setting_id": setting.id,
            "need_codes": [need.value for need in needs],
            "family_needs": [need.value for need in family],
            "needs_profile": self._needs_profile(needs, level, bool(family)),
            "level_of_need": level.value,
            "urgency": _draw(rng, URGENCY).value,
            "graduated_approach": {
                "cycles_completed": cycles,
                "summary": "Assess-plan-do-review cycles with in-class support",
                "worked": False if level is LevelOfNeed.SPECIALIST else rng.choice((None, False, True)),
            },
            "consent": {
                "family_agrees_to_early_help": not safeguarding or rng.random() < 0.5,
                "lawful_basis": "consent" if not safeguarding else "public_task",
                "sharing_scope": [sector.value for sector in scope],
            },
            "safeguarding_concern": safeguarding,
            "details": "Synthetic demo referral.",
        }
        return GeneratedReferral(
            number=next(self._numbers),
            at=at,
            setting=setting,
            child=child,
            age_years=age,
            re_referral=re_referral,
            primary_need=primary,
            need_codes=tuple(needs),
            level=level,
            safeguarding=safeguarding,
            body=body,
        )

    def _needs_profile(self, needs: list[NeedCode], level: LevelOfNeed, family: bool) -> dict[str, int]:
        rng = self.rng
        profile: dict[str, int] = {}
        for rank, need in enumerate(needs):
            area = BROAD_AREA_OF[need]
            if area is None:
                continue
            score = LEVEL_SCORE[level] - rank + rng.choice((-1, 0, 0, 0, 1))
            profile[area.value] = max(profile.get(area.value, 0), min(4, max(1, score)))
        if not profile:  # OTH / NSA: the setting still scores what it sees
            profile[NeedsDomain.COGNITION_AND_LEARNING.value] = LEVEL_SCORE[level]
        if family or rng.random() < 0.3:
            profile[NeedsDomain.FAMILY_AND_HOME.value] = rng.randint(1, 3) if family else 1
        return profile


def _age_fits(age: int, need: NeedCode, level: LevelOfNeed) -> bool:
    """Needs a setting cannot yet identify in a baby or toddler are not referred at that age."""
    if need in (NeedCode.SPLD, NeedCode.MLD) and age < 5:
        return False
    return not (need is NeedCode.ASD and age < 2)


def _age_on(born: date, day: date) -> int:
    return day.year - born.year - ((day.month, day.day) < (born.month, born.day))


def _test_nhs_number(rng: random.Random) -> str:
    """A number in the NHS's reserved test range (999 …) with a valid check digit."""
    while True:
        digits = [9, 9, 9, *(rng.randrange(10) for _ in range(6))]
        check = 11 - sum(d * w for d, w in zip(digits, range(10, 1, -1), strict=True)) % 11
        if check == 11:
            check = 0
        if check != 10:
            number = "".join(map(str, [*digits, check]))
            return f"{number[:3]} {number[3:6]} {number[6:]}"


def _draw(rng: random.Random, weights: dict[K, float]) -> K:
    keys = list(weights)
    return rng.choices(keys, weights=[weights[k] for k in keys])[0]
