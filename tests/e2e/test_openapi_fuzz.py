"""Schemathesis over every service's OpenAPI, against the running platform: no 5xx, no schema violation.

Generated requests carry valid tokens for several roles, so they get past authentication
into the handlers; every response must be a documented shape and never a server error.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from tests.e2e.running import RunningPlatform, running_platform

FUZZ_EXAMPLES = 40  # per operation and role; raise locally for a deeper run


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningPlatform]:
    # A generous write limit: the fuzzer is one caller sending thousands of requests.
    with running_platform(tmp_path_factory.mktemp("fuzz"), rate_limit_writes_per_minute="100000") as running:
        yield running


# Who calls each service, and how many operations its API has at least (so a broken
# OpenAPI document, with nothing to fuzz, fails rather than passes).
CALLERS = {
    "intake": [
        ("practitioner", "school-ashley-primary"),
        ("agency", "la-inclusion-service"),
        ("admin", "la-digital"),
    ],
    "routing": [("practitioner", "school-ashley-primary"), ("admin", "la-digital")],
    "analytics": [("analyst", "la-insight"), ("ops", "la-digital")],
}
MIN_OPERATIONS = {"intake": 14, "routing": 7, "analytics": 3}


@pytest.mark.parametrize("service", list(CALLERS))
def test_no_server_error_and_no_schema_violation(platform: RunningPlatform, service: str) -> None:
    schema = schemathesis.openapi.from_url(platform.url(service, "/openapi.json"))
    bearers = [f"Bearer {platform.demo_token(role, organisation)}" for role, organisation in CALLERS[service]]
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= MIN_OPERATIONS[service]
    calls = 0
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None
        )
        def check(case: Any) -> None:
            nonlocal calls
            for bearer in bearers:  # each generated request, as each kind of caller
                calls += 1
                case.call_and_validate(
                    headers={"Authorization": bearer},
                    checks=[not_a_server_error, response_schema_conformance],
                )

        check()
    print(f"{service}: {calls} generated requests over {len(operations)} operations")
    assert "Traceback" not in platform.lines()
