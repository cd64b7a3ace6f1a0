"""The pseudonymous child reference: links a child's referrals without identifiers leaving intake."""

from __future__ import annotations

import hashlib
import hmac
import unicodedata

from pydantic import SecretStr
from signpost.intake.referrals.models import ChildDetails


def child_reference(*, key: SecretStr, tenant: str, child: ChildDetails) -> str:
    """A keyed hash (HMAC-SHA256) of the child's most stable identifier, per local area.

    The NHS number when given; otherwise the normalised name and date of birth. Without
    the area's key nobody can recompute it from a name, and areas' references never match.
    """
    if child.nhs_number:
        stable = f"nhs:{child.nhs_number}"
    else:
        name = f"{_fold(child.given_name)}|{_fold(child.family_name)}"
        stable = f"person:{name}|{child.date_of_birth.isoformat()}"
    digest = hmac.new(key.get_secret_value().encode(), f"{tenant}\x1f{stable}".encode(), hashlib.sha256)
    return f"cr_{digest.hexdigest()[:32]}"


def _fold(name: str) -> str:
    # "Zoë  O'Neill" and "zoe o'neill" are the same child's name as typed by two people.
    decomposed = unicodedata.normalize("NFKD", name)
    letters = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(letters.casefold().split())
