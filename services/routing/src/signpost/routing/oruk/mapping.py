"""An Open Referral UK 3.0 service (with its organization) mapped onto a Signpost provision.

Pure: no I/O. A service that cannot be mapped raises `Unmappable` with the reason a
local-offer officer can act on; what is mapped differently from the feed is a warning.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeGuard

from pydantic import ValidationError
from signpost.routing.catalogue.models import (
    LONGEST_LOCALITY,
    MAX_PLACES,
    WHOLE_AREA,
    Capacity,
    Contact,
    DeliveryMode,
    Provision,
    ahead_of_now,
)
from signpost.routing.oruk.models import Organisation, OrukDetails, TaxonomyTerm, feed_id
from signpost.routing.oruk.taxonomy import TaxonomyMap, TermRule
from signpost.shared.text import has_lone_surrogate
from signpost.shared.vocabulary import BroadArea, LevelOfNeed, NeedCode, Sector

OLDEST_AGE = 25  # SEND support runs from birth to 25
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_ORG_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
# A number starts only after a non-digit: tried from inside a run of digits, the search took
# time quadratic in the run's length (minutes for a feed's 100,000-digit wait_time).
# Each end of a range may have its own unit ("2 weeks - 3 months"); one unit after both covers both.
_UNIT = r"(day|week|wk|month)s?\b"
_WAIT = re.compile(
    rf"(?<!\d)(\d+(?:\.\d+)?)\s*(?:{_UNIT}\s*)?(?:(?:-|\u2013|to)\s*(\d+(?:\.\d+)?)\s*)?{_UNIT}",
    re.IGNORECASE,
)
_WEEKS_PER = {"day": 1 / 7, "week": 1.0, "wk": 1.0, "month": 52 / 12}
_INACTIVE = {"inactive", "defunct", "temporarily closed"}  # ORUK's other statuses

Json = Mapping[str, Any]


def whole_area_name(tenant: str) -> str:
    """How a feed names the whole local area: Signpost's own feed says so, and reads it back."""
    return f"The whole local area ({tenant})"


class Unmappable(ValueError):
    """The service cannot become a provision; the message says why."""


@dataclass(frozen=True)
class MappedService:
    provision: Provision
    details: OrukDetails
    warnings: list[str] = field(default_factory=list)


def service_label(service: object) -> tuple[str | None, str | None]:
    """The (id, name) a report names a service by, whatever shape it came in."""
    if not isinstance(service, Mapping):
        return None, None
    oruk_id, name = service.get("id"), service.get("name")
    return (
        _storable(str(oruk_id)) if isinstance(oruk_id, str | int) and str(oruk_id).strip() else None,
        _storable(name.strip()) if isinstance(name, str) and name.strip() else None,
    )


def _storable(label: str) -> str:
    """The label with any lone surrogate as '?', so a report naming a refused service can be sent."""
    return label.encode("utf-8", "replace").decode("utf-8")


