"""Who may read a child's identifying details and the timeline's notes: pure rules, checked for every case."""

from signpost.intake.referrals.access import (
    SYSTEM_ACTOR,
    child_details_refusal,
    note_reader,
    visible_referrals,
    withholds_address,
)
from signpost.shared.auth.principal import Principal, Role
from signpost.shared.events import OfferAcceptedV1
from signpost.shared.mongo import Document

OFFERED = {"organisation_id": "la-inclusion", "sector": "education", "status": "routed"}
REFERRAL: Document = {
    "organisation": "school-a",
    "consent": {"sharing_scope": ["education"]},
    "offers": [OFFERED, {"organisation_id": "nhs-slt", "sector": "health", "status": "routed"}],
    "timeline": [{"type": "uk.signpost.referral.submitted.v1", "actor_organisation": "school-a"}],
}
ACCEPTED_BY_US = {"type": OfferAcceptedV1.event_type, "actor_organisation": "la-inclusion"}


def caller(role: Role, organisation: str) -> Principal:
    return Principal(subject="s", role=role, organisation=organisation, tenant="t")


def with_offer_status(status: str, *more: Document) -> Document:
    return {**REFERRAL, "offers": [{**OFFERED, "status": status}, *more]}


def test_the_referring_organisation_may_read() -> None:
    assert child_details_refusal(caller(Role.PRACTITIONER, "school-a"), REFERRAL) is None
    assert child_details_refusal(caller(Role.PRACTITIONER, "school-b"), REFERRAL)


def test_an_offered_agency_only_within_the_sharing_scope() -> None:
    assert child_details_refusal(caller(Role.AGENCY, "la-inclusion"), REFERRAL) is None
    outside = child_details_refusal(caller(Role.AGENCY, "nhs-slt"), REFERRAL)  # health is outside the scope
    assert outside is not None and "sharing scope" in outside
    assert child_details_refusal(caller(Role.AGENCY, "someone-else"), REFERRAL)


def test_an_agency_keeps_access_to_an_offer_it_took_up() -> None:
    agency = caller(Role.AGENCY, "la-inclusion")
    for status in ("accepted", "in_progress", "completed"):
        assert child_details_refusal(agency, with_offer_status(status)) is None


def test_an_agency_that_took_the_offer_up_keeps_access_after_a_withdrawal() -> None:
    # A withdrawal marks the offers being worked on withdrawn too (moves.withdrawal).
    withdrawn = with_offer_status("withdrawn")
    taken_up = {**withdrawn, "timeline": [*withdrawn["timeline"], ACCEPTED_BY_US]}
    assert child_details_refusal(caller(Role.AGENCY, "la-inclusion"), taken_up) is None
    someone_else_took_theirs_up = {**ACCEPTED_BY_US, "actor_organisation": "nhs-slt"}
    theirs = {**withdrawn, "timeline": [*withdrawn["timeline"], someone_else_took_theirs_up]}
    assert child_details_refusal(caller(Role.AGENCY, "la-inclusion"), theirs)


def test_an_agency_loses_access_once_it_declined_or_the_referral_was_withdrawn_first() -> None:
    agency = caller(Role.AGENCY, "la-inclusion")
    for status in ("declined", "withdrawn"):
        refusal = child_details_refusal(agency, with_offer_status(status))
        assert refusal is not None and "declined or withdrawn" in refusal


def test_a_later_open_offer_to_the_same_agency_restores_access() -> None:
    # A re-route after a decline may offer another of the agency's provisions.
    again = {"organisation_id": "la-inclusion", "sector": "education", "status": "routed"}
    assert (
        child_details_refusal(caller(Role.AGENCY, "la-inclusion"), with_offer_status("declined", again))
        is None
    )


def test_analysts_ops_and_admins_never_read_identifying_details() -> None:
    for role in (Role.ANALYST, Role.OPS, Role.ADMIN):
        assert child_details_refusal(caller(role, "school-a"), REFERRAL)


def test_analysts_and_ops_see_no_referrals_at_all() -> None:
    for role in (Role.ANALYST, Role.OPS):
        assert visible_referrals(caller(role, "x"), tenant="t") == {"_id": {"$in": []}}


