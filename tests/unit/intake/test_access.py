"""Who may read a child's identifying details: a pure rule, checked for every case."""

from signpost.intake.referrals.access import may_read_child_details, visible_referrals
from signpost.shared.auth.principal import Principal, Role

REFERRAL = {
    "organisation": "school-a",
    "consent": {"sharing_scope": ["education"]},
    "offers": [
        {"organisation_id": "la-inclusion", "sector": "education"},
        {"organisation_id": "nhs-slt", "sector": "health"},
    ],
}


def caller(role: Role, organisation: str) -> Principal:
    return Principal(subject="s", role=role, organisation=organisation, tenant="t")


def test_the_referring_organisation_may_read() -> None:
    assert may_read_child_details(caller(Role.PRACTITIONER, "school-a"), REFERRAL)
    assert not may_read_child_details(caller(Role.PRACTITIONER, "school-b"), REFERRAL)


def test_an_offered_agency_only_within_the_sharing_scope() -> None:
    assert may_read_child_details(caller(Role.AGENCY, "la-inclusion"), REFERRAL)
    assert not may_read_child_details(caller(Role.AGENCY, "nhs-slt"), REFERRAL)  # health is outside the scope
    assert not may_read_child_details(caller(Role.AGENCY, "someone-else"), REFERRAL)


def test_analysts_ops_and_admins_never_read_identifying_details() -> None:
    for role in (Role.ANALYST, Role.OPS, Role.ADMIN):
        assert not may_read_child_details(caller(role, "school-a"), REFERRAL)


def test_analysts_and_ops_see_no_referrals_at_all() -> None:
    for role in (Role.ANALYST, Role.OPS):
        assert visible_referrals(caller(role, "x"), tenant="t") == {"_id": {"$in": []}}
