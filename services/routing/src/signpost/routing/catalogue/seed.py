"""A small starter Local Offer so a fresh platform routes referrals from its first minute.

Seeded only into an empty catalogue; a real area imports its own.
"""

from __future__ import annotations

from signpost.routing.catalogue.models import WHOLE_AREA, Capacity, Contact, DeliveryMode, Provision
from signpost.shared.vocabulary import LevelOfNeed, NeedCode, Sector

EARLY_AND_TARGETED = [LevelOfNeed.EARLY_HELP, LevelOfNeed.TARGETED]
ANY_LEVEL = [LevelOfNeed.UNIVERSAL, LevelOfNeed.EARLY_HELP, LevelOfNeed.TARGETED, LevelOfNeed.SPECIALIST]

STARTER_CATALOGUE: tuple[Provision, ...] = (
    Provision(
        id="slt-community",
        name="Community speech and language therapy",
        organisation="Local NHS community health trust",
        organisation_id="nhs-community-slt",
        sector=Sector.HEALTH,
        need_codes=[NeedCode.SLCN],
        min_age=0,
        max_age=18,
        localities=[WHOLE_AREA],
        levels_of_need=[*EARLY_AND_TARGETED, LevelOfNeed.SPECIALIST],
        capacity=Capacity(available=6, maximum=20),
        waiting_weeks=6,
        contact=Contact(phone="01632 960001"),
    ),
    Provision(
        id="autism-outreach",
        name="Autism and social communication outreach",
        organisation="Local authority inclusion service",
        organisation_id="la-inclusion-service",
        sector=Sector.EDUCATION,
        need_codes=[NeedCode.ASD, NeedCode.SLCN],
        min_age=4,
        max_age=16,
        localities=[WHOLE_AREA],
        levels_of_need=EARLY_AND_TARGETED,
        capacity=Capacity(available=4, maximum=12),
        waiting_weeks=8,
        delivery_mode=DeliveryMode.BLENDED,
    ),
    Provision(
        id="specialist-teaching",
        name="Specialist teaching and learning support",
        organisation="Local authority inclusion service",
        organisation_id="la-inclusion-service",
        sector=Sector.EDUCATION,
        need_codes=[NeedCode.SPLD, NeedCode.MLD],
        min_age=4,
        max_age=16,
        localities=[WHOLE_AREA],
        levels_of_need=EARLY_AND_TARGETED,
        capacity=Capacity(available=10, maximum=30),
        waiting_weeks=3,
    ),
    Provision(
        id="early-mental-health",
        name="Early mental health support in schools",
        organisation="Mental health support team",
        organisation_id="mhst-schools",
        sector=Sector.HEALTH,
        need_codes=[NeedCode.SEMH],
        min_age=5,
        max_age=18,
        localities=[WHOLE_AREA],
        levels_of_need=EARLY_AND_TARGETED,
        capacity=Capacity(available=8, maximum=40),
        waiting_weeks=5,
    ),
    Provision(
        id="sensory-support",
        name="Sensory support service (hearing and vision)",
        organisation="Local authority sensory support team",
        organisation_id="la-sensory-support",
        sector=Sector.EDUCATION,
        need_codes=[NeedCode.HI, NeedCode.VI, NeedCode.MSI],
        min_age=0,
        max_age=19,
        localities=[WHOLE_AREA],
        levels_of_need=ANY_LEVEL,
        capacity=Capacity(available=5, maximum=15),
        waiting_weeks=2,
    ),
    Provision(
        id="children-ot",
        name="Children's occupational therapy",
        organisation="Local NHS community health trust",
        organisation_id="nhs-community-therapies",
        sector=Sector.HEALTH,
        need_codes=[NeedCode.PD],
        min_age=0,
        max_age=18,
        localities=[WHOLE_AREA],
        levels_of_need=[*EARLY_AND_TARGETED, LevelOfNeed.SPECIALIST],
        capacity=Capacity(available=3, maximum=15),
        waiting_weeks=12,
    ),
)
