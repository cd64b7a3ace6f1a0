"""Changes to the Local Offer: each stored with its `provision.changed.v1` event in one transaction."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from signpost.routing.catalogue.models import PROVISIONS, Provision
from signpost.routing.catalogue.repository import from_document, stamp_change, to_document
from signpost.shared.auth.principal import Principal
from signpost.shared.events import ProvisionChangedV1, new_event
from signpost.shared.mongo import Session
from signpost.shared.outbox import stage_event
from signpost.shared.service import Runtime

SOURCE = "/signpost/routing/catalogue"


class ProvisionExists(Exception):
    pass


class NoSuchProvision(LookupError):
    pass


Change = Literal["created", "updated", "retired"]


async def provision_changed(
    *, runtime: Runtime, provision: Provision, change: Change, session: Session
) -> None:
    """Stage `provision.changed.v1` for a change the caller's transaction has just written to the
    provision's document, and count it as a new catalogue version (what routing's snapshots watch).

    Every write to a provision calls this, in the same transaction.
    """
    await stamp_change(runtime.db, provision_id=provision.id, session=session)
    event = new_event(
        ProvisionChangedV1(
            provision_id=provision.id,
            change=change,
            provision=provision.model_dump(mode="json"),
            changed_at=datetime.now(UTC),
        ),
        source=SOURCE,
        tenant=runtime.settings.tenant,
        subject=provision.id,
    )
    await stage_event(runtime.db, topic=runtime.topics.provisions, envelope=event, session=session)


@dataclass(frozen=True)
class ProvisionChange:
    provision: Provision
    change: Change
    also: Callable[[Session], Awaitable[None]] | None = None  # writes that belong with this change


async def save_provision(
    *, runtime: Runtime, provision: Provision, change: Change, principal: Principal
) -> Provision:
    await save_provisions(runtime=runtime, changes=[ProvisionChange(provision, change)], principal=principal)
    return provision


async def save_provisions(
    *, runtime: Runtime, changes: Sequence[ProvisionChange], principal: Principal
) -> None:
    """Store each change with its event, all in one transaction: every one or none."""

    async def write(session: Session) -> None:
        collection = runtime.db[PROVISIONS]
        for item in changes:
            provision, change = item.provision, item.change
            existing = await collection.find_one({"_id": provision.id}, {"_id": 1}, session=session)
            if change == "created" and existing is not None:
                raise ProvisionExists(provision.id)
            if change != "created" and existing is None:
                raise NoSuchProvision(provision.id)
            document = {**to_document(provision), "changed_by": principal.subject}
            await collection.replace_one({"_id": provision.id}, document, upsert=True, session=session)
            await provision_changed(runtime=runtime, provision=provision, change=change, session=session)
            if item.also is not None:
                await item.also(session)

    await runtime.transaction(write)


async def get_provision(*, runtime: Runtime, provision_id: str) -> Provision:
    document = await runtime.db[PROVISIONS].find_one({"_id": provision_id})
    if document is None:
        raise NoSuchProvision(provision_id)
    return from_document(document)
