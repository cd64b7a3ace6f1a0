"""Valid request bodies for tests, full of distinctive identifiers a privacy test can look for."""

from __future__ import annotations

import copy
from typing import Any

# NHS number 943 476 5919 is a published test number with a valid check digit.
CHILD: dict[str, Any] = {
    "given_name": "Zephyrine",
    "family_name": "Quillfeather",
    "date_of_birth": "2018-03-14",
    "nhs_number": "943 476 5919",
    "upn": "A12345678901B",
    "address": {"line1": "17 Marigoldwhistle Lane", "town": "Bristol", "postcode": "bs4 1qx"},
    "confidential_address": False,
}

REFERRAL: dict[str, Any] = {
    "referrer": {
        "name": "Ottoline Brackenbury",
        "role": "senco",
        "organisation": "Ashley Primary School",
        "setting_id": "URN100001",
        "email": "senco@ashley.example",
    },
    "child": CHILD,
    "locality": "Ashley",
    "setting_id": "URN100001",
    "need_codes": ["ASD", "SLCN"],
    "family_needs": ["improved_family_relationships"],
    "needs_profile": {"communication_and_interaction": 3, "social_emotional_mental_health": 2},
    "level_of_need": "early_help",
    "urgency": "soon",
    "graduated_approach": {
        "cycles_completed": 2,
        "summary": "Visual timetable, small-group SALT",
        "worked": False,
    },
    "consent": {
        "family_agrees_to_early_help": True,
        "lawful_basis": "consent",
        "sharing_scope": ["education", "health"],
    },
    "safeguarding_concern": False,
    "details": "Zephyrine finds transitions hard; mum prefers calls after 3pm.",
}


def referral(**overrides: Any) -> dict[str, Any]:
    body = copy.deepcopy(REFERRAL)
    body.update(overrides)
    return body
