"""A small starter Local Offer so a fresh platform routes referrals from its first minute.

Seeded only into an empty catalogue; a real area imports its own.
"""

from __future__ import annotations

from signpost.routing.catalogue.models import Provision
from signpost.shared.vocabulary import NeedCode, Sector

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
        localities=["*"],
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
        localities=["*"],
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
        localities=["*"],
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
        localities=["*"],
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
        localities=["*"],
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
        localities=["*"],
    ),
)
