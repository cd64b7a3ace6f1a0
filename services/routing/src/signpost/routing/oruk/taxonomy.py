"""The configurable map from Open Referral UK taxonomy terms to Signpost's SEND vocabulary."""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from signpost.routing.catalogue.models import DeliveryMode
from signpost.shared.vocabulary import BroadArea, LevelOfNeed, NeedCode, Sector

DEFAULT_MAP = "taxonomy_map.json"


class TermRule(BaseModel):
    """What one taxonomy term says about a service; every part is optional."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    need_codes: tuple[NeedCode, ...] = ()
    broad_areas: tuple[BroadArea, ...] = ()
    sector: Sector | None = None
    levels_of_need: tuple[LevelOfNeed, ...] = ()
    delivery_mode: DeliveryMode | None = None


class TaxonomyMap(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    about: str = ""
    default_sector: Sector | None = Field(
        default=None, description="For services no term or organisation identifier places; unset: skipped."
    )
    default_levels_of_need: tuple[LevelOfNeed, ...] = Field(
        default=(LevelOfNeed.EARLY_HELP, LevelOfNeed.TARGETED), min_length=1
    )
    terms: dict[str, TermRule] = Field(description="Keyed by a term's id, `term` or `name`, any case.")
    organization_identifier_schemes: dict[str, Sector] = Field(
        default={},
        description="org-id.guide schemes (e.g. GB-NHS) that say which sector an organisation is in.",
    )
    service_areas: dict[str, str] = Field(
        default={}, description="Service area names to locality names; '*' means the whole local area."
    )
    organisations: dict[str, str] = Field(
        default={}, description="ORUK organization ids to Signpost organisation ids (agencies' `org` claim)."
    )

    @field_validator("terms", "service_areas", "organisations", "organization_identifier_schemes")
    @classmethod
    def _keys_ignore_case(cls, value: dict[str, Any]) -> dict[str, Any]:
        return {key.strip().casefold(): rule for key, rule in value.items()}

    def rule_for(self, *labels: object) -> TermRule | None:
        """The rule of the first label (a term's id, code or name) the map knows."""
        for label in labels:
            if isinstance(label, str | int) and (rule := self.terms.get(str(label).strip().casefold())):
                return rule
        return None


class TaxonomyMapError(ValueError):
    pass


@lru_cache(maxsize=4)
def load_taxonomy_map(path: Path | None) -> TaxonomyMap:
    """The map at `path` (JSON, or YAML by its suffix), or the default shipped with routing."""
    if path is None:
        text = resources.files(__package__).joinpath(DEFAULT_MAP).read_text(encoding="utf-8")
        return TaxonomyMap.model_validate_json(text)
    where = f"SIGNPOST_ORUK_TAXONOMY_MAP ({path})"
    try:
        text = path.read_text(encoding="utf-8")
        raw = yaml.safe_load(text) if path.suffix.lower() in {".yaml", ".yml"} else json.loads(text)
    except OSError as exc:
        raise TaxonomyMapError(f"{where}: cannot read it: {exc.strerror or exc}") from None
    except (ValueError, yaml.YAMLError) as exc:
        raise TaxonomyMapError(f"{where}: not valid {path.suffix.lstrip('.') or 'JSON'}: {exc}") from None
    try:
        return TaxonomyMap.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or 'the file'}: {error['msg']}"
            for error in exc.errors()
        )
        raise TaxonomyMapError(f"{where}: {problems}") from None
