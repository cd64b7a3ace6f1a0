"""The area's Local Offer as an Open Referral UK 3.0 feed (a page of fully nested services).

Needs, broad areas, sector, levels of need and delivery mode travel as taxonomy terms
(`attributes`) whose `term` is Signpost's own code, which routing's default taxonomy map
understands; a readable `name` goes with each. Capacity is HSDS 3.1 `capacities`, the
typical wait a `wait_time` text, and a whole-area service has no `service_areas`.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from signpost.shared.vocabulary import NEED_NAMES, BroadArea, LevelOfNeed, Sector

from signpost.platform.demo.area import DemoProvision, LocalArea

TAXONOMY_NEEDS = "SEND type of need (school census)"
TAXONOMY_AREAS = "SEND Code of Practice broad area of need"
TAXONOMY_SECTOR = "Sector"
TAXONOMY_LEVEL = "Level of need (local continuum)"
TAXONOMY_DELIVERY = "Delivery mode"
# Ids depend on what a thing is, not on the seed: another seed's feed updates the same services.
_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:signpost:demo-area")
# Fixed, so the same seed gives byte-identical feeds (and a re-import changes nothing).
FEED_TIME = datetime(2025, 9, 1, tzinfo=UTC)


def oruk_id(kind: str, key: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"{kind}:{key}"))


def service_id(area: LocalArea, provision: DemoProvision) -> str:
    """The ORUK service id, which routing keeps as the provision id."""
    return oruk_id("service", provision.key)


def oruk_feed(area: LocalArea) -> dict[str, Any]:
    """One page holding every service, as `GET /services` would answer with `per_page` large enough."""
    services = [oruk_service(area, provision) for provision in area.provisions]
    return {
        "total_items": len(services),
        "total_pages": 1,
        "page_number": 1,
        "size": len(services),
        "first_page": True,
        "last_page": True,
        "empty": not services,
        "contents": services,
    }


def oruk_service(area: LocalArea, provision: DemoProvision) -> dict[str, Any]:
    sid = service_id(area, provision)
    organisation_id = oruk_id("organization", provision.organisation)
    terms = [
        *((TAXONOMY_NEEDS, need.value, NEED_NAMES[need]) for need in provision.need_codes),
        *((TAXONOMY_AREAS, area_.value, _label(area_)) for area_ in provision.broad_areas),
        (TAXONOMY_SECTOR, provision.sector.value, _label(provision.sector)),
        *((TAXONOMY_LEVEL, level.value, _label(level)) for level in provision.levels_of_need),
        (TAXONOMY_DELIVERY, provision.delivery, _label(provision.delivery)),
    ]
    service: dict[str, Any] = {
        "id": sid,
        "organization_id": organisation_id,
        "name": provision.name,
        "description": provision.description,
        "url": f"https://localoffer.example.org/services/{provision.key}",
        "email": f"{provision.key}@localoffer.example.org",
        "status": "active",
        "minimum_age": provision.min_age,
        "maximum_age": provision.max_age,
        "last_modified": FEED_TIME.isoformat(),
        "organization": {
            "id": organisation_id,
            "name": provision.organisation,
            "description": f"{provision.organisation}: a provider in the {area.name} Local Offer.",
        },
        "cost_options": [
            {
                "id": oruk_id("cost", provision.key),
                "service_id": sid,
                "option": provision.cost,
                "amount": 0,
            }
        ],
        "contacts": [
            {
                "id": oruk_id("contact", provision.key),
                "service_id": sid,
                "name": "Referrals and duty desk",
            }
        ],
        "phones": [{"id": oruk_id("phone", provision.key), "number": provision.phone}],
        "capacities": [
            {
                "id": oruk_id("capacity", provision.key),
                "service_id": sid,
                "available": provision.capacity_available,
                "maximum": provision.capacity_maximum,
                "unit": {"id": oruk_id("unit", "place"), "name": "places"},
                "updated": FEED_TIME.isoformat(),
            }
        ],
        "wait_time": f"{provision.waiting_weeks:g} weeks",
        "attributes": [
            {
                "id": oruk_id("attribute", f"{provision.key}:{taxonomy}:{code}"),
                "link_id": sid,
                "link_type": "service",
                "taxonomy_term_id": oruk_id("term", f"{taxonomy}:{code}"),
                "taxonomy_term": {
                    "id": oruk_id("term", f"{taxonomy}:{code}"),
                    "name": name,
                    "description": f"{taxonomy}: {name}",
                    "taxonomy": taxonomy,
                    "term": code,
                },
            }
            for taxonomy, code, name in terms
        ],
    }
    if provision.localities:
        service["service_areas"] = [
            {"id": oruk_id("service-area", f"{provision.key}:{ward}"), "service_id": sid, "name": ward}
            for ward in provision.localities
        ]
    return service


def _label(value: BroadArea | Sector | LevelOfNeed | str) -> str:
    return str(value).replace("_", " ").capitalize()
