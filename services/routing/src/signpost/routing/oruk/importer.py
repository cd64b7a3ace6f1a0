"""Importing ORUK services into the Local Offer through the catalogue's own change functions.

Each created, updated or retired provision is written with its `provision.changed.v1`
event (and its ORUK details) in one transaction; an unchanged service writes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

from signpost.routing.catalogue.models import PROVISIONS, Provision
from signpost.routing.catalogue.repository import from_document
from signpost.routing.catalogue.service import (
    Change,
    NoSuchProvision,
    ProvisionChange,
    ProvisionExists,
    save_provisions,
)
from signpost.routing.oruk.fetch import Unfetched
from signpost.routing.oruk.mapping import MappedService, Unmappable, map_service, service_label
from signpost.routing.oruk.models import (
    ORUK_DETAILS,
    ImportedService,
    ImportReport,
    OrukDetails,
    SkippedService,
)
from signpost.routing.oruk.taxonomy import TaxonomyMap
from signpost.shared.auth.principal import Principal
from signpost.shared.errors import describe_error
from signpost.shared.logging import get_logger
from signpost.shared.mongo import Document, Session
from signpost.shared.service import Runtime

log = get_logger(__name__)

PREFETCH = 500  # stored provisions read per query, to tell created, updated and unchanged apart
WRITE_BATCH = 50  # changes per transaction: each provision still commits with its own event


class ImportInterrupted(Exception):
    """Writing stopped part-way (e.g. the database went away); `report` says what was written."""

    def __init__(self, report: ImportReport, error: Exception) -> None:
        super().__init__(f"the import stopped part-way: {type(error).__name__}: {error}")
        self.report = report


def details_document(details: OrukDetails) -> Document:
    document = details.model_dump(mode="json")
    document["_id"] = document.pop("provision_id")
    document["term_ids"] = details.term_ids()
    return document


def details_from_document(document: Document) -> OrukDetails:
    fields = {key: value for key, value in document.items() if key in OrukDetails.model_fields}
    return OrukDetails(provision_id=document["_id"], **fields)


async def import_services(
    *,
    runtime: Runtime,
    principal: Principal,
    services: Sequence[object | Unfetched],
    taxonomy: TaxonomyMap,
    source: str,
    warnings: Sequence[str] = (),
) -> ImportReport:
    report = ImportReport(source=source, warnings=list(warnings))
    mapped_services: dict[str, MappedService] = {}
    for service in services:
        if isinstance(service, Unfetched):
            report.skipped.append(
                SkippedService(oruk_id=service.oruk_id, name=service.name, reason=service.reason)
            )
            continue
        oruk_id, name = service_label(service)
        try:
            mapped = map_service(service, taxonomy=taxonomy, source=source, tenant=runtime.settings.tenant)
        except Unmappable as exc:
            report.skipped.append(SkippedService(oruk_id=oruk_id, name=name, reason=str(exc)))
            continue
        if mapped.provision.id in mapped_services:
            report.skipped.append(
                SkippedService(oruk_id=oruk_id, name=name, reason="the feed lists this id more than once")
            )
            continue
        mapped_services[mapped.provision.id] = mapped

    try:
        for chunk in _chunks(list(mapped_services.values()), PREFETCH):
            ids = [mapped.provision.id for mapped in chunk]
            stored = await _by_id(runtime, PROVISIONS, ids)
            stored_details = await _by_id(runtime, ORUK_DETAILS, ids)
            pending: list[_Pending] = []
            for mapped in chunk:
                change = await _change_for(
                    runtime=runtime,
                    mapped=mapped,
                    stored=stored.get(mapped.provision.id),
                    stored_details=stored_details.get(mapped.provision.id),
                    report=report,
                )
                if change is not None:
                    pending.append(change)
                if len(pending) == WRITE_BATCH:
                    await _write(runtime=runtime, principal=principal, pending=pending, report=report)
                    pending = []
            await _write(runtime=runtime, principal=principal, pending=pending, report=report)
    except Exception as exc:
        log.warning("catalogue import interrupted", error=describe_error(exc), **report.totals.model_dump())
        raise ImportInterrupted(report, exc) from exc
    log.info(
        "catalogue imported",
        source_kind="url" if source != "document" else "document",
        **report.totals.model_dump(),
    )
    return report


def _chunks(items: list[MappedService], size: int) -> list[list[MappedService]]:
    return [items[start : start + size] for start in range(0, len(items), size)]


async def _by_id(runtime: Runtime, collection: str, ids: list[str]) -> dict[str, Document]:
    return {
        document["_id"]: document async for document in runtime.db[collection].find({"_id": {"$in": ids}})
    }


@dataclass(frozen=True)
class _Pending:
    change: ProvisionChange
    entry: ImportedService


async def _change_for(
    *,
    runtime: Runtime,
    mapped: MappedService,
    stored: Document | None,
    stored_details: Document | None,
    report: ImportReport,
) -> _Pending | None:
    """The change an imported service makes, or None (reported unchanged) when it makes none."""
    provision_id = mapped.provision.id
    current = from_document(stored) if stored is not None else None
    keep_live_capacity = partial(_keep_live_capacity, mapped.provision)
    provision = keep_live_capacity(current)
    entry = ImportedService(
        oruk_id=provision_id, name=provision.name, provision_id=provision_id, warnings=mapped.warnings
    )
    details = details_document(mapped.details)
    if current == provision:
        if stored_details != details:  # only the description or source's terms changed: no provision event
            await runtime.db[ORUK_DETAILS].replace_one({"_id": provision_id}, details, upsert=True)
        report.unchanged.append(entry)
        return None

    async def write_details(session: Session) -> None:
        await runtime.db[ORUK_DETAILS].replace_one(
            {"_id": provision_id}, details, upsert=True, session=session
        )

    change: Change = (
        "created" if current is None else "retired" if current.active and not provision.active else "updated"
    )
    # Written from the provision as its transaction reads it: routing may hold a place after `stored` was read.
    return _Pending(ProvisionChange(provision_id, change, keep_live_capacity, also=write_details), entry)


async def _write(
    *, runtime: Runtime, principal: Principal, pending: list[_Pending], report: ImportReport
) -> None:
    """One transaction for the batch; if someone else changed one of them meanwhile, one at a time."""
    if not pending:
        return
    try:
        await save_provisions(runtime=runtime, changes=[p.change for p in pending], principal=principal)
        written = pending
    except (ProvisionExists, NoSuchProvision):
        written = []
        for item in pending:
            try:
                await save_provisions(runtime=runtime, changes=[item.change], principal=principal)
                written.append(item)
            except (ProvisionExists, NoSuchProvision):
                report.skipped.append(
                    SkippedService(
                        oruk_id=item.entry.oruk_id,
                        name=item.entry.name,
                        reason="changed by someone else during the import; import again",
                    )
                )
    for item in written:
        (report.created if item.change.change == "created" else report.updated).append(item.entry)


def _keep_live_capacity(imported: Provision, current: Provision | None) -> Provision:
    """Routing holds places as offers are accepted, and gives them back, stamping the capacity's
    `updated` each time; a feed figure that is not newer than that does not undo it.

    Not an admin PUT's rule (`catalogue.service.save_versioned`, which refuses `updated` older than
    the stored one), on purpose: nobody is there to re-read, so a stale figure is not refused but
    the stored capacity kept, and the rest of the record imported. An equal `updated` keeps it too:
    it is the figure already imported (a hold since would have stamped a later time). A different
    `maximum` is the publisher resizing the provision, which routing never
    does, so the feed's figure is taken whatever its time."""
    if current is None or current.capacity is None or imported.capacity is None:
        return imported
    theirs, ours = imported.capacity, current.capacity
    if theirs.updated and ours.updated and theirs.maximum == ours.maximum and theirs.updated <= ours.updated:
        return imported.model_copy(update={"capacity": ours})
    return imported