def map_service(
    service: object, *, taxonomy: TaxonomyMap, source: str, tenant: str | None = None
) -> MappedService:
    if not isinstance(service, Mapping):
        raise Unmappable(f"a service is a JSON object, not {type(service).__name__}")
    warnings: list[str] = []
    oruk_id, name = service_label(service)
    if oruk_id is None:
        raise Unmappable("missing id")
    if not _ID.match(oruk_id):
        raise Unmappable(
            f"id {oruk_id!r} cannot be a provision id (letters, digits, '.', '_' and '-', at most 64)"
        )
    if name is None:
        raise Unmappable("missing name")
    if (where := _lone_surrogate_in(service)) is not None:
        raise Unmappable(f"{where} holds a lone surrogate: not valid Unicode, so it cannot be stored")
    name = " ".join(name.split())
    if len(name) > 200:
        warnings.append("name cut to 200 characters")
        name = name[:200]

    terms = _taxonomy_terms(service)
    rules = [rule for term in terms if (rule := taxonomy.rule_for(term.source_id, term.term, term.name))]
    need_codes = _ordered(NeedCode, (code for rule in rules for code in rule.need_codes))
    broad_areas = _ordered(BroadArea, (area for rule in rules for area in rule.broad_areas))
    if not need_codes and not broad_areas:
        if not terms:
            raise Unmappable("no taxonomy terms (attributes) to map to a need code")
        seen = ", ".join(repr(term.name) for term in terms)
        raise Unmappable(f"no taxonomy term maps to a need code or broad area (terms: {seen})")

    organisation = _organisation(service)
    min_age, max_age = _ages(service)
    try:  # the models refuse what the checks above let through, e.g. a control character
        provision_fields: dict[str, Any] = {
            "id": oruk_id,
            "name": name,
            "organisation": organisation.name[:200],
            "organisation_id": _organisation_id(organisation, taxonomy),
            "sector": _sector(service, rules, taxonomy),
            "need_codes": need_codes,
            "broad_areas": broad_areas,
            "min_age": min_age,
            "max_age": max_age,
            "localities": _localities(service, taxonomy, warnings, tenant),
            "levels_of_need": _ordered(
                LevelOfNeed, (level for rule in rules for level in rule.levels_of_need)
            )
            or list(taxonomy.default_levels_of_need),
            "delivery_mode": _delivery_mode(service, rules),
            "cost": _cost(service),
            "contact": _contact(service, warnings),
            "capacity": _capacity(service, warnings),
            "waiting_weeks": _waiting_weeks(service, warnings),
            "active": _active(service, warnings),
        }
        provision = Provision(**provision_fields)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise Unmappable(f"not a valid provision: {problems}") from None
    details = OrukDetails(
        provision_id=provision.id,
        description=_text(service.get("description")),
        url=_text(service.get("url")),
        email=_text(service.get("email")),
        organization=organisation,
        taxonomy_terms=terms,
        source=source,
    )
    return MappedService(provision=provision, details=details, warnings=warnings)


def _lone_surrogate_in(service: Json) -> str | None:
    """Where JSON's `\\ud800` escapes left text no database can store, if anywhere.

    Walked with a stack, not recursion: a document may nest deeper than Python's recursion limit."""
    pending: list[tuple[str, object]] = [("the service", service)]
    while pending:
        where, value = pending.pop()
        if isinstance(value, str):
            if has_lone_surrogate(value):
                return where
            continue
        for key, item in reversed(_entries(value)):  # reversed: popped in the document's order
            pending.append((f"{where}.{key}", item))
            if isinstance(key, str):
                pending.append((f"a key in {where}", key))
    return None


def nested_deeper_than(document: object, levels: int) -> bool:
    """Whether objects and arrays nest more than `levels` deep (walked a level at a time: no recursion)."""
    level = [document]
    for _ in range(levels):
        level = [item for node in level for _, item in _entries(node)]
    return any(isinstance(node, Mapping | list) for node in level)


def _entries(value: object) -> list[tuple[object, object]]:
    """A JSON object's (key, value) pairs or an array's (index, item) pairs; none for anything else."""
    if isinstance(value, Mapping):
        return list(value.items())
    return list(enumerate(value)) if isinstance(value, list) else []


def _ordered(kind: Any, values: Any) -> list[Any]:
    present = set(values)
    return [member for member in kind if member in present]


def _text(value: object) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def _line(value: object) -> str | None:
    """Text for a one-line provision field: line breaks and tabs in a feed become spaces."""
    return (" ".join(value.split()) or None) if isinstance(value, str) else None


def _list(service: Json, key: str) -> list[Json]:
    value = service.get(key)
    if isinstance(value, Mapping):
        value = [value]
    return [item for item in value if isinstance(item, Mapping)] if isinstance(value, list) else []


def _taxonomy_terms(service: Json) -> list[TaxonomyTerm]:
    terms: dict[str, TaxonomyTerm] = {}
    for attribute in _list(service, "attributes"):
        raw = attribute.get("taxonomy_term")
        term: Json = raw if isinstance(raw, Mapping) else {}
        source_id = _text(term.get("id")) or _text(attribute.get("taxonomy_term_id"))
        name = _text(term.get("name")) or _text(term.get("term")) or source_id
        if name is None:
            continue
        term_id = feed_id("taxonomy-term", source_id or name)
        terms.setdefault(
            term_id,
            TaxonomyTerm(
                id=term_id,
                source_id=source_id,
                name=name,
                description=_text(term.get("description")) or name,
                taxonomy=_text(term.get("taxonomy")),
                term=_text(term.get("term")),
                term_uri=_text(term.get("term_uri")),
            ),
        )
    return list(terms.values())


