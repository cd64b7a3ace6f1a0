"""Our own Open Referral UK 3.0 services for tests (the official examples are read only by the
optional conformance test), and a compact JSON Schema of what a UK-profile service must be."""

from __future__ import annotations

import copy
import uuid
from pathlib import Path
from typing import Any

import pytest

ORG_ID = "5b0c8f8e-3f1e-4d8a-9a51-6d1f0c1b7a10"

# DESIGN.md: the official ORUK examples and schemas (CC BY-SA) sit beside the repository, in
# ../shared/data, and are read from there by an optional conformance test, never copied in.
OFFICIAL_ORUK = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "openreferral-uk"
needs_official_oruk = pytest.mark.skipif(
    not (OFFICIAL_ORUK / "schema" / "compiled" / "service.json").is_file(),
    reason="optional ORUK conformance test: the official ORUK examples and schemas are not at "
    f"{OFFICIAL_ORUK}; DESIGN.md keeps them beside the repository, never copied into it",
)


def _id(label: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"urn:signpost-tests:{label}"))


def term(name: str, *, code: str | None = None, taxonomy: str = "Local Offer needs") -> dict[str, Any]:
    return {
        "id": _id(f"attribute:{name}"),
        "link_type": "service",
        "taxonomy_term": {
            "id": _id(f"term:{name}"),
            "name": name,
            "description": f"Services for {name.lower()}",
            "taxonomy": taxonomy,
            **({"term": code} if code else {}),
        },
    }


def oruk_service(number: int = 1, **overrides: Any) -> dict[str, Any]:
    """A full ORUK service: organization, ages, areas, taxonomy terms, capacity, contacts, costs."""
    service_id = _id(f"service:{number}")
    service: dict[str, Any] = {
        "id": service_id,
        "name": f"Talking Together speech group {number}",
        "description": "Small-group speech and language sessions for children and their parents.",
        "url": "https://talking-together.example/groups",
        "email": "hello@talking-together.example",
        "status": "active",
        "minimum_age": 2,
        "maximum_age": 7,
        "wait_time": "4-6 weeks",
        "organization": {
            "id": ORG_ID,
            "name": "Talking Together Trust",
            "description": "A local charity for children's communication.",
            "email": "office@talking-together.example",
            "website": "https://talking-together.example",
            "organization_identifiers": [
                {
                    "id": _id("org-identifier"),
                    "identifier_scheme": "GB-CHC",
                    "identifier_type": "Charity number",
                    "identifier": "1234567",
                }
            ],
        },
        "service_areas": [
            {"id": _id(f"area:{number}:ashley"), "name": "Ashley"},
            {"id": _id(f"area:{number}:bedminster"), "name": "Bedminster"},
        ],
        "attributes": [term("Speech and language therapy"), term("Early help", taxonomy="Level of need")],
        "contacts": [
            {
                "id": _id(f"contact:{number}"),
                "name": "Group coordinator",
                "title": "Coordinator",
                "phones": [{"id": _id(f"phone:{number}"), "number": "01632 960123"}],
            }
        ],
        "cost_options": [{"id": _id(f"cost:{number}"), "option": "Every family", "amount": 0}],
        "capacities": [
            {
                "id": _id(f"capacity:{number}"),
                "unit": {"id": _id("unit:places"), "name": "places"},
                "available": 3,
                "maximum": 10,
                "updated": "2026-11-01T09:30:00.250+00:00",
            }
        ],
        "service_at_locations": [
            {
                "id": _id(f"sal:{number}"),
                "location": {"id": _id(f"loc:{number}"), "location_type": "physical"},
            }
        ],
    }
    service.update(copy.deepcopy(overrides))
    return service


LIST_FIELDS = {
    "id",
    "name",
    "description",
    "url",
    "email",
    "status",
    "minimum_age",
    "maximum_age",
    "wait_time",
    "organization",
}


def list_entry(service: dict[str, Any]) -> dict[str, Any]:
    """What an ORUK `/services` page holds for a service: its one-to-one fields and organization."""
    return {key: value for key, value in service.items() if key in LIST_FIELDS}


_UUID = {"type": "string", "format": "uuid"}
_TERM = {
    "type": "object",
    "required": ["id", "name", "description"],
    "properties": {
        "id": _UUID,
        "parent_id": _UUID,
        "taxonomy_id": _UUID,
        "name": {"type": "string"},
        "description": {"type": "string"},
        "term_uri": {"type": "string", "format": "uri"},
    },
}


def _items(properties: dict[str, Any], required: tuple[str, ...] = ("id",)) -> dict[str, Any]:
    return {
        "type": "array",
        "items": {"type": "object", "required": list(required), "properties": {"id": _UUID, **properties}},
    }


# Written from the ORUK 3.0 UK profile's rules (required fields, UUID ids, the status values).
ORUK_SERVICE_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["id", "name", "status"],
    "properties": {
        "id": _UUID,
        "organization_id": _UUID,
        "name": {"type": "string"},
        "description": {"type": "string"},
        "url": {"type": "string", "format": "uri"},
        "email": {"type": "string", "format": "email"},
        "status": {"enum": ["active", "inactive", "defunct", "temporarily closed"]},
        "minimum_age": {"type": "number"},
        "maximum_age": {"type": "number"},
        "organization": {
            "type": "object",
            "required": ["id", "name", "description"],
            "properties": {
                "id": _UUID,
                "name": {"type": "string"},
                "description": {"type": "string"},
                "email": {"type": "string", "format": "email"},
                "website": {"type": "string", "format": "uri"},
            },
        },
        "service_areas": _items({"service_id": _UUID, "name": {"type": "string"}}),
        "contacts": _items({"service_id": _UUID, "name": {"type": "string"}}),
        "cost_options": _items({"service_id": _UUID, "amount": {"type": "number"}}),
        "attributes": _items({"link_id": _UUID, "taxonomy_term_id": _UUID, "taxonomy_term": _TERM}),
        "capacities": _items(
            {
                "available": {"type": "number"},
                "maximum": {"type": "number"},
                "unit": {"type": "object", "required": ["id", "name"]},
                "updated": {"type": "string", "format": "date-time"},
            },
            required=("id", "unit", "available"),
        ),
    },
}


def oruk_feed_app(
    services: list[dict[str, Any]], *, page_cap: int = 2, failing_page: int | None = None
) -> Any:
    """An ORUK publisher: `/services` pages (at most `page_cap` per page) of list entries, `/services/{id}` in full.

    `services` is read on every request, so a test can change the feed between imports.
    """
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse, PlainTextResponse

    app = FastAPI()

    @app.get("/services")
    def services_page(page: int = 1, per_page: int = 50) -> Any:
        if page == failing_page:
            return JSONResponse({"error": "database timeout"}, status_code=500)
        size = min(per_page, page_cap)
        chunk = services[(page - 1) * size : page * size]
        total_pages = -(-len(services) // size)
        return {
            "total_items": len(services),
            "total_pages": total_pages,
            "page_number": page,
            "size": len(chunk),
            "first_page": page == 1,
            "last_page": page >= total_pages,
            "empty": not services,
            "contents": [list_entry(service) for service in chunk],
        }

    @app.get("/services/{service_id}")
    def one_service(service_id: str) -> Any:
        for service in services:
            if service["id"] == service_id:
                return service
        return JSONResponse({"error": "not found"}, status_code=404)

    @app.get("/html/services")
    def not_json() -> Any:
        return PlainTextResponse("<html>maintenance</html>", media_type="text/html")

    return app
