"""Realistic, entirely fictional referral bodies for load: the benchmark and the fault tests use them.

The mix follows the national picture of primary needs (ASD, SLCN and SEMH most
common), ages 0-18, several localities and levels of need; a few referrals carry
a safeguarding concern (escalated by intake, never routed) and a few are at
specialist level after graduated-approach cycles that did not work (routing
recommends an EHC needs assessment request). Names are drawn from a short list
of invented ones and NHS numbers are left out: nothing here identifies anyone.
"""

from __future__ import annotations

import random
from datetime import date, timedelta
from typing import Any

LOCALITIES = ["Ashley", "Bedminster", "Easton", "Hartcliffe", "Lockleaze", "Southmead", "Whitchurch"]
# Roughly the national mix of primary needs (school census), as weights.
NEED_WEIGHTS = {
    "ASD": 31.5, "SLCN": 21.3, "SEMH": 20.7, "MLD": 10.6, "SLD": 3.9, "PD": 3.9, "SPLD": 2.4,
    "HI": 1.4, "PMLD": 1.3, "OTH": 1.2, "VI": 0.8, "MSI": 0.3,
}  # fmt: skip
DOMAINS = {
    "ASD": "communication_and_interaction", "SLCN": "communication_and_interaction",
    "SEMH": "social_emotional_mental_health", "MLD": "cognition_and_learning",
    "SLD": "cognition_and_learning", "PMLD": "cognition_and_learning", "SPLD": "cognition_and_learning",
    "PD": "sensory_and_physical", "HI": "sensory_and_physical", "VI": "sensory_and_physical",
    "MSI": "sensory_and_physical", "OTH": "family_and_home",
}  # fmt: skip
GIVEN_NAMES = ["Ari", "Bex", "Cal", "Dee", "Eli", "Fen", "Gus", "Hal", "Ivo", "Jem", "Kit", "Lou"]
FAMILY_NAMES = ["Example", "Sample", "Testwood", "Placeholder", "Fictive", "Madeup"]
SAFEGUARDING_SHARE = 0.03
EHC_SHARE = 0.05


def sample_referral(rng: random.Random, *, today: date | None = None) -> dict[str, Any]:
    """One valid `POST /v1/referrals` body, drawn from the realistic mix above."""
    today = today or date.today()
    codes = list(dict.fromkeys(rng.choices(list(NEED_WEIGHTS), weights=list(NEED_WEIGHTS.values()), k=2)))
    age_days = rng.randint(2 * 365, 17 * 365)
    school = rng.randint(100001, 100060)
    ehc = rng.random() < EHC_SHARE
    body: dict[str, Any] = {
        "referrer": {"name": "A Practitioner", "role": "senco", "organisation": f"School {school}"},
        "child": {
            "given_name": rng.choice(GIVEN_NAMES),
            "family_name": rng.choice(FAMILY_NAMES),
            "date_of_birth": (today - timedelta(days=age_days)).isoformat(),
            "address": {"line1": f"{rng.randint(1, 200)} Example Road", "postcode": "BS4 1QX"},
        },
        "locality": rng.choice(LOCALITIES),
        "setting_id": f"URN{school}",
        "need_codes": codes,
        "needs_profile": {DOMAINS[code]: rng.randint(1, 4) for code in codes},
        "level_of_need": "specialist" if ehc else rng.choice(["early_help", "early_help", "targeted"]),
        "urgency": rng.choice(["routine", "routine", "soon", "urgent"]),
        "consent": {
            "family_agrees_to_early_help": True,
            "lawful_basis": "consent",
            "sharing_scope": rng.sample(
                ["education", "health", "social_care", "voluntary"], rng.randint(2, 4)
            ),
        },
        "safeguarding_concern": rng.random() < SAFEGUARDING_SHARE,
    }
    if ehc:
        body["graduated_approach"] = {
            "cycles_completed": 2,
            "summary": "Two cycles of SEN support",
            "worked": False,
        }
    return body