def _organisation(service: Json) -> Organisation:
    raw = service.get("organization")
    organization: Json = raw if isinstance(raw, Mapping) else {}
    name = _line(organization.get("name"))
    if name is None:
        raise Unmappable("no organization name (the service's `organization` object is missing or unnamed)")
    source_id = _text(organization.get("id")) or _text(service.get("organization_id"))
    return Organisation(
        id=feed_id("organisation", source_id or name),
        source_id=source_id,
        name=name,
        description=_text(organization.get("description")) or name,
        email=_text(organization.get("email")),
        website=_text(organization.get("website")),
    )


def _organisation_id(organisation: Organisation, taxonomy: TaxonomyMap) -> str:
    if organisation.source_id and (mapped := taxonomy.organisations.get(organisation.source_id.casefold())):
        return mapped
    for candidate in (organisation.source_id, organisation.name):
        slug = re.sub(r"[^a-z0-9]+", "-", (candidate or "").lower()).strip("-")[:64].rstrip("-")
        if _ORG_ID.match(slug):
            return slug
    return organisation.id


def _sector(service: Json, rules: Sequence[TermRule], taxonomy: TaxonomyMap) -> Sector:
    for rule in rules:
        if rule.sector is not None:
            return rule.sector
    raw = service.get("organization")
    for identifier in _list(raw, "organization_identifiers") if isinstance(raw, Mapping) else []:
        scheme = _text(identifier.get("identifier_scheme"))
        if scheme and (sector := taxonomy.organization_identifier_schemes.get(scheme.casefold())):
            return sector
    if taxonomy.default_sector is None:
        raise Unmappable(
            "no taxonomy term or organisation identifier says which sector it is in "
            "(education, health, social care, voluntary), and the taxonomy map sets no default_sector"
        )
    return taxonomy.default_sector


def _age(service: Json, key: str) -> float | None:
    value = service.get(key)
    if value is None:
        for eligibility in _list(service, "eligibilitys") or _list(service, "eligibility"):
            if eligibility.get(key) is not None:
                value = eligibility[key]
                break
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise Unmappable(f"eligibility {key} {value!r} is not a number") from None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise Unmappable(f"eligibility {key} {value!r} is not an age")
    return float(value)


def _ages(service: Json) -> tuple[int, int]:
    low, high = _age(service, "minimum_age"), _age(service, "maximum_age")
    if low is not None and high is not None and low > high:
        raise Unmappable(f"eligibility minimum_age {low:g} > maximum_age {high:g}")
    if low is not None and low > OLDEST_AGE:
        raise Unmappable(
            f"eligibility minimum_age {low:g} is above {OLDEST_AGE}, the oldest age Signpost serves"
        )
    return math.floor(low or 0), min(OLDEST_AGE, math.floor(high if high is not None else OLDEST_AGE))


def _localities(service: Json, taxonomy: TaxonomyMap, warnings: list[str], tenant: str | None) -> list[str]:
    whole_area = {"the whole local area", *([whole_area_name(tenant).casefold()] if tenant else [])}
    localities: list[str] = []
    for area in _list(service, "service_areas"):
        name = _line(area.get("name")) or _line(area.get("service_area"))
        if name is None:
            continue
        if len(name) > LONGEST_LOCALITY:
            warnings.append(
                f"a service area name was cut to {LONGEST_LOCALITY} characters; map it to a locality"
            )
            name = name[:LONGEST_LOCALITY]
        locality = taxonomy.service_areas.get(name.casefold()) or (
            WHOLE_AREA if name.casefold() in whole_area else name
        )
        if locality == WHOLE_AREA:
            return [WHOLE_AREA]
        if locality not in localities:
            localities.append(locality)
    return localities or [WHOLE_AREA]  # a Local Offer service with no stated area serves the whole area


def _delivery_mode(service: Json, rules: Sequence[TermRule]) -> DeliveryMode:
    for rule in rules:
        if rule.delivery_mode is not None:
            return rule.delivery_mode
    kinds = set()
    for link in _list(service, "service_at_locations"):
        location = link.get("location")
        if isinstance(location, Mapping) and (kind := _text(location.get("location_type"))):
            kinds.add("virtual" if kind == "virtual" else "physical")
    if kinds == {"virtual"}:
        return DeliveryMode.ONLINE
    return DeliveryMode.BLENDED if kinds == {"virtual", "physical"} else DeliveryMode.IN_PERSON


