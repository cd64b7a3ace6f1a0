"""The catalogue as Open Referral UK 3.0 services (with HSDS 3.1 `capacities`). Pure: no I/O.

Provisions hold the current truth (capacity and waiting time change as routing works);
an imported provision's ORUK details add what a provision does not hold (description,
the organization's own id, the source's taxonomy terms). Every id is a UUID, as the
spec asks: the source's own where it was one, else a stable one derived from ours.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from typing import Any

from signpost.routing.catalogue.models import WHOLE_AREA, DeliveryMode, Provision
from signpost.routing.oruk.mapping import whole_area_name
from signpost.routing.oruk.models import Organisation, OrukDetails, TaxonomyTerm, feed_id
from signpost.routing.oruk.taxonomy import TaxonomyMap, TermRule
from signpost.shared.vocabulary import NEED_NAMES, BroadArea, LevelOfNeed, Sector

ORUK_VERSION = "3.0"
PROFILE_URL = "https://openreferral.org/uk-profile"


def _named(values: Iterable[StrEnum]) -> list[tuple[str, str]]:
    return [(value.value, value.value.replace("_", " ").capitalize()) for value in values]


def _signpost_terms() -> dict[str, tuple[str, str, str, str]]:
    """feed id -> (taxonomy, code, name, provision field) for every term of Signpost's own vocabulary."""
    kinds: list[tuple[str, str, list[tuple[str, str]]]] = [
        ("need_codes", "SEND need code (school census)", [(c.value, n) for c, n in NEED_NAMES.items()]),
        ("broad_areas", "SEND broad area of need", _named(BroadArea)),
        ("sector", "Sector", _named(Sector)),
        ("levels_of_need", "Level of need", _named(LevelOfNeed)),
        ("delivery_mode", "Delivery mode", _named(DeliveryMode)),
    ]
    return {
        feed_id("signpost-term", f"{field}:{code}"): (taxonomy, code, name, field)
        for field, taxonomy, terms in kinds
        for code, name in terms
    }


SIGNPOST_TERMS = _signpost_terms()
_TERM_ID = {(field, code): term_id for term_id, (_, code, _, field) in SIGNPOST_TERMS.items()}


def signpost_term_query(term_id: str) -> dict[str, str] | None:
    """The provisions query for one of Signpost's own taxonomy terms, if `term_id` is one."""
    if (found := SIGNPOST_TERMS.get(term_id.lower())) is None:
        return None
    _, code, _, field = found
    return {field: code}


def service_feed_id(provision: Provision) -> str:
    return feed_id("provision", provision.id)


def organisation_feed_id(organisation_id: str) -> str:
    return feed_id("organisation", organisation_id)


def _organisation(provision: Provision, details: OrukDetails | None) -> Organisation:
    if details is not None and details.organization.name == provision.organisation:
        return details.organization
    return Organisation(
        id=organisation_feed_id(provision.organisation_id),
        name=provision.organisation,
        description=provision.organisation,
    )


def _organization_json(organisation: Organisation) -> dict[str, Any]:
    return _without_none(
        {
            "id": organisation.id,
            "name": organisation.name,
            "description": organisation.description,
            "email": organisation.email,
            "website": organisation.website,
        }
    )


def _without_none(fields: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in fields.items() if value is not None}


def summary(provision: Provision, details: OrukDetails | None) -> dict[str, Any]:
    """The one-to-one fields of a service and its organization: an entry of the paged list."""
    service_id = service_feed_id(provision)
    organisation = _organisation(provision, details)
    return _without_none(
        {
            "id": service_id,
            "organization_id": organisation.id,
            "name": provision.name,
            "description": (details.description if details else None)
            or f"{provision.name}, from {provision.organisation}.",
            "url": provision.contact.url,
            "email": provision.contact.email,
            "status": "active" if provision.active else "inactive",
            "fees": None if provision.cost == "not stated" else provision.cost,
            "minimum_age": provision.min_age,
            "maximum_age": provision.max_age,
            "wait_time": None if provision.waiting_weeks is None else f"{provision.waiting_weeks:g} weeks",
            "organization": _organization_json(organisation),
        }
    )


