"""Development tokens, signed by the local development issuer (never in production)."""

from __future__ import annotations

import re
from pathlib import Path

from signpost.shared.auth.principal import Principal, Role
from signpost.shared.auth.tokens import NotASigningKey, issue_dev_token
from signpost.shared.settings import Settings

from signpost.platform.datadir import PathUnusable

# One caller per role, from organisations the starter catalogue knows.
DEMO_CALLERS: tuple[tuple[Role, str, str], ...] = (
    (Role.PRACTITIONER, "school-ashley-primary", "Ashley Primary SENCO"),
    (Role.AGENCY, "la-inclusion-service", "Inclusion service duty officer"),
    (Role.AGENCY, "nhs-community-slt", "Community SLT triage"),
    (Role.ANALYST, "la-insight", "Insight analyst"),
    (Role.OPS, "la-digital", "Platform operator"),
    (Role.ADMIN, "la-digital", "Platform administrator"),
)


class DevTokensRefused(ValueError):
    pass


class SigningKeyUnusable(Exception):
    """The development signing key's file holds something else; the message names the setting."""


def dev_token(
    settings: Settings, *, role: Role, organisation: str, name: str | None = None, subject: str | None = None
) -> str:
    """Raises DevTokensRefused outside development, pydantic's ValidationError for claims no service accepts,
    PathUnusable when the signing key cannot be kept where the settings say, SigningKeyUnusable when the
    file there is no signing key."""
    if settings.environment == "production" or settings.auth_issuer:
        raise DevTokensRefused(
            "development tokens are refused here: with SIGNPOST_AUTH_ISSUER set (or in production) "
            "tokens come from the area's identity provider"
        )
    # Checked as every service will read the claims back: a token they would refuse is never signed.
    caller = Principal(
        subject=subject or _slug(name or f"{role.value}-{organisation}"),
        name=name,
        role=role,
        organisation=organisation,
        tenant=settings.tenant,
    )
    try:
        return issue_dev_token(
            key_file=settings.dev_key_file,
            subject=caller.subject,
            role=caller.role,
            organisation=caller.organisation,
            tenant=caller.tenant,
            name=caller.name,
            audience=settings.auth_audience,
        )
    except OSError as exc:  # the key cannot be created or read where the settings put it
        raise PathUnusable(*_key_setting(settings), exc) from None
    except NotASigningKey as exc:
        variable, path = _key_setting(settings)
        where = "" if settings.auth_dev_key_file else f"{settings.dev_key_file} is "
        raise SigningKeyUnusable(f"cannot use {variable}={path}: {where}{exc}") from None


def _key_setting(settings: Settings) -> tuple[str, Path]:
    """The variable, and its value, that put the development signing key where it is."""
    if settings.auth_dev_key_file:
        return "SIGNPOST_AUTH_DEV_KEY_FILE", settings.auth_dev_key_file
    return "SIGNPOST_DATA_DIR", settings.data_dir


def demo_tokens(settings: Settings) -> list[tuple[Role, str, str]]:
    """(role, organisation, token) for each demo caller."""
    return [
        (role, org, dev_token(settings, role=role, organisation=org, name=name))
        for role, org, name in DEMO_CALLERS
    ]


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "user"
