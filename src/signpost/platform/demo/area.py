"""A synthetic local area, the same for the same seed: localities, settings and the Local Offer.

The localities are wards of the default tenant (Bristol, E06000023) grouped into four
family-hub areas; every setting and service is invented, but each service is of a kind a
real Local Offer lists, with realistic ages, needs, levels, capacity and waits. Each
service also has a hidden `effect` (how far its support improves needs scores), which
only the simulated agencies know, so "what works" has something to find.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from enum import StrEnum

from signpost.shared.vocabulary import BroadArea, LevelOfNeed, NeedCode, Sector

DEFAULT_SEED = 2025

# Ward -> family-hub area. Population weights are rough relative sizes of their school rolls.
LOCALITIES: tuple[tuple[str, str, float], ...] = (
    ("Southmead", "North", 1.0),
    ("Henbury and Brentry", "North", 0.9),
    ("Lockleaze", "North", 0.9),
    ("Horfield", "North", 0.8),
    ("Ashley", "East Central", 1.1),
    ("Easton", "East Central", 1.0),
    ("Lawrence Hill", "East Central", 1.3),
    ("Eastville", "East Central", 0.9),
    ("Filwood", "South", 1.1),
    ("Hartcliffe and Withywood", "South", 1.2),
    ("Bedminster", "South", 0.8),
    ("Knowle", "South", 0.9),
    ("Avonmouth and Lawrence Weston", "West", 1.0),
    ("Clifton", "West", 0.6),
    ("Redland", "West", 0.6),
    ("Bishopston and Ashley Down", "West", 0.7),
)

E = LevelOfNeed.EARLY_HELP
T = LevelOfNeed.TARGETED
S = LevelOfNeed.SPECIALIST
U = LevelOfNeed.UNIVERSAL
CI = BroadArea.COMMUNICATION_AND_INTERACTION
CL = BroadArea.COGNITION_AND_LEARNING
SEMH = BroadArea.SOCIAL_EMOTIONAL_MENTAL_HEALTH
SP = BroadArea.SENSORY_AND_PHYSICAL
ALL_AREAS = (CI, CL, SEMH, SP)


class Phase(StrEnum):
    EARLY_YEARS = "early_years"
    PRIMARY = "primary"
    SECONDARY = "secondary"
    SPECIAL = "special"
    COLLEGE = "college"


PHASE_AGES: dict[Phase, tuple[int, int]] = {
    Phase.EARLY_YEARS: (0, 4),
    Phase.PRIMARY: (4, 11),
    Phase.SECONDARY: (11, 18),
    Phase.SPECIAL: (2, 19),
    Phase.COLLEGE: (16, 25),
}


@dataclass(frozen=True)
class Locality:
    name: str
    hub: str
    weight: float


@dataclass(frozen=True)
class Setting:
    id: str  # a URN (schools, colleges) or an Ofsted EY number (early years)
    name: str
    phase: Phase
    locality: str
    min_age: int
    max_age: int

    @property
    def organisation_id(self) -> str:
        """The practitioner token's `org` claim for this setting."""
        return _slug(f"{self.id}-{self.name}")[:64]


@dataclass(frozen=True)
class DemoProvision:
    key: str  # stable within the area: the ORUK ids derive from it
    name: str
    description: str
    organisation: str
    sector: Sector
    need_codes: tuple[NeedCode, ...]
    broad_areas: tuple[BroadArea, ...]
    min_age: int
    max_age: int
    localities: tuple[str, ...]  # empty: the whole area
    levels_of_need: tuple[LevelOfNeed, ...]
    delivery: str  # in_person, online, telephone, blended
    capacity_available: int
    capacity_maximum: int
    waiting_weeks: float
    cost: str
    phone: str
    effect: float  # mean needs-score improvement in the domains it works on (hidden)

    @property
    def organisation_slug(self) -> str:
        return _slug(self.organisation)


@dataclass(frozen=True)
class LocalArea:
    seed: int
    name: str
    localities: tuple[Locality, ...]
    settings: tuple[Setting, ...]
    provisions: tuple[DemoProvision, ...]

    def provision_named(self, name: str) -> DemoProvision | None:
        return next((p for p in self.provisions if p.name == name), None)


