"""Schemathesis over each service's OpenAPI, against the running platform: no 5xx, no schema violation.

Generated requests carry valid tokens for several roles, so they get past authentication
into the handlers; every response must be a documented shape and never a server error.
Adding a service is one `FUZZED` entry.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, NamedTuple, cast

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import response_schema_conformance

from tests.e2e.running import RunningPlatform, running_platform

MIN_REQUESTS = 1_000  # per service (issue 8)


PRACTICE = [
    ("practitioner", "school-ashley-primary"),
    ("agency", "la-inclusion-service"),
    ("admin", "la-digital"),
]
INSIGHT = [("analyst", "la-insight"), ("ops", "la-digital"), ("admin", "la-digital")]


class Fuzzed(NamedTuple):
    service: str
    min_operations: int  # so an API that stops publishing its operations fails the test
    examples: int  # per operation and role; raise locally for a deeper run
    callers: list[tuple[str, str]]  # (role, organisation) of the tokens `signpost run` prints


FUZZED = [
    Fuzzed("intake", min_operations=14, examples=40, callers=PRACTICE),
    Fuzzed("routing", min_operations=10, examples=50, callers=PRACTICE),
    Fuzzed("analytics", min_operations=15, examples=25, callers=INSIGHT),
]


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningPlatform]:
    with running_platform(
        tmp_path_factory.mktemp("fuzz"),
        # A generous write limit: the fuzzer is one caller sending thousands of requests.
        rate_limit_writes_per_minute="100000",
        # Generated webhook and ORUK feed URLs must never make a service contact another machine.
        outbound_loopback_only="true",
    ) as running:
        yield running


@pytest.mark.parametrize("fuzzed", FUZZED, ids=[f.service for f in FUZZED])
def test_no_server_error_and_no_schema_violation(platform: RunningPlatform, fuzzed: Fuzzed) -> None:
    schema = schemathesis.openapi.from_url(platform.url(fuzzed.service, "/openapi.json"))
    bearers = [f"Bearer {platform.demo_token(role, organisation)}" for role, organisation in fuzzed.callers]
    # Every operation is relied on to load: an Err result fails the test on `.ok()`.
    operations = [
        cast(Ok[schemathesis.APIOperation[Any, Any, Any, Any]], result).ok()
        for result in schema.get_all_operations()
    ]
    assert len(operations) >= fuzzed.min_operations
    calls = 0
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=fuzzed.examples,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
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
    print(f"{fuzzed.service}: {calls} generated requests over {len(operations)} operations")
    assert calls >= MIN_REQUESTS
    assert "Traceback" not in platform.lines()
