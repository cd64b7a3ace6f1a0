"""The correlation id a caller may supply, and what a failing request leaves on the log."""

import subprocess
import sys
from pathlib import Path

import pytest
from signpost.shared.logging import is_safe_id

from tests.unit.shared import failing_service

REPO = Path(__file__).resolve().parents[3]


def test_a_correlation_id_is_taken_only_when_it_cannot_identify_anyone() -> None:
    # Ids whose hex holds a run of ten decimal digits are ids all the same.
    for taken in ("0f8c1d2e-9434-4765-9919-123456789012", "4bf92f3577b34da6a3ce929d0e0e4736"):
        assert is_safe_id(taken) and is_safe_id(taken.upper())
    for case_reference in ("NHS-9434765919", "9434765919", "2018-03-14", "smith_jane", "case:1234", "abc"):
        assert not is_safe_id(case_reference)


@pytest.mark.parametrize("log_format", ["json", "console"])
def test_a_failing_request_is_logged_with_its_traceback_and_without_its_data(log_format: str) -> None:
    logged = subprocess.run(
        [sys.executable, "-m", "tests.unit.shared.failing_service", log_format],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stderr
    assert "Traceback (most recent call last)" in logged and failing_service.FAILURE in logged
    assert logged.count(f"BulkWriteError: batch op errors occurred; 121 {failing_service.REFUSED}") == 2
    assert failing_service.CHILD_NAME not in logged
    assert failing_service.BEARER_TOKEN not in logged


def test_http_clients_do_not_log_each_request_even_at_debug() -> None:
    # In a fresh interpreter: logging is configured once per process.
    script = (
        "import logging; from signpost.shared.logging import configure_logging; "
        "from signpost.shared.settings import Settings; "
        "configure_logging(Settings(_env_file=None, log_level='DEBUG', log_format='json'), service='x'); "
        "logging.getLogger('httpx').info('HTTP Request: POST https://partner.example/hook'); "
        "logging.getLogger('httpx').warning('kept')"
    )
    logged = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60, check=True
    ).stderr
    assert "kept" in logged and "partner.example" not in logged