@dataclass(frozen=True)
class _Template:
    key: str
    name: str
    description: str
    organisation: str
    sector: Sector
    needs: tuple[NeedCode, ...]
    areas: tuple[BroadArea, ...]
    ages: tuple[int, int]
    levels: tuple[LevelOfNeed, ...]
    delivery: str
    places: int  # maximum places across the area (shared between hubs when per hub)
    wait: float  # typical weeks to start
    effect: float
    cost: str = "Free"


LA = "Bristol City Council"
NHS = "Avonvale Community Children's Health (NHS)"
CAMHS_TRUST = "Avonvale Mental Health NHS Trust"

# One service across the whole area.
AREA_WIDE: tuple[_Template, ...] = (
    _Template(
        "send-advice-line",
        "SEND advice line for settings",
        "Same-day telephone advice for SENCOs and early-years practitioners on identifying need, the graduated approach and what to try next.",
        f"{LA} SEND and inclusion service",
        Sector.EDUCATION,
        (),
        ALL_AREAS,
        (0, 25),
        (U,),
        "telephone",
        60,
        0.3,
        0.3,
    ),
    _Template(
        "autism-outreach",
        "Autism and social communication outreach",
        "Advisory teachers visit schools to plan support for autistic pupils and those with social communication needs, with training for staff.",
        f"{LA} SEND and inclusion service",
        Sector.EDUCATION,
        (NeedCode.ASD, NeedCode.SLCN),
        (),
        (4, 16),
        (E, T),
        "blended",
        40,
        7,
        0.9,
    ),
    _Template(
        "educational-psychology",
        "Educational psychology service",
        "Consultation, assessment and intervention for children whose progress has stalled despite a graduated approach.",
        f"{LA} educational psychology service",
        Sector.EDUCATION,
        (),
        (CI, CL, SEMH),
        (0, 25),
        (T, S),
        "in_person",
        30,
        10,
        0.7,
    ),
    _Template(
        "sensory-support",
        "Sensory support service (hearing, vision, multi-sensory)",
        "Qualified teachers of deaf, visually impaired and multi-sensory impaired children and young people; habilitation and equipment advice.",
        f"{LA} sensory support service",
        Sector.EDUCATION,
        (NeedCode.HI, NeedCode.VI, NeedCode.MSI),
        (),
        (0, 25),
        (E, T, S),
        "in_person",
        30,
        3,
        1.0,
    ),
    _Template(
        "physical-medical-outreach",
        "Physical disability and medical needs outreach",
        "Advice to settings on access, moving and handling, and including pupils with physical disabilities and medical needs.",
        f"{LA} SEND and inclusion service",
        Sector.EDUCATION,
        (NeedCode.PD, NeedCode.OTH),
        (),
        (2, 19),
        (E, T, S),
        "in_person",
        20,
        4,
        0.8,
    ),
    _Template(
        "early-years-inclusion",
        "Early years SEND inclusion team",
        "Area SENCOs support nurseries and childminders to include children with emerging needs before school.",
        f"{LA} early years service",
        Sector.EDUCATION,
        (),
        ALL_AREAS,
        (0, 5),
        (E, T, S),
        "in_person",
        40,
        4,
        1.0,
    ),
    _Template(
        "post16-transition",
        "Post-16 SEND transition and supported internships",
        "Help for young people with SEND moving into college, training, supported internships or work.",
        f"{LA} post-16 SEND team",
        Sector.EDUCATION,
        (NeedCode.MLD, NeedCode.SLD, NeedCode.ASD, NeedCode.SPLD),
        (),
        (15, 25),
        (E, T, S),
        "blended",
        25,
        5,
        0.6,
    ),
    _Template(
        "medical-needs-education",
        "Hospital and medical needs education service",
        "Teaching for children unable to attend school because of physical or mental health needs.",
        f"{LA} hospital education service",
        Sector.EDUCATION,
        (NeedCode.OTH, NeedCode.PD, NeedCode.SEMH),
        (),
        (5, 18),
        (T, S),
        "blended",
        15,
        3,
        0.7,
    ),
    _Template(
        "semh-outreach",
        "Behaviour and SEMH inclusion outreach",
        "Outreach from the area's SEMH specialist provision to keep pupils at risk of exclusion in school.",
        f"{LA} SEND and inclusion service",
        Sector.EDUCATION,
        (NeedCode.SEMH,),
        (),
        (5, 16),
        (E, T),
        "in_person",
        30,
        5,
        0.8,
    ),
    _Template(
        "camhs",
        "Child and adolescent mental health service (CAMHS)",
        "Specialist assessment and treatment for moderate to severe mental health difficulties.",
        CAMHS_TRUST,
        Sector.HEALTH,
        (NeedCode.SEMH,),
        (),
        (0, 18),
        (T, S),
        "in_person",
        40,
        18,
        0.7,
    ),
    _Template(
        "neurodevelopmental-pathway",
        "Neurodevelopmental assessment pathway (community paediatrics)",
        "Multi-disciplinary assessment for autism and ADHD, with post-diagnostic advice.",
        NHS,
        Sector.HEALTH,
        (NeedCode.ASD, NeedCode.OTH, NeedCode.SLCN),
        (),
        (2, 18),
        (T, S),
        "in_person",
        35,
        40,
        0.3,
    ),
    _Template(
        "childrens-physiotherapy",
        "Children's physiotherapy",
        "Assessment, therapy programmes and equipment for children with physical and motor difficulties.",
        NHS,
        Sector.HEALTH,
        (NeedCode.PD, NeedCode.PMLD),
        (),
        (0, 19),
        (E, T, S),
        "in_person",
        25,
        8,
        1.0,
    ),
    _Template(
        "paediatric-audiology",
        "Paediatric audiology",
        "Hearing assessment, hearing aids and follow-up for children.",
        NHS,
        Sector.HEALTH,
        (NeedCode.HI,),
        (),
        (0, 18),
        (E, T, S),
        "in_person",
        20,
        6,
        0.9,
    ),
    _Template(
        "orthoptics-low-vision",
        "Children's orthoptics and low vision clinic",
        "Vision assessment, low vision aids and advice for settings.",
        NHS,
        Sector.HEALTH,
        (NeedCode.VI,),
        (),
        (0, 18),
        (E, T, S),
        "in_person",
        15,
        7,
        0.8,
    ),
    _Template(
        "wheelchair-service",
        "Children's wheelchair and seating service",
        "Assessment and provision of wheelchairs and postural seating.",
        NHS,
        Sector.HEALTH,
        (NeedCode.PD,),
        (),
        (0, 18),
        (T, S),
        "in_person",
        15,
        12,
        0.6,
    ),
    _Template(
        "school-nursing",
        "School nursing: health needs and continence",
        "School nurses support children with health needs in school, including continence and care plans.",
        NHS,
        Sector.HEALTH,
        (NeedCode.OTH, NeedCode.PD),
        (),
        (5, 19),
        (U, E),
        "in_person",
        40,
        3,
        0.5,
    ),
    _Template(
        "portage",
        "Portage home visiting",
        "Home-visiting early education for pre-school children with significant developmental needs and their families.",
        f"{LA} early years service",
        Sector.EDUCATION,
        (NeedCode.SLD, NeedCode.PMLD, NeedCode.MSI, NeedCode.PD, NeedCode.SLCN),
        (),
        (0, 5),
        (E, T, S),
        "in_person",
        20,
        6,
        1.1,
    ),
    _Template(
        "disabled-childrens-team",
        "Disabled children's social work team",
        "Social work assessment and support for disabled children with complex needs and their families.",
        f"{LA} children and families services",
        Sector.SOCIAL_CARE,
        (NeedCode.SLD, NeedCode.PMLD, NeedCode.PD, NeedCode.MSI),
        (),
        (0, 18),
        (S,),
        "in_person",
        20,
        6,
        0.6,
    ),
    _Template(
        "short-breaks-overnight",
        "Short breaks: overnight residential",
        "Planned overnight short breaks for disabled children, giving families a break from caring.",
        f"{LA} children and families services",
        Sector.SOCIAL_CARE,
        (NeedCode.SLD, NeedCode.PMLD, NeedCode.ASD, NeedCode.PD),
        (),
        (5, 18),
        (T, S),
        "in_person",
        12,
        14,
        0.5,
    ),
    _Template(
        "parent-carer-forum",
        "Parent carer forum",
        "A parent-led forum: peer support, coffee mornings and a voice for families of children with SEND in how services are planned.",
        "Parent Carer Forum (demo area)",
        Sector.VOLUNTARY,
        (),
        ALL_AREAS,
        (0, 25),
        (U,),
        "blended",
        100,
        0,
        0.2,
    ),
    _Template(
        "sendias",
        "SEND information, advice and support service (SENDIASS)",
        "Free, impartial and confidential information, advice and support about SEND for children, young people and parents.",
        "SENDIASS (demo area)",
        Sector.VOLUNTARY,
        (),
        ALL_AREAS,
        (0, 25),
        (U,),
        "telephone",
        80,
        1,
        0.2,
    ),
    _Template(
        "autism-family-support",
        "Autism family support and parent programmes",
        "Post-diagnosis parent programmes, family support and social groups for autistic children.",
        "Autism Family Support West (charity)",
        Sector.VOLUNTARY,
        (NeedCode.ASD,),
        (),
        (2, 19),
        (U, E, T),
        "blended",
        40,
        4,
        0.6,
    ),
    _Template(
        "deaf-children-group",
        "Deaf children's family group",
        "Family events, signing classes and peer support for deaf children and their families.",
        "West of England Deaf Children's Society (charity)",
        Sector.VOLUNTARY,
        (NeedCode.HI,),
        (),
        (0, 18),
        (U, E),
        "in_person",
        30,
        1,
        0.4,
    ),
    _Template(
        "online-counselling",
        "Online counselling and wellbeing for young people",
        "Anonymous online counselling, moderated peer support and self-help for young people.",
        "Open Door online counselling (commissioned)",
        Sector.VOLUNTARY,
        (NeedCode.SEMH,),
        (),
        (11, 25),
        (U, E),
        "online",
        300,
        0.5,
        0.5,
    ),
    _Template(
        "dyslexia-support",
        "Dyslexia and literacy support",
        "Screening, specialist tuition and parent workshops for children with dyslexia and literacy difficulties.",
        "Wordwise dyslexia support (charity)",
        Sector.VOLUNTARY,
        (NeedCode.SPLD,),
        (),
        (6, 25),
        (U, E, T),
        "in_person",
        30,
        5,
        0.9,
    ),
    _Template(
        "young-carers-siblings",
        "Young carers and sibling support",
        "Groups and one-to-one support for brothers and sisters of disabled children and young carers.",
        "Sibling and Young Carers Project (charity)",
        Sector.VOLUNTARY,
        (NeedCode.SEMH,),
        (),
        (5, 18),
        (U, E),
        "in_person",
        30,
        3,
        0.5,
    ),
    _Template(
        "inclusive-youth-clubs",
        "Inclusive play and youth clubs",
        "After-school and holiday clubs with trained staff so that disabled children can join in.",
        "Play and Youth Inclusion Network (charity)",
        Sector.VOLUNTARY,
        (NeedCode.ASD, NeedCode.SEMH, NeedCode.PD, NeedCode.SLD, NeedCode.MLD),
        (),
        (5, 19),
        (U, E, T),
        "in_person",
        60,
        2,
        0.4,
    ),
    _Template(
        "bereavement-support",
        "Children's bereavement and loss support",
        "One-to-one and group support for children who have been bereaved.",
        "Little Lanterns bereavement support (charity)",
        Sector.VOLUNTARY,
        (NeedCode.SEMH,),
        (),
        (4, 18),
        (E, T),
        "blended",
        20,
        4,
        0.7,
    ),
    _Template(
        "supported-employment",
        "Supported employment for young adults with SEND",
        "Job coaching and employer support for young adults with learning disabilities or autism.",
        "Next Steps supported employment (social enterprise)",
        Sector.VOLUNTARY,
        (NeedCode.SLD, NeedCode.MLD, NeedCode.ASD),
        (),
        (16, 25),
        (E, T, S),
        "in_person",
        20,
        6,
        0.6,
    ),
    _Template(
        "specialist-slt",
        "Specialist speech and language therapy (complex needs)",
        "Specialist therapists for children with complex communication needs, including AAC.",
        NHS,
        Sector.HEALTH,
        (NeedCode.SLCN, NeedCode.ASD, NeedCode.PMLD, NeedCode.SLD),
        (),
        (0, 19),
        (S,),
        "in_person",
        20,
        16,
        0.8,
    ),
    _Template(
        "family-hub-early-language",
        "Family hub early language and health visiting",
        "Health visitors and early language practitioners in family hubs: WellComm screening, Chatter groups and home visits.",
        NHS,
        Sector.HEALTH,
        (NeedCode.SLCN,),
        (CI,),
        (0, 5),
        (U, E, T),
        "in_person",
        80,
        2,
        1.1,
    ),
)

