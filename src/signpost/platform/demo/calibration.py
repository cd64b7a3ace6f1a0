"""The published figures and modelling choices the generator is calibrated to (calibration.json)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from signpost.shared.vocabulary import DeclineReason, LevelOfNeed, NeedCode

CALIBRATION_FILE = Path(__file__).with_name("calibration.json")


@dataclass(frozen=True)
class AgencyCalibration:
    accept_share: float
    decline_reasons: dict[DeclineReason, float]
    support_weeks: tuple[int, int]
    disengage_share: float


@dataclass(frozen=True)
class Seasonality:
    holiday_factor: float
    term_start_factor: float
    term_end_factor: float


@dataclass(frozen=True)
class Calibration:
    need_ehc_plan: dict[NeedCode, float]
    need_sen_support: dict[NeedCode, float]
    male_share: float
    re_referral_share: float
    safeguarding_share: float
    level_of_need: dict[LevelOfNeed, float]
    age_weights: dict[int, float]
    secondary_need_share: float
    secondary_needs: dict[NeedCode, list[NeedCode]]
    family_needs_share: float
    seasonality: Seasonality
    referrals_per_school_week: int
    agencies: AgencyCalibration
    sources: dict[str, str]

    def primary_need_shares(self, level: LevelOfNeed) -> dict[NeedCode, float]:
        """Specialist-level referrals have the EHC plan mix; every other level the SEN support mix."""
        return self.need_ehc_plan if level is LevelOfNeed.SPECIALIST else self.need_sen_support

    def expected_primary_need_shares(self) -> dict[NeedCode, float]:
        """The mix over all levels: what a large sample's primary needs should show."""
        expected = {need: 0.0 for need in NeedCode}
        for level, level_share in self.level_of_need.items():
            for need, share in self.primary_need_shares(level).items():
                expected[need] += level_share * share
        return {need: share for need, share in expected.items() if share > 0}


@cache
def load_calibration(path: Path = CALIBRATION_FILE) -> Calibration:
    raw: dict[str, Any] = json.loads(path.read_text())
    agencies = raw["agencies"]
    season = raw["seasonality"]
    return Calibration(
        need_ehc_plan=_normalised(raw["primary_need_ehc_plan"]["shares"], NeedCode),
        need_sen_support=_normalised(raw["primary_need_sen_support"]["shares"], NeedCode),
        male_share=raw["male_share"]["value"],
        re_referral_share=raw["re_referral_within_12_months"]["value"],
        safeguarding_share=raw["safeguarding_concern"]["value"],
        level_of_need=_normalised(raw["level_of_need"]["shares"], LevelOfNeed),
        age_weights={int(age): weight for age, weight in raw["age_years"]["weights"].items()},
        secondary_need_share=raw["secondary_need"]["share"],
        secondary_needs={
            NeedCode(need): [NeedCode(other) for other in others]
            for need, others in raw["secondary_need"]["with"].items()
        },
        family_needs_share=raw["family_needs"]["share"],
        seasonality=Seasonality(
            holiday_factor=season["holiday_factor"],
            term_start_factor=season["term_start_factor"],
            term_end_factor=season["term_end_factor"],
        ),
        referrals_per_school_week=raw["referrals_per_school_week"]["value"],
        agencies=AgencyCalibration(
            accept_share=agencies["accept_share"],
            decline_reasons=_normalised(agencies["decline_reasons"], DeclineReason),
            support_weeks=(agencies["support_weeks"]["min"], agencies["support_weeks"]["max"]),
            disengage_share=agencies["disengage_share"],
        ),
        sources={name: block["source"] for name, block in raw.items() if isinstance(block, dict)},
    )


def _normalised(shares: dict[str, float], kind: Any) -> dict[Any, float]:
    """Published shares are rounded and rarely sum to exactly 1: sample from them rescaled."""
    total = sum(shares.values())
    return {kind(name): share / total for name, share in shares.items()}
