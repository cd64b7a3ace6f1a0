"""The provision model's bounds, and what an older release stored read back as it is."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from signpost.routing.catalogue.models import MAX_PLACES, Capacity, Contact
from signpost.shared.text import STORED


def test_capacity_is_at_most_a_million_places_but_a_stored_larger_one_is_read() -> None:
    assert Capacity(available=MAX_PLACES, maximum=MAX_PLACES).share_free == 1
    for fields in ({"available": 0, "maximum": MAX_PLACES + 1}, {"available": 10**20, "maximum": 12}):
        with pytest.raises(ValidationError, match="must be at most 1,000,000 places"):
            Capacity.model_validate(fields)
    stored = Capacity.model_validate({"available": 3, "maximum": 10**12}, context=STORED)
    assert stored.maximum == 10**12


def test_blank_contact_details_are_refused_but_ones_an_older_release_stored_are_read() -> None:
    with pytest.raises(ValidationError, match="must not be blank"):
        Contact.model_validate({"email": "  "})
    assert Contact.model_validate({"email": "  "}, context=STORED).email == "  "
    assert Contact.model_validate({"phone": " 0117 000 0000 "}).phone == " 0117 000 0000 "  # kept as sent