def full_service(
    provision: Provision, details: OrukDetails | None, *, tenant: str, taxonomy: TaxonomyMap
) -> dict[str, Any]:
    """A fully nested service: eligibility, areas, taxonomy terms (the source's through `taxonomy`,
    the map an import reads them by), capacity and contacts."""
    service = summary(provision, details)
    service_id = service["id"]

    def child_id(kind: str, key: str) -> str:
        return feed_id(kind, f"{service_id}:{key}")

    service["service_areas"] = [
        {
            "id": child_id("service-area", locality),
            "service_id": service_id,
            "name": whole_area_name(tenant) if locality == WHOLE_AREA else locality,
            "service_area": whole_area_name(tenant) if locality == WHOLE_AREA else locality,
        }
        for locality in provision.localities
    ]
    service["attributes"] = [
        {
            "id": child_id("attribute", term.id),
            "link_id": service_id,
            "link_type": "service",
            "taxonomy_term_id": term.id,
            "taxonomy_term": _without_none(term.model_dump(exclude={"source_id"})),
        }
        for term in _terms(provision, details, taxonomy)
    ]
    service["contacts"] = [
        _without_none(
            {
                "id": child_id("contact", "enquiries"),
                "service_id": service_id,
                "name": f"{provision.name} enquiries",
                "email": provision.contact.email,
                "phones": [{"id": child_id("phone", "enquiries"), "number": provision.contact.phone}]
                if provision.contact.phone
                else None,
            }
        )
    ]
    if provision.cost != "not stated":
        service["cost_options"] = [
            {"id": child_id("cost", "cost"), "service_id": service_id, "option": provision.cost}
        ]
    if provision.capacity is not None:
        capacity = provision.capacity
        service["capacities"] = [
            _without_none(
                {
                    "id": child_id("capacity", "places"),
                    "service_id": service_id,
                    "unit": {"id": feed_id("unit", "places"), "name": "places", "scheme": "signpost"},
                    "available": capacity.available,
                    "maximum": capacity.maximum,
                    "description": "Places free to start now, out of the most the service can hold.",
                    "updated": capacity.updated.isoformat() if capacity.updated else None,
                }
            )
        ]
    return service


def _terms(
    provision: Provision, details: OrukDetails | None, taxonomy_map: TaxonomyMap
) -> list[TaxonomyTerm]:
    ours: list[tuple[str, str]] = [
        *(("need_codes", code.value) for code in provision.need_codes),
        *(("broad_areas", area.value) for area in provision.broad_areas),
        ("sector", provision.sector.value),
        *(("levels_of_need", level.value) for level in provision.levels_of_need),
        ("delivery_mode", provision.delivery_mode.value),
    ]
    terms = []
    for key in ours:
        term_id = _TERM_ID[key]
        taxonomy, code, name, _ = SIGNPOST_TERMS[term_id]
        terms.append(
            TaxonomyTerm(
                id=term_id,
                name=name,
                description=f"{taxonomy}: {name}",
                taxonomy=f"Signpost {taxonomy}",
                term=code,
            )
        )
    seen = {term.id for term in terms}
    source = [
        term
        for term in (details.taxonomy_terms if details else [])
        if term.id not in seen
        and _agrees(taxonomy_map.rule_for(term.source_id, term.term, term.name), provision)
    ]
    return terms + source


def _agrees(rule: TermRule | None, provision: Provision) -> bool:
    """Whether a source term says nothing the provision no longer says: once an admin changes its
    needs, levels, sector or delivery mode, the feed drops the source's terms for the old ones."""
    if rule is None:
        return True
    return (
        set(rule.need_codes) <= set(provision.need_codes)
        and set(rule.broad_areas) <= set(provision.broad_areas)
        and set(rule.levels_of_need) <= set(provision.levels_of_need)
        and rule.sector in (None, provision.sector)
        and rule.delivery_mode in (None, provision.delivery_mode)
    )
