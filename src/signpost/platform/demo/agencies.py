"""How the simulated agencies act on the offers they receive (calibration.json, `agencies`).

Most offers are accepted after a few working days; the rest are declined with a reason
in the calibrated mix. Support starts within about the service's waiting time, lasts some
weeks, and ends with a needs re-score: the domains a service works on improve by about
its hidden `effect`, so services differ in what they achieve.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from signpost.shared.vocabulary import BROAD_AREA_OF, DeclineReason, NeedCode, NeedsDomain, Outcome, Sector

from signpost.platform.demo.area import LocalArea
from signpost.platform.demo.calibration import Calibration

UNKNOWN_EFFECT = 0.5  # a service not in the demo area (e.g. the starter catalogue)
UNKNOWN_WAIT_WEEKS = 4.0
FAMILY_SECTORS = (Sector.SOCIAL_CARE, Sector.VOLUNTARY)


@dataclass(frozen=True)
class Decision:
    accept: bool
    reason: DeclineReason | None
    decide_after: timedelta
    start_after: timedelta  # from acceptance
    support_for: timedelta  # from the start


@dataclass(frozen=True)
class Completion:
    outcome: Outcome
    needs_profile_after: dict[str, int]

    @property
    def body(self) -> dict[str, Any]:
        return {"outcome": self.outcome.value, "needs_profile_after": self.needs_profile_after}


class AgencyBehaviour:
    def __init__(self, area: LocalArea, calibration: Calibration, *, seed: int) -> None:
        self.area, self.calibration = area, calibration.agencies
        self.rng = random.Random(seed)

    def decide(self, offer: dict[str, Any]) -> Decision:
        """`offer` as `GET /v1/offers` lists it."""
        rng, cal = self.rng, self.calibration
        provision = self.area.provision_named(offer["provision_name"])
        wait = provision.waiting_weeks if provision else UNKNOWN_WAIT_WEEKS
        accept = rng.random() < cal.accept_share
        reasons = list(cal.decline_reasons)
        return Decision(
            accept=accept,
            reason=None if accept else rng.choices(reasons, [cal.decline_reasons[r] for r in reasons])[0],
            decide_after=timedelta(days=rng.uniform(0.5, 5)),
            start_after=timedelta(weeks=wait * rng.uniform(0.5, 1.5)),
            support_for=timedelta(weeks=rng.uniform(*cal.support_weeks)),
        )

    def complete(self, offer: dict[str, Any]) -> Completion:
        """The outcome and re-score when support ends; `offer` carries the needs profile at referral."""
        rng = self.rng
        provision = self.area.provision_named(offer["provision_name"])
        effect = provision.effect if provision else UNKNOWN_EFFECT
        before: dict[str, int] = dict(offer["needs_profile"])
        worked_on = {area.value for need in offer["needs_met"] if (area := BROAD_AREA_OF[NeedCode(need)])}
        if Sector(offer["sector"]) in FAMILY_SECTORS:
            worked_on.add(NeedsDomain.FAMILY_AND_HOME.value)
        if rng.random() < self.calibration.disengage_share:
            return Completion(Outcome.DISENGAGED, before)
        after = {}
        for domain, score in before.items():
            change = round(rng.gauss(effect, 0.6)) if domain in worked_on else rng.choice((0, 0, 0, 1))
            after[domain] = min(4, max(0, score - change))
        improved = sum(before.values()) - sum(after.values())
        if all(after[d] <= 1 for d in worked_on if d in after) and improved > 0:
            outcome = Outcome.NEEDS_MET
        elif improved > 0:
            outcome = Outcome.PARTLY_MET
        else:
            outcome = Outcome.STEPPED_UP if max(after.values(), default=0) >= 3 else Outcome.NOT_MET
        return Completion(outcome, after)
