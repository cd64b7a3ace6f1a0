"""Mapping an ORUK service onto a provision, and the precise reason when it cannot be."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from signpost.routing.catalogue.models import WHOLE_AREA, DeliveryMode
from signpost.routing.oruk.feed import full_service, signpost_term_query
from signpost.routing.oruk.mapping import Unmappable, map_service, nested_deeper_than
from signpost.routing.oruk.models import feed_id, is_uuid
from signpost.routing.oruk.taxonomy import TaxonomyMap, TaxonomyMapError, load_taxonomy_map
from signpost.shared.vocabulary import LevelOfNeed, NeedCode, Sector

from tests.oruk_fixtures import ORG_ID, oruk_service, term

DEFAULT = load_taxonomy_map(None)
ROOT = Path(__file__).parents[3]


def mapped(service: dict[str, Any], taxonomy: TaxonomyMap = DEFAULT) -> Any:
    return map_service(service, taxonomy=taxonomy, source="document")


def reason(service: object, taxonomy: TaxonomyMap = DEFAULT) -> str:
    with pytest.raises(Unmappable) as raised:
        map_service(service, taxonomy=taxonomy, source="document")
    return str(raised.value)


def test_a_full_service_maps_every_field() -> None:
    result = mapped(oruk_service())
    provision = result.provision
    assert provision.id == oruk_service()["id"]
    assert provision.organisation == "Talking Together Trust"
    assert provision.organisation_id == ORG_ID  # a lower-case UUID is a valid organisation id as it is
    assert provision.sector is Sector.VOLUNTARY  # from the GB-CHC charity identifier
    assert provision.need_codes == [NeedCode.SLCN]
    assert provision.levels_of_need == [LevelOfNeed.EARLY_HELP]
    assert (provision.min_age, provision.max_age) == (2, 7)
    assert provision.localities == ["Ashley", "Bedminster"]
    assert provision.delivery_mode is DeliveryMode.IN_PERSON
    assert provision.cost == "free"
    assert provision.contact.model_dump() == {
        "email": "hello@talking-together.example",
        "phone": "01632 960123",
        "url": "https://talking-together.example/groups",
    }
    assert provision.capacity is not None
    assert (provision.capacity.available, provision.capacity.maximum) == (3, 10)
    assert provision.capacity.updated == datetime(2026, 11, 1, 9, 30, 0, 250_000, tzinfo=UTC)
    assert provision.waiting_weeks == 6  # the cautious end of "4-6 weeks"
    assert provision.active
    assert result.warnings == []
    assert result.details.description and result.details.organization.source_id == ORG_ID
    assert [t.name for t in result.details.taxonomy_terms] == ["Speech and language therapy", "Early help"]


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"id": None}, "missing id"),
        ({"id": "has spaces/and slashes"}, "cannot be a provision id"),
        ({"name": "  "}, "missing name"),
        (
            {"attributes": [term("Youth club"), term("Holiday activities")]},
            "no taxonomy term maps to a need code or broad area (terms: 'Youth club', 'Holiday activities')",
        ),
        ({"attributes": []}, "no taxonomy terms (attributes) to map to a need code"),
        ({"minimum_age": 30, "maximum_age": 10}, "eligibility minimum_age 30 > maximum_age 10"),
        (
            {"minimum_age": 30, "maximum_age": 60},
            "minimum_age 30 is above 25, the oldest age Signpost serves",
        ),
        ({"minimum_age": "young"}, "eligibility minimum_age 'young' is not a number"),
        ({"maximum_age": -1}, "eligibility maximum_age -1 is not an age"),
        ({"organization": None}, "no organization name"),
    ],
)
def test_a_service_that_cannot_be_mapped_says_exactly_why(overrides: dict[str, Any], expected: str) -> None:
    assert expected in reason(oruk_service(**overrides))


def test_a_service_must_be_an_object() -> None:
    assert reason(["not", "a", "service"]) == "a service is a JSON object, not list"


def test_without_a_sector_and_without_a_default_it_is_skipped() -> None:
    strict = DEFAULT.model_copy(update={"default_sector": None})
    organisation = {**oruk_service()["organization"], "organization_identifiers": []}
    assert "says which sector" in reason(oruk_service(organization=organisation), strict)
    with_term = oruk_service(organization=organisation, attributes=[term("Autism"), term("Health")])
    assert mapped(with_term, strict).provision.sector is Sector.HEALTH


def test_ages_default_to_zero_to_25_and_adult_ranges_are_capped() -> None:
    assert (
        p := mapped(oruk_service(minimum_age=None, maximum_age=None)).provision
    ).min_age == 0 and p.max_age == 25
    assert mapped(oruk_service(minimum_age=12, maximum_age=100)).provision.max_age == 25
    older_style = oruk_service(
        minimum_age=None, maximum_age=None, eligibilitys=[{"minimum_age": 5, "maximum_age": 11}]
    )
    assert (mapped(older_style).provision.min_age, mapped(older_style).provision.max_age) == (5, 11)


def test_capacity_that_does_not_add_up_is_left_out_with_a_warning() -> None:
    result = mapped(oruk_service(capacities=[{"id": "x", "unit": {}, "available": 12, "maximum": 10}]))
    assert result.provision.capacity is None
    assert result.warnings == ["service_capacity left out: available 12 is not between 0 and maximum 10"]
    assert mapped(oruk_service(capacities=[{"available": 1e400, "maximum": 2}])).provision.capacity is None
    vast = mapped(oruk_service(capacities=[{"available": 0, "maximum": 1e20}]))  # BSON cannot hold it
    assert vast.provision.capacity is None and vast.provision.name == "Talking Together speech group 1"
    assert vast.warnings == ["service_capacity left out: maximum 1e+20 is above 1,000,000 places"]
    single = mapped(oruk_service(capacities=None, service_capacity={"available": 1, "maximum": 4})).provision
    assert single.capacity is not None and single.capacity.available == 1


def test_a_capacity_counted_in_the_future_is_read_as_counted_now_with_a_warning() -> None:
    ahead = mapped(
        oruk_service(capacities=[{"available": 2, "maximum": 4, "updated": "2099-01-01T00:00:00Z"}])
    )
    assert ahead.provision.capacity is not None and ahead.provision.capacity.updated is None
    assert ahead.warnings == [
        "service_capacity's updated is in the future: the figure is read as counted now"
    ]
    counted = mapped(
        oruk_service(capacities=[{"available": 2, "maximum": 4, "updated": "2026-01-05T09:00:00Z"}])
    )
    assert counted.provision.capacity is not None and counted.provision.capacity.updated is not None
    assert counted.warnings == []


@pytest.mark.parametrize(
    ("wait", "weeks", "warned"),
    [("6 weeks", 6, False), ("10 days", 1.4, False), ("2 to 3 months", 13, False), ("soon", None, True)],
)
def test_wait_time_text_becomes_weeks(wait: str, weeks: float | None, warned: bool) -> None:
    result = mapped(oruk_service(wait_time=wait))
    assert result.provision.waiting_weeks == weeks
    assert bool(result.warnings) is warned


MAP_A_LONG_WAIT = """
import json
from signpost.routing.oruk.mapping import map_service
from signpost.routing.oruk.taxonomy import load_taxonomy_map
from tests.oruk_fixtures import oruk_service