def test_a_confidential_address_goes_only_to_the_referring_organisation() -> None:
    confidential, open_address = {"confidential_address": True}, {"confidential_address": False}
    assert not withholds_address(caller(Role.PRACTITIONER, "school-a"), confidential)
    assert withholds_address(caller(Role.AGENCY, "la-inclusion"), confidential)
    assert not withholds_address(caller(Role.AGENCY, "la-inclusion"), open_address)
    assert not withholds_address(caller(Role.AGENCY, "la-inclusion"), {})  # stored before the flag had a use


def withdrawn_for(reason: str, *, basis: str = "consent", offer_status: str = "withdrawn") -> Document:
    """Withdrawn after la-inclusion took its offer up; the reason stored as intake stores it."""
    taken_up = with_offer_status(offer_status)
    return {
        **taken_up,
        "status": "withdrawn",
        "withdrawn_reason": reason,
        "consent": {**REFERRAL["consent"], "lawful_basis": basis},
        "timeline": [*taken_up["timeline"], ACCEPTED_BY_US],
    }


def test_no_agency_reads_the_details_once_the_family_withdrew_the_consent_they_were_shared_on() -> None:
    agency = caller(Role.AGENCY, "la-inclusion")
    for offer_status in ("withdrawn", "completed"):  # taken up, ended by the withdrawal or before it
        refusal = child_details_refusal(
            agency, withdrawn_for("family_withdrew_consent", offer_status=offer_status)
        )
        assert refusal == "the family withdrew the consent its details were shared with agencies on"
    # The referring organisation keeps its own record; other reasons and bases leave access as it was.
    school = caller(Role.PRACTITIONER, "school-a")
    assert child_details_refusal(school, withdrawn_for("family_withdrew_consent")) is None
    assert child_details_refusal(agency, withdrawn_for("moved_away")) is None
    assert (
        child_details_refusal(agency, withdrawn_for("family_withdrew_consent", basis="public_task")) is None
    )


def test_a_referral_withdrawn_before_the_reason_was_stored_is_read_from_its_timeline() -> None:
    legacy = {k: v for k, v in withdrawn_for("family_withdrew_consent").items() if k != "withdrawn_reason"}
    withdrawal = {"type": "uk.signpost.referral.withdrawn.v1", "actor_organisation": "school-a"}
    for note in ("family_withdrew_consent", "family_withdrew_consent: by phone"):
        with_note = {**legacy, "timeline": [*legacy["timeline"], {**withdrawal, "note": note}]}
        assert child_details_refusal(caller(Role.AGENCY, "la-inclusion"), with_note)
    moved = {
        **legacy,
        "timeline": [*legacy["timeline"], {**withdrawal, "note": "moved_away: family_withdrew_consent"}],
    }
    assert child_details_refusal(caller(Role.AGENCY, "la-inclusion"), moved) is None


NOTES = [
    {"actor_role": "practitioner", "actor_organisation": "school-a", "note": "mum asked us to call after 3"},
    {"actor_role": SYSTEM_ACTOR, "actor_organisation": "intake", "note": "safeguarding: front door"},
    {"actor_role": "agency", "actor_organisation": "la-inclusion", "note": "family known to us"},
    {"actor_role": "agency", "actor_organisation": "nhs-slt", "note": "declined: seen by CAMHS"},
]


def readable_notes(principal: Principal, referral: Document) -> list[str]:
    may_read = note_reader(principal, referral)
    return [entry["note"] for entry in NOTES if may_read(entry)]


def test_whoever_may_read_the_childs_details_reads_every_note() -> None:
    every = [entry["note"] for entry in NOTES]
    assert readable_notes(caller(Role.PRACTITIONER, "school-a"), REFERRAL) == every
    assert readable_notes(caller(Role.AGENCY, "la-inclusion"), REFERRAL) == every


def test_anyone_else_reads_only_the_platforms_notes_and_its_own() -> None:
    assert readable_notes(caller(Role.AGENCY, "nhs-slt"), REFERRAL) == [  # outside the sharing scope
        "safeguarding: front door",
        "declined: seen by CAMHS",
    ]
    assert readable_notes(caller(Role.AGENCY, "la-inclusion"), with_offer_status("declined")) == [
        "safeguarding: front door",
        "family known to us",
    ]
    assert readable_notes(caller(Role.ADMIN, "la-admin"), REFERRAL) == ["safeguarding: front door"]
