"""The pseudonymous child reference links one child's referrals: the same child, however their
details were typed, gets one reference; another area or another key gets another."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import SecretStr
from signpost.intake.referrals.models import ChildDetails
from signpost.intake.referrals.pseudonym import child_reference

from tests.factories import CHILD

KEY = SecretStr("an-area-pseudonym-key-of-32-chars")
TENANT = "E06000023"
NAMED_CHILD: dict[str, Any] = {
    **CHILD,
    "nhs_number": None,
    "given_name": "Zoë",
    "family_name": "O'Neill Smith",
}


def reference_of(child: dict[str, Any], *, key: SecretStr = KEY, tenant: str = TENANT) -> str:
    """The reference of a child as submitted (so through the model's own normalising)."""
    return child_reference(key=key, tenant=tenant, child=ChildDetails.model_validate(child))


@pytest.mark.parametrize("typed", ["9434765919", "943-476-5919", " 943 4765919 "])
def test_an_nhs_number_however_spaced_gives_one_reference(typed: str) -> None:
    assert reference_of({**CHILD, "nhs_number": typed}) == reference_of(CHILD)


def test_with_an_nhs_number_the_name_and_date_of_birth_do_not_matter() -> None:
    retyped = {**CHILD, "given_name": "Zeffy", "date_of_birth": "2018-03-15"}
    assert reference_of(retyped) == reference_of(CHILD)


def test_another_nhs_number_is_another_child() -> None:
    # 401 023 2137 is another published test number with a valid check digit.
    assert reference_of({**CHILD, "nhs_number": "401 023 2137"}) != reference_of(CHILD)


@pytest.mark.parametrize(
    ("given_name", "family_name"),
    [
        ("zoe", "o'neill smith"),  # case and accent
        ("ZOË", "O'NEILL SMITH"),  # case
        ("Zoe", "O'Neill Smith"),  # accent
        ("  Zoë ", "O'Neill   Smith"),  # spacing around and within
    ],
)
def test_without_an_nhs_number_a_name_typed_differently_gives_one_reference(
    given_name: str, family_name: str
) -> None:
    retyped = {**NAMED_CHILD, "given_name": given_name, "family_name": family_name}
    assert reference_of(retyped) == reference_of(NAMED_CHILD)


@pytest.mark.parametrize(
    "other",
    [
        {"given_name": "Zara"},
        {"family_name": "O'Neill"},
        {"date_of_birth": "2018-03-15"},
        # The fields are kept apart: "Zoë O'Neill" + "Smith" is not "Zoë" + "O'Neill Smith".
        {"given_name": "Zoë O'Neill", "family_name": "Smith"},
    ],
)
def test_without_an_nhs_number_another_name_or_date_of_birth_is_another_child(other: dict[str, str]) -> None:
    assert reference_of({**NAMED_CHILD, **other}) != reference_of(NAMED_CHILD)


@pytest.mark.parametrize("child", [CHILD, NAMED_CHILD], ids=["nhs-number", "name-and-birth"])
def test_another_area_or_another_key_gives_another_reference(child: dict[str, Any]) -> None:
    reference = reference_of(child)
    assert reference_of(child, tenant="E06000022") != reference
    assert reference_of(child, key=SecretStr("another-area-key-also-32-chars-xx")) != reference
