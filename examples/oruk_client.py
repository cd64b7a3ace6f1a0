"""Read Signpost's Local Offer as an Open Referral UK 3.0 feed, page by page, with httpx.

    pip install httpx
    python examples/oruk_client.py --base-url http://127.0.0.1:8002/oruk

Lists every service (id, name, organisation, ages, needs), then prints one service in full.
Any ORUK 3.0 client works the same way: `GET /services?page=N&per_page=M` returns a page
(`contents`, `total_items`, `last_page`, ...); `GET /services/{id}` the fully nested service.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from typing import Any

import httpx


def services(client: httpx.Client, *, per_page: int = 50) -> Iterator[dict[str, Any]]:
    page = 1
    while True:
        response = client.get("/services", params={"page": page, "per_page": per_page})
        response.raise_for_status()
        body = response.json()
        yield from body["contents"]
        if body.get("last_page", True) or not body["contents"]:
            return
        page += 1


def terms_of(service: dict[str, Any]) -> list[str]:
    """Each taxonomy term's code (or name) once: a term may come in more than one taxonomy."""
    codes = (
        attribute["taxonomy_term"].get("term") or attribute["taxonomy_term"]["name"]
        for attribute in service.get("attributes", [])
        if "taxonomy_term" in attribute
    )
    return list(dict.fromkeys(codes))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--base-url", default="http://127.0.0.1:8002/oruk", help="the feed's base URL")
    parser.add_argument("--per-page", type=int, default=50)
    args = parser.parse_args()
    with httpx.Client(base_url=args.base_url.rstrip("/"), timeout=10) as client:
        about = client.get("/")
        about.raise_for_status()
        print(f"feed: {json.dumps(about.json())}")
        listed = list(services(client, per_page=args.per_page))
        for service in listed:
            organisation = (service.get("organization") or {}).get("name", "?")
            ages = f"{service.get('minimum_age', '?')}-{service.get('maximum_age', '?')}"
            print(f"{service['id']}  {service['name']}  ({organisation}; ages {ages})")
        print(f"{len(listed)} services")
        if listed:
            full = client.get(f"/services/{listed[0]['id']}")
            full.raise_for_status()
            service = full.json()
            print(f"\n{service['name']}: {service.get('description', '')}")
            print(f"  terms: {', '.join(terms_of(service))}")
            print(
                f"  areas: {', '.join(a['name'] for a in service.get('service_areas', [])) or 'the whole area'}"
            )


if __name__ == "__main__":
    main()