# One service per family-hub area, serving that hub's wards.
PER_HUB: tuple[_Template, ...] = (
    _Template(
        "specialist-teaching",
        "Specialist teaching and inclusion support",
        "Specialist teachers assess learning needs and coach school staff in targeted teaching for literacy, numeracy and learning.",
        f"{LA} SEND and inclusion service",
        Sector.EDUCATION,
        (NeedCode.SPLD, NeedCode.MLD, NeedCode.NSA),
        (),
        (4, 16),
        (E, T),
        "in_person",
        80,
        4,
        1.0,
    ),
    _Template(
        "community-slt",
        "Community speech and language therapy",
        "Assessment, therapy blocks and programmes for settings and families for children's speech, language and communication.",
        NHS,
        Sector.HEALTH,
        (NeedCode.SLCN,),
        (),
        (0, 18),
        (E, T, S),
        "in_person",
        100,
        9,
        1.1,
    ),
    _Template(
        "childrens-ot",
        "Children's occupational therapy",
        "Help with everyday skills, motor coordination and sensory processing, at home and in school.",
        NHS,
        Sector.HEALTH,
        (NeedCode.PD, NeedCode.OTH),
        (SP,),
        (0, 18),
        (E, T, S),
        "in_person",
        60,
        14,
        0.8,
    ),
    _Template(
        "mental-health-support-team",
        "Mental health support team in schools",
        "Early mental health support for mild to moderate anxiety and low mood, in schools and colleges.",
        CAMHS_TRUST,
        Sector.HEALTH,
        (NeedCode.SEMH,),
        (),
        (5, 18),
        (E, T),
        "in_person",
        120,
        4,
        1.0,
    ),
    _Template(
        "early-help-family-support",
        "Early help family support",
        "A family support worker and a whole-family plan for parenting, routines, relationships, housing and money worries.",
        f"{LA} early help service",
        Sector.SOCIAL_CARE,
        (),
        (SEMH,),
        (0, 18),
        (U, E, T),
        "in_person",
        120,
        3,
        0.8,
    ),
    _Template(
        "short-breaks-community",
        "Short breaks: community activities",
        "Daytime and holiday short breaks and activities for disabled children, giving families a break.",
        f"{LA} children and families services",
        Sector.SOCIAL_CARE,
        (NeedCode.SLD, NeedCode.PMLD, NeedCode.ASD, NeedCode.PD, NeedCode.MSI),
        (),
        (5, 18),
        (E, T, S),
        "in_person",
        60,
        6,
        0.5,
    ),
    _Template(
        "family-hub-parenting",
        "Family hub parenting programmes (SEND)",
        "Evidence-based parenting groups adapted for parents of children with SEND, such as Cygnet and Stepping Stones.",
        f"{LA} family hubs",
        Sector.SOCIAL_CARE,
        (NeedCode.ASD, NeedCode.SEMH, NeedCode.SLCN),
        (),
        (2, 16),
        (U, E, T),
        "blended",
        60,
        3,
        0.7,
    ),
)


