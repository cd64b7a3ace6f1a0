"""The correlation id a caller may supply."""

import uuid

from signpost.shared.logging import is_safe_id


def test_a_correlation_id_is_taken_only_when_it_cannot_identify_anyone() -> None:
    assert is_safe_id(str(uuid.uuid4())) and is_safe_id("4bf92f3577b34da6a3ce929d0e0e4736")
    for case_reference in ("NHS-9434765919", "2018-03-14", "smith_jane", "case:1234", "abc"):
        assert not is_safe_id(case_reference)
