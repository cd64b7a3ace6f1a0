"""The SEND domain vocabulary every service speaks (SEND Code of Practice, school census)."""

from __future__ import annotations

from enum import StrEnum

# The fewest children a published figure may be about: analytics suppresses counts under it, and
# routing publishes a waiting time learnt from the loop only once this many children have waited.
SMALL_NUMBER_THRESHOLD = 5


class BroadArea(StrEnum):
    """The four broad areas of need in the SEND Code of Practice (6.28-6.35)."""

    COMMUNICATION_AND_INTERACTION = "communication_and_interaction"
    COGNITION_AND_LEARNING = "cognition_and_learning"
    SOCIAL_EMOTIONAL_MENTAL_HEALTH = "social_emotional_mental_health"
    SENSORY_AND_PHYSICAL = "sensory_and_physical"


class NeedCode(StrEnum):
    """School census primary/secondary SEN need types."""

    SPLD = "SPLD"
    MLD = "MLD"
    SLD = "SLD"
    PMLD = "PMLD"
    SEMH = "SEMH"
    SLCN = "SLCN"
    HI = "HI"
    VI = "VI"
    MSI = "MSI"
    PD = "PD"
    ASD = "ASD"
    OTH = "OTH"
    NSA = "NSA"


# Each code's name as the school census gives it (feeds and pages show these).
NEED_NAMES: dict[NeedCode, str] = {
    NeedCode.SPLD: "Specific learning difficulty",
    NeedCode.MLD: "Moderate learning difficulty",
    NeedCode.SLD: "Severe learning difficulty",
    NeedCode.PMLD: "Profound and multiple learning difficulty",
    NeedCode.SEMH: "Social, emotional and mental health",
    NeedCode.SLCN: "Speech, language and communication needs",
    NeedCode.HI: "Hearing impairment",
    NeedCode.VI: "Visual impairment",
    NeedCode.MSI: "Multi-sensory impairment",
    NeedCode.PD: "Physical disability",
    NeedCode.ASD: "Autistic spectrum disorder",
    NeedCode.OTH: "Other difficulty or disability",
    NeedCode.NSA: "SEN support but no specialist assessment of type of need",
}


# Which broad area each census code sits in; OTH and NSA imply none.
BROAD_AREA_OF: dict[NeedCode, BroadArea | None] = {
    NeedCode.SLCN: BroadArea.COMMUNICATION_AND_INTERACTION,
    NeedCode.ASD: BroadArea.COMMUNICATION_AND_INTERACTION,
    NeedCode.SPLD: BroadArea.COGNITION_AND_LEARNING,
    NeedCode.MLD: BroadArea.COGNITION_AND_LEARNING,
    NeedCode.SLD: BroadArea.COGNITION_AND_LEARNING,
    NeedCode.PMLD: BroadArea.COGNITION_AND_LEARNING,
    NeedCode.SEMH: BroadArea.SOCIAL_EMOTIONAL_MENTAL_HEALTH,
    NeedCode.HI: BroadArea.SENSORY_AND_PHYSICAL,
    NeedCode.VI: BroadArea.SENSORY_AND_PHYSICAL,
    NeedCode.MSI: BroadArea.SENSORY_AND_PHYSICAL,
    NeedCode.PD: BroadArea.SENSORY_AND_PHYSICAL,
    NeedCode.OTH: None,
    NeedCode.NSA: None,
}


def broad_areas(needs: list[NeedCode]) -> list[BroadArea]:
    """The broad areas the given need codes imply, in Code of Practice order, no repeats."""
    implied = {BROAD_AREA_OF[need] for need in needs}
    return [area for area in BroadArea if area in implied]


class LevelOfNeed(StrEnum):
    """The local continuum of need; thresholds between levels are each area's own."""

    UNIVERSAL = "universal"
    EARLY_HELP = "early_help"
    TARGETED = "targeted"
    SPECIALIST = "specialist"


class Sector(StrEnum):
    EDUCATION = "education"
    HEALTH = "health"
    SOCIAL_CARE = "social_care"
    VOLUNTARY = "voluntary"


class FamilyNeed(StrEnum):
    """Supporting Families outcome areas, for early help that is family-wide."""

    EDUCATION = "getting_a_good_education"
    EARLY_YEARS = "good_early_years_development"
    HEALTH = "improved_mental_and_physical_health"
    SUBSTANCE_USE = "reducing_harm_from_substance_use"
    FAMILY_RELATIONSHIPS = "improved_family_relationships"
    SAFE_FROM_ABUSE = "children_safe_from_abuse_and_exploitation"
    CRIME = "crime_prevention_and_tackling_crime"
    DOMESTIC_ABUSE = "safe_from_domestic_abuse"
    HOUSING = "secure_housing"
    FINANCIAL_STABILITY = "financial_stability"


class NeedsDomain(StrEnum):
    """The domains of a needs profile: the four broad areas plus the family's situation."""

    COMMUNICATION_AND_INTERACTION = BroadArea.COMMUNICATION_AND_INTERACTION.value
    COGNITION_AND_LEARNING = BroadArea.COGNITION_AND_LEARNING.value
    SOCIAL_EMOTIONAL_MENTAL_HEALTH = BroadArea.SOCIAL_EMOTIONAL_MENTAL_HEALTH.value
    SENSORY_AND_PHYSICAL = BroadArea.SENSORY_AND_PHYSICAL.value
    FAMILY_AND_HOME = "family_and_home"


# 0 no identified need, 1 low, 2 moderate, 3 high, 4 severe: small enough to score
# consistently, fine enough to see change between referral and review.
NEEDS_SCORE_MIN, NEEDS_SCORE_MAX = 0, 4


class Urgency(StrEnum):
    ROUTINE = "routine"
    SOON = "soon"  # within a few weeks
    URGENT = "urgent"  # within days; not a safeguarding emergency


class EscalationReason(StrEnum):
    SAFEGUARDING = "safeguarding"  # straight to the front door (MASH / children's social care)
    EHC_ASSESSMENT = "ehc_assessment"  # recommend an EHC needs assessment request


class DeclineReason(StrEnum):
    NO_CAPACITY = "no_capacity"
    NOT_ELIGIBLE = "not_eligible"
    COULD_NOT_CONTACT = "could_not_contact"
    FAMILY_DECLINED = "family_declined"
    REFERRED_ELSEWHERE = "referred_elsewhere"
    OTHER = "other"


class WithdrawReason(StrEnum):
    NEEDS_MET = "needs_met"
    FAMILY_WITHDREW_CONSENT = "family_withdrew_consent"
    MOVED_AWAY = "moved_away"
    DUPLICATE = "duplicate"
    SUBMITTED_IN_ERROR = "submitted_in_error"
    OTHER = "other"


class LawfulBasis(StrEnum):
    """UK GDPR Article 6 bases a referral's sharing may rest on."""

    CONSENT = "consent"
    PUBLIC_TASK = "public_task"
    LEGAL_OBLIGATION = "legal_obligation"
    VITAL_INTERESTS = "vital_interests"


class Outcome(StrEnum):
    """How support ended, recorded by the agency on completion."""

    NEEDS_MET = "needs_met"
    PARTLY_MET = "needs_partly_met"
    NOT_MET = "needs_not_met"
    STEPPED_UP = "stepped_up"  # to targeted or specialist support
    DISENGAGED = "family_disengaged"
