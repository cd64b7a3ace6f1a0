import random
from datetime import UTC, datetime

from signpost.routing.catalogue.models import Provision
from signpost.routing.catalogue.seed import STARTER_CATALOGUE
from signpost.routing.matching import match_referral
from signpost.shared.events import ReferralSubmittedV1
from signpost.shared.vocabulary import LevelOfNeed, NeedCode, Sector, broad_areas


def referral(*needs: NeedCode, age: int = 8, locality: str = "Ashley") -> ReferralSubmittedV1:
    return ReferralSubmittedV1(
        referral_id="r-1",
        age_years=age,
        locality=locality,
        setting_id="URN1",
        need_codes=list(needs),
        broad_areas=broad_areas(list(needs)),
        level_of_need=LevelOfNeed.EARLY_HELP,
        submitted_at=datetime(2026, 11, 2, tzinfo=UTC),
    )


def provision(
    pid: str,
    *needs: NeedCode,
    ages: tuple[int, int] = (0, 25),
    areas: tuple[str, ...] = ("*",),
    active: bool = True,
) -> Provision:
    return Provision(
        id=pid,
        name=pid,
        organisation="org",
        organisation_id="org",
        sector=Sector.HEALTH,
        need_codes=list(needs),
        min_age=ages[0],
        max_age=ages[1],
        localities=list(areas),
        active=active,
    )


def test_one_provision_covering_several_needs_is_preferred() -> None:
    result = match_referral(referral(NeedCode.ASD, NeedCode.SLCN), list(STARTER_CATALOGUE))
    assert [o.provision_id for o in result.offers] == ["autism-outreach"]
    assert result.offers[0].needs_met == [NeedCode.ASD, NeedCode.SLCN]
    assert result.unmet_needs == []


def test_needs_across_sectors_get_a_package() -> None:
    result = match_referral(referral(NeedCode.SEMH, NeedCode.SPLD), list(STARTER_CATALOGUE))
    assert {o.provision_id for o in result.offers} == {"early-mental-health", "specialist-teaching"}


def test_age_locality_and_inactive_filters_exclude() -> None:
    catalogue = [
        provision("too-young-only", NeedCode.HI, ages=(0, 4)),
        provision("elsewhere", NeedCode.HI, areas=("Brislington",)),
        provision("retired", NeedCode.HI, active=False),
    ]
    result = match_referral(referral(NeedCode.HI, age=9, locality="Ashley"), catalogue)
    assert result.offers == [] and result.unmet_needs == [NeedCode.HI]


def test_unmet_needs_are_named_alongside_offers() -> None:
    result = match_referral(referral(NeedCode.SLCN, NeedCode.PMLD), list(STARTER_CATALOGUE))
    assert [o.provision_id for o in result.offers] == ["slt-community"]
    assert result.unmet_needs == [NeedCode.PMLD]


def test_result_does_not_depend_on_catalogue_order() -> None:
    catalogue = [provision(f"p{i}", NeedCode.SLCN) for i in range(20)] + list(STARTER_CATALOGUE)
    expected = match_referral(referral(NeedCode.SLCN, NeedCode.VI), catalogue)
    rng = random.Random(7)
    for _ in range(20):
        rng.shuffle(catalogue)
        assert match_referral(referral(NeedCode.SLCN, NeedCode.VI), catalogue) == expected


def test_every_offer_explains_itself() -> None:
    offer = match_referral(referral(NeedCode.VI, age=3), list(STARTER_CATALOGUE)).offers[0]
    assert "VI" in offer.explanation and "child is 3" in offer.explanation
