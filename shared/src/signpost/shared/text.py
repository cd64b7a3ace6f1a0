"""Free text callers send, refused when it holds characters no person types.

Control characters (NUL included) and the bidirectional overrides that can make text read
differently from what it holds ("Trojan Source") are refused with a message naming the
character and where it is; anything else (any script, right-to-left letters, zero-width
joiners, combining marks, emoji) is stored as sent and returned unchanged. Lone surrogates
(which JSON can carry as `\ud800` but no database can store) are refused too: pydantic lets
them through a plain `str`. Lengths stay with each field.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated

from pydantic import AfterValidator, StringConstraints, ValidationInfo

# Validation context for reading back a stored document: what an older release accepted is
# read as it is, not refused (`Model.model_validate(document, context=STORED)`).
STORED = {"stored": True}


def is_stored(info: ValidationInfo) -> bool:
    return isinstance(info.context, dict) and info.context.get("stored") is True


# C0 controls, DEL and C1 controls; multi-line text keeps tab, line feed and carriage return.
_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_CONTROLS_BUT_LAYOUT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_BIDI_CONTROLS = re.compile(r"[\u202a-\u202e\u2066-\u2069]")
_SURROGATES = re.compile(r"[\ud800-\udfff]")


def has_lone_surrogate(value: str) -> bool:
    return _SURROGATES.search(value) is not None


def _refuse(value: str, *, controls: re.Pattern[str]) -> str:
    if found := _SURROGATES.search(value):
        raise ValueError(f"holds a lone surrogate at position {found.start()}: not valid Unicode")
    if found := controls.search(value) or _BIDI_CONTROLS.search(value):
        character = found.group()
        name = unicodedata.name(character, "a control character")
        raise ValueError(f"holds U+{ord(character):04X} ({name}) at position {found.start()}; remove it")
    return value


def line(value: str, info: ValidationInfo) -> str:
    """One line of text: no control characters at all."""
    return value if is_stored(info) else _refuse(value, controls=_CONTROLS)


def text(value: str, info: ValidationInfo) -> str:
    """Text that may run over several lines: tabs and line breaks allowed, other controls not."""
    return value if is_stored(info) else _refuse(value, controls=_CONTROLS_BUT_LAYOUT)


# What a child's direct identifier looks like when it is typed into a field that travels in events
# (where it would reach every partner and stay on the log). A name cannot be told from a ward's, so
# this catches numbers, dates and postcodes only.
_LOOKS_PERSONAL = (
    (re.compile(r"(?<![A-Za-z])[A-Za-z][0-9]{11}[0-9A-Za-z](?![0-9A-Za-z])"), "a unique pupil number"),
    (re.compile(r"(?<![0-9])[0-9]{3}[ -]?[0-9]{3}[ -]?[0-9]{4}(?![0-9])"), "an NHS number"),
    (
        re.compile(
            r"(?<![0-9])(?:[0-9]{1,2}[./-][0-9]{1,2}[./-][0-9]{2,4}|[0-9]{4}-[0-9]{1,2}-[0-9]{1,2})(?![0-9])"
        ),
        "a date",
    ),
    (
        re.compile(
            r"(?<![A-Za-z0-9])(?:GIR ?0AA|[A-Z]{1,2}[0-9][A-Z0-9]? ?[0-9][A-Z]{2})(?![A-Za-z0-9])", re.I
        ),
        "a postcode",
    ),
)


def looks_personal(value: str) -> str | None:
    """What direct identifier `value` seems to hold (e.g. "a date"), or None."""
    return next((what for pattern, what in _LOOKS_PERSONAL if pattern.search(value)), None)


def no_direct_identifier(value: str, info: ValidationInfo) -> str:
    """A value that goes into events: refused when it looks like a child's identifier."""
    if not is_stored(info) and (what := looks_personal(value)):
        raise ValueError(
            f"looks like {what}; events carry this field to every partner, so it must not identify a child"
        )
    return value


# Combine with a length: `Annotated[SingleLine, Field(min_length=1, max_length=100)]`.
def in_words(pattern: str, rule: str) -> AfterValidator:
    """A pattern check refused as `must be <rule>`, where pydantic's own prints the regular expression.
    Give the schema the pattern too (`json_schema_extra={"pattern": pattern}`) for the OpenAPI document."""
    compiled = re.compile(pattern)

    def check(value: str | None) -> str | None:
        if value is not None and not compiled.fullmatch(value):
            raise ValueError(f"must be {rule}")
        return value

    return AfterValidator(check)


SingleLine = Annotated[str, AfterValidator(line)]
MultiLine = Annotated[str, AfterValidator(text)]

# A locality or setting id, as a referral names it and events carry it (a ward may be
# "Lockleaze/Frome Vale"): one rule, so analytics' settings register takes every setting id intake
# stores. It starts and ends with no space: intake strips the ids it is sent, so "URN100003 " in the
# register's path would never match a referral's.
Identifier = Annotated[
    str,
    StringConstraints(
        min_length=1, max_length=64, pattern=r"^[A-Za-z0-9](?:[A-Za-z0-9 ._/-]*[A-Za-z0-9._/-])?$"
    ),
    AfterValidator(no_direct_identifier),
]