def build_area(seed: int = DEFAULT_SEED) -> LocalArea:
    """The same area for the same seed."""
    rng = random.Random(seed)
    localities = tuple(Locality(name, hub, weight) for name, hub, weight in LOCALITIES)
    hubs = sorted({locality.hub for locality in localities})
    provisions = [_provision(rng, template, hub=None, localities=()) for template in AREA_WIDE]
    for template in PER_HUB:
        for hub in hubs:
            wards = tuple(locality.name for locality in localities if locality.hub == hub)
            provisions.append(_provision(rng, template, hub=hub, localities=wards, share=1 / len(hubs)))
    return LocalArea(
        seed=seed,
        name="Bristol (synthetic demo area)",
        localities=localities,
        settings=_settings(rng, localities),
        provisions=tuple(provisions),
    )


def _provision(
    rng: random.Random,
    template: _Template,
    *,
    hub: str | None,
    localities: tuple[str, ...],
    share: float = 1.0,
) -> DemoProvision:
    maximum = max(2, round(template.places * share * rng.uniform(0.8, 1.2)))
    return DemoProvision(
        key=f"{template.key}-{_slug(hub)}" if hub else template.key,
        name=f"{template.name} ({hub})" if hub else template.name,
        description=template.description,
        organisation=template.organisation,
        sector=template.sector,
        need_codes=template.needs,
        broad_areas=template.areas,
        min_age=template.ages[0],
        max_age=template.ages[1],
        localities=localities,
        levels_of_need=template.levels,
        delivery=template.delivery,
        capacity_available=round(maximum * rng.uniform(0.25, 0.8)),
        capacity_maximum=maximum,
        waiting_weeks=round(template.wait * rng.uniform(0.7, 1.4), 1),
        cost=template.cost,
        phone=f"01632 96{rng.randrange(1000, 9999):04d}",  # Ofcom's drama range: never a real line
        # Teams of the same service differ: the hidden truth "what works" can find.
        effect=round(max(0.1, template.effect * rng.uniform(0.7, 1.3)), 2),
    )


