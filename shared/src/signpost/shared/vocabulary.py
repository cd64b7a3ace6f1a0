"""The SEND domain vocabulary every service speaks (SEND Code of Practice, school census)."""

from __future__ import annotations

from enum import StrEnum


class BroadArea(StrEnum):
    """The four broad areas of need in the SEND Code of Practice (6.28-6.35)."""

    COMMUNICATION_AND_INTERACTION = "communication_and_interaction"
    COGNITION_AND_LEARNING = "cognition_and_learning"
    SOCIAL_EMOTIONAL_MENTAL_HEALTH = "social_emotional_mental_health"
    SENSORY_AND_PHYSICAL = "sensory_and_physical"


class NeedCode(StrEnum):
    """School census primary/secondary SEN need types."""

    SPLD = "SPLD"  # specific learning difficulty
    MLD = "MLD"  # moderate learning difficulty
    SLD = "SLD"  # severe learning difficulty
    PMLD = "PMLD"  # profound and multiple learning difficulty
    SEMH = "SEMH"  # social, emotional and mental health
    SLCN = "SLCN"  # speech, language and communication needs
    HI = "HI"  # hearing impairment
    VI = "VI"  # visual impairment
    MSI = "MSI"  # multi-sensory impairment
    PD = "PD"  # physical disability
    ASD = "ASD"  # autistic spectrum disorder
    OTH = "OTH"  # other difficulty or disability
    NSA = "NSA"  # SEN support but no specialist assessment of type of need


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