service = oruk_service(wait_time="1" * 100_000)
result = map_service(service, taxonomy=load_taxonomy_map(None), source="document")
print(json.dumps([result.provision.waiting_weeks, result.warnings]))
"""


def test_a_wait_time_of_100_000_digits_is_read_at_once() -> None:
    """The wait pattern once retried from every digit: minutes for this, on routing's event loop.

    In a child process, killed if it takes 30 s: a regex holds the GIL, so a thread could not be."""
    child = subprocess.run(
        [sys.executable, "-c", MAP_A_LONG_WAIT], cwd=ROOT, capture_output=True, text=True, timeout=30
    )
    assert child.returncode == 0, child.stderr
    assert json.loads(child.stdout) == [
        None,
        [f"wait_time {'1' * 60!r} not understood (expected e.g. '6 weeks' or '2-4 months')"],
    ]


def test_a_service_nested_beyond_the_recursion_limit_is_still_checked_for_lone_surrogates() -> None:
    deep: object = "\ud800"
    for _ in range(5000):  # built in a loop, and added after oruk_service's deepcopy, which would recurse
        deep = [deep]
    assert reason({**oruk_service(), "extension": deep}) == (
        f"the service.extension{'.0' * 5000} holds a lone surrogate: not valid Unicode, so it cannot be stored"
    )


@pytest.mark.parametrize(
    ("document", "levels", "deeper"),
    [("text", 0, False), ([], 0, True), ([[1], 2], 2, False), ({"a": [{}]}, 2, True), ([[[]]], 3, False)],
)
def test_nesting_counts_objects_and_arrays(document: object, levels: int, deeper: bool) -> None:
    assert nested_deeper_than(document, levels) is deeper


@pytest.mark.parametrize(
    ("status", "active", "warning"),
    [
        ("Active", True, None),
        ("defunct", False, None),
        ("temporarily closed", False, None),
        ("closed", False, "status 'closed' is not an ORUK status: taken as inactive"),
        ("Withdrawn", False, "status 'Withdrawn' is not an ORUK status: taken as inactive"),
        ("suspended", False, "status 'suspended' is not an ORUK status: taken as inactive"),
        (None, False, "no status: taken as inactive"),
    ],
)
def test_only_an_active_status_is_active(status: str | None, active: bool, warning: str | None) -> None:
    service = oruk_service(status=status)
    if status is None:
        del service["status"]  # ORUK requires one
    result = mapped(service)
    assert result.provision.active is active
    assert result.warnings == ([warning] if warning else [])


@pytest.mark.parametrize(
    ("wait_time", "weeks"),
    [
        ("2 weeks - 3 months", 13.0),  # each end in its own unit: the longer is 3 months
        ("2 weeks to 3 months", 13.0),
        ("3 months \u2013 2 weeks", 13.0),
        ("6 to 8 weeks", 8.0),
        ("2-4 months", 17.3),
        ("10 days", 1.4),
        ("about 6 wks", 6.0),
    ],
)
def test_each_end_of_a_waiting_range_keeps_its_unit(wait_time: str, weeks: float) -> None:
    assert mapped(oruk_service(wait_time=wait_time)).provision.waiting_weeks == weeks


def test_status_areas_modes_and_costs() -> None:
    assert mapped(oruk_service(service_areas=[])).provision.localities == [WHOLE_AREA]
    online = [{"id": "a", "location": {"id": "b", "location_type": "virtual"}}]
    assert mapped(oruk_service(service_at_locations=online)).provision.delivery_mode is DeliveryMode.ONLINE
    paid = [{"id": "c", "option": "per family", "amount": 35, "amount_description": "per session"}]
    assert mapped(oruk_service(cost_options=paid)).provision.cost == "£35.00 per session per family"
    assert mapped(oruk_service(cost_options=[])).provision.cost == "not stated"


def test_the_map_is_configuration(tmp_path: Path) -> None:
    custom = tmp_path / "map.yaml"
    custom.write_text(
        "default_sector: education\n"
        "terms:\n  Youth club: {need_codes: [SEMH], levels_of_need: [universal]}\n"
        "service_areas:\n  Ashley: '*'\n"
        f"organisations:\n  {ORG_ID}: talking-together\n"
    )
    taxonomy = load_taxonomy_map(custom)
    provision = mapped(oruk_service(attributes=[term("youth CLUB")]), taxonomy).provision
    assert provision.need_codes == [NeedCode.SEMH] and provision.levels_of_need == [LevelOfNeed.UNIVERSAL]
    assert provision.localities == [WHOLE_AREA] and provision.organisation_id == "talking-together"
    assert "no taxonomy term maps" in reason(oruk_service(), taxonomy)  # the file replaces the default


def test_a_bad_map_file_is_named_with_what_is_wrong(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"terms": {"autism": {"need_codes": ["AUTISM"]}}}')
    with pytest.raises(TaxonomyMapError, match=r"SIGNPOST_ORUK_TAXONOMY_MAP .*terms\.autism\.need_codes\.0"):
        load_taxonomy_map(bad)
    with pytest.raises(TaxonomyMapError, match="cannot read it"):
        load_taxonomy_map(tmp_path / "missing.json")


def test_feed_ids_are_uuids_and_a_source_uuid_is_kept_as_it_is() -> None:
    upper = "AC148810-D857-441C-9679-408F346DE14B"
    assert feed_id("provision", upper) == upper
    derived = feed_id("provision", "slt-community")
    assert is_uuid(derived) and derived == feed_id("provision", "slt-community")
    assert derived != feed_id("organisation", "slt-community")


def test_the_feed_round_trips_through_the_mapping() -> None:
    original = mapped(oruk_service())
    served = full_service(original.provision, original.details, tenant="E06000023", taxonomy=DEFAULT)
    assert served["id"] == original.provision.id and is_uuid(served["organization"]["id"])
    again = mapped(served)
    assert again.provision == original.provision
    need_term = next(a for a in served["attributes"] if a["taxonomy_term"].get("term") == "SLCN")
    assert signpost_term_query(need_term["taxonomy_term_id"]) == {"need_codes": "SLCN"}


def test_the_feed_round_trips_after_an_admin_changes_needs_or_levels() -> None:
    original = mapped(oruk_service())  # terms "Speech and language therapy" (SLCN) and "Early help"
    changed = original.provision.model_copy(
        update={"need_codes": [NeedCode.HI], "levels_of_need": [LevelOfNeed.TARGETED]}
    )
    served = full_service(changed, original.details, tenant="E06000023", taxonomy=DEFAULT)
    assert map_service(served, taxonomy=DEFAULT, source="document", tenant="E06000023").provision == changed
    names = {a["taxonomy_term"]["name"] for a in served["attributes"]}
    assert "Speech and language therapy" not in names and "Early help" not in names
    # A need added beside the source's: its terms still agree, and stay.
    wider = original.provision.model_copy(update={"need_codes": [NeedCode.SLCN, NeedCode.HI]})
    served = full_service(wider, original.details, tenant="E06000023", taxonomy=DEFAULT)
    assert "Speech and language therapy" in {a["taxonomy_term"]["name"] for a in served["attributes"]}
    assert map_service(served, taxonomy=DEFAULT, source="document", tenant="E06000023").provision == wider


def test_the_whole_area_round_trips_but_a_neighbours_does_not_become_ours() -> None:
    area_wide = mapped(oruk_service(service_areas=[])).provision
    served = full_service(area_wide, None, tenant="E06000023", taxonomy=DEFAULT)
    assert served["service_areas"][0]["name"] == "The whole local area (E06000023)"
    again = map_service(served, taxonomy=DEFAULT, source="document", tenant="E06000023").provision
    assert again.localities == [WHOLE_AREA]
    neighbour = map_service(served, taxonomy=DEFAULT, source="document", tenant="E06000024").provision
    assert neighbour.localities == ["The whole local area (E06000023)"]  # map it in service_areas if meant