SETTING_STEMS = (
    "Oakfield",
    "St Barnabas",
    "Fairfield",
    "Hillcrest",
    "Greenway",
    "Brunel",
    "Willow Bank",
    "St Mary Redcliffe",
    "Cabot",
    "Elmlea",
    "Hareclive",
    "Broomhill",
    "May Park",
    "Summerhill",
    "Victoria Park",
    "Begbrook",
    "Stoke Park",
    "Ilminster Avenue",
    "Compass Point",
    "Cheddar Grove",
    "Headley Park",
    "Parson Street",
    "Wansdyke",
    "Merchants' Academy",
    "Perry Court",
    "Holymead",
    "Air Balloon Hill",
    "Minerva",
    "Glenfrome",
    "St Werburgh's",
    "Cotham Gardens",
    "Westbury Park",
)


def _settings(rng: random.Random, localities: tuple[Locality, ...]) -> tuple[Setting, ...]:
    """100: per ward an early-years setting and four primaries; secondaries, special schools and colleges across the area."""
    plan: list[tuple[Phase, str]] = []
    for locality in localities:
        plan += [(Phase.EARLY_YEARS, locality.name)] + [(Phase.PRIMARY, locality.name)] * 4
    plan += [(Phase.SECONDARY, locality.name) for locality in rng.sample(localities, 10)]
    plan += [(Phase.SPECIAL, rng.choice(localities).name) for _ in range(6)]
    plan += [(Phase.COLLEGE, rng.choice(localities).name) for _ in range(4)]
    numbers = rng.sample(range(100000, 150000), len(plan))
    suffix = {
        Phase.EARLY_YEARS: ("Nursery", "Children's Centre Nursery", "Pre-school"),
        Phase.PRIMARY: ("Primary School", "Primary Academy", "Church of England Primary School"),
        Phase.SECONDARY: ("Academy", "School", "Community School"),
        Phase.SPECIAL: ("Special School", "School (special)"),
        Phase.COLLEGE: ("College", "Sixth Form College"),
    }
    settings = []
    for number, (phase, ward) in zip(numbers, plan, strict=True):
        prefix = "EY" if phase is Phase.EARLY_YEARS else "URN"
        name = f"{rng.choice(SETTING_STEMS)} {rng.choice(suffix[phase])}"
        low, high = PHASE_AGES[phase]
        settings.append(Setting(f"{prefix}{number}", f"{name}, {ward}", phase, ward, low, high))
    return tuple(settings)


def _slug(text: str | None) -> str:
    return re.sub(r"[^a-z0-9]+", "-", (text or "").lower()).strip("-")