def _cost(service: Json) -> str:
    options = []
    for option in _list(service, "cost_options"):
        amount = option.get("amount")
        described = " ".join(
            filter(None, [_line(option.get("amount_description")), _line(option.get("option"))])
        )
        if isinstance(amount, int | float) and not isinstance(amount, bool):
            options.append("free" if amount == 0 else f"£{amount:,.2f} {described}".strip())
        elif described:
            options.append(described)
    text = "; ".join(options) or _line(service.get("fees_description")) or _line(service.get("fees"))
    return (text or "not stated")[:200]


def _phones(holder: Json) -> list[str]:
    return [number for phone in _list(holder, "phones") if (number := _line(phone.get("number")))]


def _contact(service: Json, warnings: list[str]) -> Contact:
    raw = service.get("organization")
    organization: Json = raw if isinstance(raw, Mapping) else {}
    contacts = _list(service, "contacts")
    emails = [
        _line(service.get("email")),
        *(_line(c.get("email")) for c in contacts),
        _line(organization.get("email")),
    ]
    phones = [*_phones(service), *(p for c in contacts for p in _phones(c)), *_phones(organization)]
    urls = [_line(service.get("url")), _line(organization.get("website"))]
    email = next((e for e in emails if e and "@" in e and len(e) <= 254), None)
    phone = next((p for p in phones if len(p) <= 30), None)
    url = next((u for u in urls if u and len(u) <= 500), None)
    if phones and phone is None:
        warnings.append("phone numbers longer than 30 characters were left out")
    return Contact(email=email, phone=phone, url=url)


def _capacity(service: Json, warnings: list[str]) -> Capacity | None:
    """HSDS 3.1 `capacities` (an array of service_capacity); `service_capacity` is accepted too."""
    for entry in _list(service, "capacities") or _list(service, "service_capacity"):
        available, maximum = entry.get("available"), entry.get("maximum")
        if not _finite(available):
            continue
        if not _finite(maximum) or maximum < 1:
            warnings.append("service_capacity left out: it has no maximum of at least 1")
            return None
        if maximum > MAX_PLACES:
            warnings.append(f"service_capacity left out: maximum {maximum:g} is above {MAX_PLACES:,} places")
            return None
        if available < 0 or available > maximum:
            warnings.append(
                f"service_capacity left out: available {available:g} is not between 0 and maximum {maximum:g}"
            )
            return None
        updated = _datetime(entry.get("updated"))
        if ahead_of_now(updated):
            warnings.append("service_capacity's updated is in the future: the figure is read as counted now")
            updated = None
        return Capacity(available=math.floor(available), maximum=math.floor(maximum), updated=updated)
    return None


def _finite(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _datetime(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
        # UTC at millisecond precision: what MongoDB keeps, so a re-import compares equal
        moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except (ValueError, OverflowError):  # not a time, or one that does not exist in UTC (year 0 or 10000)
        return None
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def _waiting_weeks(service: Json, warnings: list[str]) -> float | None:
    text = _text(service.get("wait_time"))
    if text is None:
        return None
    match = _WAIT.search(text)
    if match is None:
        warnings.append(f"wait_time {text[:60]!r} not understood (expected e.g. '6 weeks' or '2-4 months')")
        return None
    first, first_unit, second, unit = match.groups()
    ends = [float(first) * _WEEKS_PER[(first_unit or unit).lower()]]
    if second is not None:
        ends.append(float(second) * _WEEKS_PER[unit.lower()])
    return min(520.0, round(max(ends), 1))  # the cautious, longer end of a range


def _active(service: Json, warnings: list[str]) -> bool:
    """Only an `active` service is routed to. ORUK requires a status: one it does not define
    ("closed", "suspended"), or none, may mean the service takes no referrals."""
    status = _text(service.get("status"))
    if status is None:
        warnings.append("no status: taken as inactive")
        return False
    if status.lower() not in _INACTIVE | {"active"}:
        warnings.append(f"status {status!r} is not an ORUK status: taken as inactive")
    return status.lower() == "active"
