import re

import pytest
from pydantic import TypeAdapter, ValidationError
from signpost.shared.text import STORED, Identifier, MultiLine, SingleLine, has_lone_surrogate, looks_personal

single_line = TypeAdapter(SingleLine)
multi_line = TypeAdapter(MultiLine)
identifier = TypeAdapter(Identifier)


@pytest.mark.parametrize(
    "value",
    ["مريم כהן", "Amy\u200bJo\u200dnes", "Zo\u0308e\u0301", "Amy 👩‍👧‍👦", "$where", "a.b.$ne", ""],
)
def test_any_script_and_joiners_marks_and_emoji_are_kept_as_sent(value: str) -> None:
    assert single_line.validate_python(value) == value
    assert multi_line.validate_python(value) == value


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("Amy\x00Jones", "U+0000 (a control character) at position 3"),
        ("Amy\x1b[31m", "U+001B"),
        ("Amy\x85", "U+0085"),
        ("Amy\u202eSENOJ", "U+202E (RIGHT-TO-LEFT OVERRIDE) at position 3"),
        ("Amy\u2066x", "U+2066"),
        ("Amy\ud800", "lone surrogate at position 3"),
    ],
)
def test_controls_overrides_and_lone_surrogates_are_refused_saying_where(value: str, words: str) -> None:
    for adapter in (single_line, multi_line):
        with pytest.raises(ValidationError, match=re.escape(words)):
            adapter.validate_python(value)


def test_only_multi_line_text_keeps_tabs_and_line_breaks() -> None:
    assert multi_line.validate_python("one\r\n\ttwo") == "one\r\n\ttwo"
    with pytest.raises(ValidationError, match=re.escape("U+000A")):
        single_line.validate_python("one\ntwo")


def test_lone_surrogates_are_found_but_pairs_are_not() -> None:
    assert has_lone_surrogate("a\udfffb") and not has_lone_surrogate("👩")


def test_text_read_back_from_storage_is_never_refused() -> None:
    stored = "written by an older release\x1b\u202e"
    assert single_line.validate_python(stored, context=STORED) == stored
    assert multi_line.validate_python(stored, context=STORED) == stored


@pytest.mark.parametrize(
    ("value", "what"),
    [
        ("943 476 5919", "an NHS number"),
        ("NHS:9434765919", "an NHS number"),
        ("A12345678901B", "a unique pupil number"),
        ("Zephyrine 14.03.2018", "a date"),
        ("2018-03-14", "a date"),
        ("17 Marigold Lane BS4 1QX", "a postcode"),
        ("bs41qx", "a postcode"),
    ],
)
def test_values_that_look_like_a_childs_identifier_are_named(value: str, what: str) -> None:
    assert looks_personal(value) == what


@pytest.mark.parametrize(
    "value",
    [
        "Ashley",
        "Lawrence Hill",
        "Hartcliffe/Withywood",
        "URN100001",
        "EY123456",
        "10012345",
        "E05001979",
        "Year 6",
    ],
)
def test_ward_names_and_setting_numbers_are_not_mistaken_for_identifiers(value: str) -> None:
    assert looks_personal(value) is None


@pytest.mark.parametrize("value", ["Ashley Primary", "Lockleaze/Frome Vale", "LA/0042", "URN100003", "A"])
def test_an_identifier_keeps_inner_spaces_and_slashes(value: str) -> None:
    assert identifier.validate_python(value) == value


@pytest.mark.parametrize("value", ["URN100003 ", " URN100003", "Ashley Primary  ", ""])
def test_an_identifier_with_a_space_at_either_end_is_refused(value: str) -> None:
    """Intake strips the ids it is sent: one ending in a space, registered, would match no referral."""
    with pytest.raises(ValidationError):
        identifier.validate_python(value)
