"""Schemathesis over each service's OpenAPI, against the running platform: no 5xx, no schema violation.

Each operation gets requests that fit its schema (positive) and requests that do not (negative).
Every answer must be documented: its status code, its content type and its body's schema; a
negative request must be refused with a 4xx. Each generated request is sent once, with a valid
token of one of several roles (drawn with the request), so it gets past authentication into the
handlers. The count is of distinct requests, whichever token carried them.
Adding a service is one `FUZZED` entry.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from typing import Any, NamedTuple, cast

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.config import ChecksConfig
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from tests.e2e.running import RunningPlatform, running_platform

# Distinct generated requests per service (issue 8) that fit the schema, and that do not.
MIN_REQUESTS = {GenerationMode.POSITIVE: 1_000, GenerationMode.NEGATIVE: 500}
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,  # a negative request answered anything but a 4xx fails
]


PRACTICE = [
    ("practitioner", "school-ashley-primary"),
    ("agency", "la-inclusion-service"),
    ("admin", "la-digital"),
]
INSIGHT = [("analyst", "la-insight"), ("ops", "la-digital"), ("admin", "la-digital")]


class Fuzzed(NamedTuple):
    service: str
    min_operations: int  # so an API that stops publishing its operations fails the test
    # Requests aimed at per generation mode, spread over the operations that take input; some come
    # out the same (an operation with a few enums has few distinct requests), so aim above the minimum.
    requests: dict[GenerationMode, int]
    callers: list[tuple[str, str]]  # (role, organisation) of the tokens `signpost run` prints


FUZZED = [
    Fuzzed("intake", 14, {GenerationMode.POSITIVE: 1_500, GenerationMode.NEGATIVE: 1_300}, PRACTICE),
    Fuzzed("routing", 10, {GenerationMode.POSITIVE: 1_500, GenerationMode.NEGATIVE: 1_700}, PRACTICE),
    Fuzzed("analytics", 15, {GenerationMode.POSITIVE: 2_000, GenerationMode.NEGATIVE: 1_500}, INSIGHT),
]
Operation = schemathesis.APIOperation[Any, Any, Any, Any]
FEW = 5  # examples for an operation that takes no input: there is little to vary


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningPlatform]:
    with running_platform(
        tmp_path_factory.mktemp("fuzz"),
        # The fuzzer is one caller per role sending thousands of writes: no generated request may
        # be throttled (the test fails on a 429 rather than count it as a pass).
        rate_limit_writes_per_minute="100000",
        # Generated webhook and ORUK feed URLs must never make a service contact another machine.
        outbound_loopback_only="true",
    ) as running:
        yield running


def takes_input(operation: Operation) -> bool:
    return bool(list(operation.iter_parameters())) or bool(operation.body)


class Sent(NamedTuple):
    distinct: set[str]  # what tells two generated requests apart, whoever sent them
    statuses: list[int]


def fuzz(operation: Operation, mode: GenerationMode, examples: int, bearers: list[str], sent: Sent) -> None:
    # One strategy per token: the Authorization header is given, never generated nor negated.
    generated = st.one_of(
        *[operation.as_strategy(generation_mode=mode, headers={"Authorization": b}) for b in bearers]
    )

    @given(case=generated)
    @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def check(case: Any) -> None:
        headers = {name: value for name, value in (case.headers or {}).items() if name != "Authorization"}
        sent.distinct.add(
            repr(
                (case.operation.label, case.path_parameters, case.query, headers, case.body, case.media_type)
            )
        )
        sent.statuses.append(case.call_and_validate(session=session, checks=CHECKS).status_code)

    with requests.Session() as session:  # one connection kept open, not one per request
        check()


@pytest.mark.parametrize("fuzzed", FUZZED, ids=[f.service for f in FUZZED])
def test_no_server_error_and_no_schema_violation(platform: RunningPlatform, fuzzed: Fuzzed) -> None:
    schema = schemathesis.openapi.from_url(platform.url(fuzzed.service, "/openapi.json"))
    schema.config.checks = ChecksConfig.from_dict({"negative_data_rejection": {"expected-statuses": ["4XX"]}})
    bearers = [f"Bearer {platform.demo_token(role, organisation)}" for role, organisation in fuzzed.callers]
    # Every operation is relied on to load: an Err result fails the test on `.ok()`.
    operations = [cast(Ok[Operation], result).ok() for result in schema.get_all_operations()]
    assert len(operations) >= fuzzed.min_operations
    with_input = [operation for operation in operations if takes_input(operation)]
    sent = {mode: Sent(set(), []) for mode in GenerationMode}
    anything_goes = []
    for mode in GenerationMode:
        started = time.monotonic()
        for operation in operations:
            if not takes_input(operation):
                if mode.is_positive:
                    fuzz(operation, mode, FEW, bearers, sent[mode])
                continue
            examples = math.ceil(fuzzed.requests[mode] / len(with_input))
            try:
                fuzz(operation, mode, examples, bearers, sent[mode])
            except Unsatisfiable:
                # Every input it takes accepts any value (the token is given): none can be wrong.
                assert mode.is_negative, operation.label
                anything_goes.append(operation.label)
        print(f"{fuzzed.service}: {mode.value} requests took {time.monotonic() - started:.0f} s")
    counts = {mode.value: len(sent[mode].distinct) for mode in GenerationMode}
    print(f"{fuzzed.service}: distinct generated requests {counts} over {len(operations)} operations")
    print(f"{fuzzed.service}: no invalid request possible for {anything_goes}")
    assert all(len(sent[mode].distinct) >= MIN_REQUESTS[mode] for mode in GenerationMode), counts
    throttled = sum(status == 429 for mode in GenerationMode for status in sent[mode].statuses)
    assert throttled == 0, f"{throttled} requests were rate limited: raise the test's limit"
    assert "Traceback" not in platform.lines()
