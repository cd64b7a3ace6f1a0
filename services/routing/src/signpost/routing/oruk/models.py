"""What routing keeps of an imported ORUK service beyond the provision, and the import report."""

from __future__ import annotations

import uuid

from pydantic import BaseModel, ConfigDict, Field, computed_field

# The ORUK details of imported provisions, keyed by provision id (the feed reads them back).
ORUK_DETAILS = "oruk_details"
_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:signpost:oruk")


def is_uuid(value: str) -> bool:
    try:
        return str(uuid.UUID(value)) == value.lower()
    except ValueError:
        return False


def feed_id(kind: str, key: str) -> str:
    """An ORUK id (the spec wants UUIDs): `key` itself when it is one, else a stable UUID derived from it."""
    return key if is_uuid(key) else str(uuid.uuid5(_NAMESPACE, f"{kind}:{key}"))


class TaxonomyTerm(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str = Field(description="A UUID: the source's id when it is one.")
    source_id: str | None = None
    name: str
    description: str
    taxonomy: str | None = None
    term: str | None = None
    term_uri: str | None = None


class Organisation(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str = Field(description="A UUID: the source's id when it is one.")
    source_id: str | None = None
    name: str
    description: str
    email: str | None = None
    website: str | None = None


class OrukDetails(BaseModel):
    """An imported service's ORUK fields that a provision does not hold."""

    model_config = ConfigDict(frozen=True)

    provision_id: str
    description: str | None = None
    url: str | None = None
    email: str | None = None
    organization: Organisation
    taxonomy_terms: list[TaxonomyTerm] = []
    source: str = Field(description="The feed URL, or 'document' for a posted feed.")

    def term_ids(self) -> list[str]:
        """Every id a client may filter on: ours and the source's."""
        return sorted(
            {term.id for term in self.taxonomy_terms}
            | {t.source_id for t in self.taxonomy_terms if t.source_id}
        )


class ImportedService(BaseModel):
    oruk_id: str
    name: str
    provision_id: str
    warnings: list[str] = Field(
        default=[], description="What was imported differently from the feed, and why."
    )


class SkippedService(BaseModel):
    oruk_id: str | None
    name: str | None
    reason: str


class ImportTotals(BaseModel):
    seen: int
    created: int
    updated: int
    unchanged: int
    skipped: int


class ImportReport(BaseModel):
    source: str = Field(description="The feed's base URL, or 'document'.")
    created: list[ImportedService] = []
    updated: list[ImportedService] = []
    unchanged: list[ImportedService] = []
    skipped: list[SkippedService] = []
    warnings: list[str] = Field(default=[], description="About the feed as a whole.")

    @computed_field  # type: ignore[prop-decorator]
    @property
    def totals(self) -> ImportTotals:
        return ImportTotals(
            seen=len(self.created) + len(self.updated) + len(self.unchanged) + len(self.skipped),
            created=len(self.created),
            updated=len(self.updated),
            unchanged=len(self.unchanged),
            skipped=len(self.skipped),
        )
