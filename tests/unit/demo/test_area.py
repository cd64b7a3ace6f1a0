"""The synthetic area: reproducible, Local-Offer-shaped, and an ORUK feed routing imports whole."""

from __future__ import annotations

import json
from collections import Counter

import jsonschema
from signpost.routing.catalogue.models import WHOLE_AREA
from signpost.routing.oruk.mapping import map_service
from signpost.routing.oruk.taxonomy import load_taxonomy_map
from signpost.shared.vocabulary import Sector

from signpost.platform.demo.area import LocalArea, Phase, build_area
from signpost.platform.demo.oruk import oruk_feed, service_id
from tests.oruk_fixtures import OFFICIAL_ORUK, needs_official_oruk

ORUK_SCHEMAS = OFFICIAL_ORUK / "schema"

# What a real Local Offer lists, by the services' keys (per-hub services carry a hub suffix).
EXPECTED_KINDS = (
    "send-advice-line", "specialist-teaching", "educational-psychology", "community-slt", "childrens-ot",
    "camhs", "mental-health-support-team", "early-help-family-support", "short-breaks", "parent-carer-forum",
    "sendias",
)  # fmt: skip


def test_the_same_seed_builds_the_same_area() -> None:
    assert build_area(7) == build_area(7)
    assert build_area(7) != build_area(8)
    assert oruk_feed(build_area(7)) == oruk_feed(build_area(7))


def test_the_area_has_settings_of_every_phase_and_a_full_local_offer(area: LocalArea) -> None:
    assert 90 <= len(area.settings) <= 110
    assert len({s.id for s in area.settings}) == len(area.settings)
    phases = Counter(s.phase for s in area.settings)
    assert (
        set(phases) == set(Phase) and phases[Phase.PRIMARY] > phases[Phase.SECONDARY] > phases[Phase.COLLEGE]
    )
    assert all(s.id.startswith(("URN", "EY")) and s.id[-6:].isdigit() for s in area.settings)
    assert 50 <= len(area.provisions) <= 70
    keys = [p.key for p in area.provisions]
    assert len(set(keys)) == len(keys) and len({p.name for p in area.provisions}) == len(keys)
    for kind in EXPECTED_KINDS:
        assert any(key.startswith(kind) for key in keys), kind
    assert {p.sector for p in area.provisions} == set(Sector)
    wards = {locality.name for locality in area.localities}
    assert all(set(p.localities) <= wards for p in area.provisions)


def test_every_service_in_the_feed_maps_onto_the_provision_it_describes(area: LocalArea) -> None:
    """Routing's own mapping with its default taxonomy map: nothing skipped, nothing lost."""
    taxonomy = load_taxonomy_map(None)
    feed = oruk_feed(area)
    assert feed["total_items"] == len(feed["contents"]) == len(area.provisions)
    for provision, service in zip(area.provisions, feed["contents"], strict=True):
        mapped = map_service(service, taxonomy=taxonomy, source="document")
        assert mapped.warnings == [], (provision.name, mapped.warnings)
        imported = mapped.provision
        assert imported.id == service_id(area, provision)
        assert (imported.name, imported.sector) == (provision.name, provision.sector)
        assert (imported.min_age, imported.max_age) == (provision.min_age, provision.max_age)
        assert imported.need_codes == [n for n in imported.need_codes if n in provision.need_codes]
        assert set(imported.need_codes) == set(provision.need_codes)
        assert set(imported.broad_areas) == set(provision.broad_areas)
        assert set(imported.levels_of_need) == set(provision.levels_of_need)
        assert imported.localities == (list(provision.localities) or [WHOLE_AREA])
        assert imported.capacity is not None
        assert (imported.capacity.available, imported.capacity.maximum) == (
            provision.capacity_available,
            provision.capacity_maximum,
        )
        assert imported.waiting_weeks == provision.waiting_weeks
        assert imported.delivery_mode.value == provision.delivery


@needs_official_oruk
def test_the_feed_conforms_to_the_oruk_uk_profile(area: LocalArea) -> None:
    service_schema = json.loads((ORUK_SCHEMAS / "compiled" / "service.json").read_text())
    page_schema = json.loads((ORUK_SCHEMAS / "openapi.json").read_text())["components"]["schemas"]["Page"]
    feed = oruk_feed(area)
    jsonschema.Draft202012Validator(
        {k: v for k, v in page_schema.items() if k != "$ref"}, format_checker=jsonschema.FormatChecker()
    ).validate({k: v for k, v in feed.items() if k != "contents"})
    validator = jsonschema.Draft202012Validator(service_schema, format_checker=jsonschema.FormatChecker())
    for service in feed["contents"]:
        errors = sorted(validator.iter_errors(service), key=lambda e: list(e.path))
        assert not errors, (service["name"], [f"{list(e.path)}: {e.message}" for e in errors])
