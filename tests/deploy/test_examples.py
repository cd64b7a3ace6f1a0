"""The committed example files' placeholders: production refuses each one, naming its variable."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest
from pydantic import ValidationError
from signpost.shared.settings import Settings

from tests.deploy.manifests import BASE, FILLED_IN, PRODUCTION, ROOT, env_file, load_docs, named

EXAMPLE_SECRETS = load_docs(BASE / "secret.example.yaml")
EXAMPLES: dict[str, dict[str, str]] = {
    ".env.example": env_file(ROOT / ".env.example"),
    "secrets.env.example": env_file(PRODUCTION / "secrets.env.example"),
    "secret.example.yaml": named(EXAMPLE_SECRETS, "Secret", "signpost-secrets")["stringData"],
}
# The signpost MongoDB user's password reaches Signpost inside SIGNPOST_MONGODB_URL.
EXAMPLE_MONGODB_PASSWORDS = {
    ".env.example": EXAMPLES[".env.example"]["SIGNPOST_MONGODB_PASSWORD"],
    "mongodb.env.example": env_file(PRODUCTION / "mongodb.env.example")["password"],
    "secret.example.yaml": named(EXAMPLE_SECRETS, "Secret", "signpost-mongodb-password")["stringData"][
        "password"
    ],
}
# Real values an area may keep, not placeholders.
KEPT = {"SIGNPOST_TENANT", "SIGNPOST_FRONT_DOOR_NAME", "SIGNPOST_MONGODB_PASSWORD"}
PLACEHOLDERS = [
    (example, name)
    for example, values in EXAMPLES.items()
    for name in values
    if name.startswith("SIGNPOST_") and name not in KEPT
]


def production(
    variables: dict[str, str], *, mongodb_password: str = FILLED_IN["SIGNPOST_MONGODB_PASSWORD"]
) -> Settings:
    filled = {name: value for name, value in FILLED_IN.items() if name != "SIGNPOST_MONGODB_PASSWORD"}
    values: dict[str, Any] = {
        name.removeprefix("SIGNPOST_").lower(): value for name, value in {**filled, **variables}.items()
    }
    return Settings(
        _env_file=None,
        environment="production",
        kafka_bootstrap="kafka:9092",
        topic_replication_factor=3,
        mongodb_url=f"mongodb://signpost:{quote(mongodb_password, safe='')}@mongodb:27017/?replicaSet=rs0",
        **values,
    )


def test_the_examples_filled_in_are_accepted() -> None:
    production({})  # so each refusal below is the placeholder's doing


def test_every_example_has_its_placeholders_checked() -> None:
    checked = {name for _, name in PLACEHOLDERS}
    assert {"SIGNPOST_PSEUDONYM_KEY", "SIGNPOST_FRONT_DOOR_PHONE", "SIGNPOST_AUTH_ISSUER"} <= checked
    assert {example for example, _ in PLACEHOLDERS} == set(EXAMPLES)


@pytest.mark.parametrize(("example", "name"), PLACEHOLDERS)
def test_production_refuses_each_placeholder_of_the_committed_examples(example: str, name: str) -> None:
    with pytest.raises(ValidationError) as caught:
        production({name: EXAMPLES[example][name]})
    assert name in str(caught.value)


@pytest.mark.parametrize("example", EXAMPLE_MONGODB_PASSWORDS)
def test_production_refuses_the_examples_mongodb_password(example: str) -> None:
    with pytest.raises(ValidationError, match="SIGNPOST_MONGODB_URL's password still holds a placeholder"):
        production({}, mongodb_password=EXAMPLE_MONGODB_PASSWORDS[example])
