"""Changes to the Local Offer: each stored with its `provision.changed.v1` event in one transaction."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from signpost.routing.catalogue.models import PROVISIONS, Provision
from signpost.routing.catalogue.repository import changed_in, from_document, stamp_change, to_document
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


class StaleProvision(Exception):
    """The provision changed after the version the caller read (`If-Match`)."""

    def __init__(self, provision_id: str, version: int) -> None:
        super().__init__(provision_id)
        self.version = version  # the stored one


class StaleCapacity(Exception):
    """The capacity sent is stated as of a time before the stored one was last changed."""

    def __init__(self, provision_id: str, updated: datetime) -> None:
        super().__init__(provision_id)
        self.updated = updated  # the stored one's


class RetiredByUpdate(Exception):
    """An admin's update would retire the provision: `retire` does that, publishing `retired`."""


@dataclass(frozen=True)
class Versioned:
    """A provision as stored and the catalogue version of its last change (its ETag)."""

    provision: Provision
    version: int


Change = Literal["created", "updated", "retired"]


async def provision_changed(
    *, runtime: Runtime, provision: Provision, change: Change, session: Session
) -> int:
    """Stage `provision.changed.v1` for a change the caller's transaction has just written to the
    provision's document, and count it as a new catalogue version (what routing's snapshots watch,
    and a provision's ETag); returns that version.

    Every write to a provision calls this, in the same transaction.
    """
    version = await stamp_change(runtime.db, provision_id=provision.id, session=session)
    event = new_event(
        ProvisionChangedV1(
            provision_id=provision.id,
            change=change,
            provision=provision.model_dump(mode="json"),
            changed_at=datetime.now(UTC),
        ),
        source=SOURCE,
        tenant=runtime.settings.tenant,
    )
    await stage_event(runtime.db, topic=runtime.topics.provisions, envelope=event, session=session)
    return version


Revise = Callable[[Provision | None], Provision]  # the stored provision (None: new) -> what to store


@dataclass(frozen=True)
class ProvisionChange:
    provision_id: str
    change: Change
    revise: Revise
    also: Callable[[Session], Awaitable[None]] | None = None  # writes that belong with this change
    # Versions the caller read (`If-Match`): any other stored version refuses the change (None: any)
    read: frozenset[int] | None = None


async def save_provision(
    *, runtime: Runtime, provision: Provision, change: Change, principal: Principal
) -> Provision:
    """Store `provision` as given, with no staleness check: an admin's create, which has no stored
    capacity to be stale against (a create over a stored provision is refused, ProvisionExists).
    An admin's update goes through `save_versioned`, which refuses a figure read before the stored
    one; an ORUK import through `oruk.importer._keep_live_capacity`, which keeps the stored one."""
    [saved] = await save_provisions(
        runtime=runtime,
        changes=[ProvisionChange(provision.id, change, lambda _: provision)],
        principal=principal,
    )
    return saved


async def save_versioned(
    *,
    runtime: Runtime,
    provision: Provision,
    change: Change,
    principal: Principal,
    read: frozenset[int] | None = None,
) -> Versioned:
    """`save_provision`, refused with StaleProvision when `read` is given and holds none of the
    stored versions: a figure read before routing held or gave back a place (or anyone else changed
    the provision) must not be written back over it. Whatever `read`, a capacity whose `updated` is
    older than the stored capacity's is refused with StaleCapacity: routing stamps `updated` as it
    holds or gives back a place, so a body read before that carries the older time.

    Not the ORUK import's rule (`oruk.importer._keep_live_capacity`), on purpose: an admin is
    there to be told, so a stale figure is refused (412) and read again, whatever its `maximum`;
    an `updated` equal to the stored one is what a fresh GET carries, so it goes through (the admin
    may change `available` and leave `updated` as read). A body without `updated`, or a newer one,
    states the figure afresh.

    An update that would retire an active provision is refused with RetiredByUpdate: `retire` does
    that (publishing `retired`). One that sends `active: true` for a retired provision brings it
    back: the whole provision is sent, so that is what its admin asked for."""

    def revise(stored: Provision | None) -> Provision:
        if stored is not None and stored.active and not provision.active:
            raise RetiredByUpdate(provision.id)
        theirs, ours = provision.capacity, stored.capacity if stored else None
        if theirs and ours and theirs.updated and ours.updated and theirs.updated < ours.updated:
            raise StaleCapacity(provision.id, ours.updated)
        return provision

    item = ProvisionChange(provision.id, change, revise, read=read)

    async def write(session: Session) -> Versioned:
        return await _write(runtime, item, principal, session)

    return await runtime.transaction(write)


async def retire(*, runtime: Runtime, provision_id: str, principal: Principal) -> Provision:
    """Only `active` changes; capacity and the rest stay as the transaction finds them."""
    [retired] = await save_provisions(
        runtime=runtime, changes=[ProvisionChange(provision_id, "retired", _retired)], principal=principal
    )
    return retired


def _retired(current: Provision | None) -> Provision:
    assert current is not None, "only a stored provision is retired"
    return current.model_copy(update={"active": False})


async def save_provisions(
    *, runtime: Runtime, changes: Sequence[ProvisionChange], principal: Principal
) -> list[Provision]:
    """Store each change with its event, all in one transaction: every one or none."""

    async def write(session: Session) -> list[Provision]:
        return [(await _write(runtime, item, principal, session)).provision for item in changes]

    return await runtime.transaction(write)


async def _write(
    runtime: Runtime, item: ProvisionChange, principal: Principal, session: Session
) -> Versioned:
    """Revise the provision as read here, in the transaction, never a copy read before it: routing's
    holds change `capacity.available` meanwhile. A hold committed after this read makes the write
    conflict, and the retried transaction reads again."""
    collection = runtime.db[PROVISIONS]
    stored = await collection.find_one({"_id": item.provision_id}, session=session)
    if item.change == "created" and stored is not None:
        raise ProvisionExists(item.provision_id)
    if item.change != "created" and stored is None:
        raise NoSuchProvision(item.provision_id)
    if item.read is not None and stored is not None and changed_in(stored) not in item.read:
        raise StaleProvision(item.provision_id, changed_in(stored))
    provision = item.revise(None if stored is None else from_document(stored))
    document = {**to_document(provision), "changed_by": principal.subject}
    await collection.replace_one({"_id": item.provision_id}, document, upsert=True, session=session)
    version = await provision_changed(
        runtime=runtime, provision=provision, change=item.change, session=session
    )
    if item.also is not None:
        await item.also(session)
    return Versioned(provision, version)


async def get_versioned(*, runtime: Runtime, provision_id: str) -> Versioned:
    """The provision and its version, from one read."""
    document = await runtime.db[PROVISIONS].find_one({"_id": provision_id})
    if document is None:
        raise NoSuchProvision(provision_id)
    return Versioned(from_document(document), changed_in(document))
