"""The area's register of settings (schools, nurseries, colleges): what coverage is measured against.

The register lives on a compacted Kafka topic, one `setting.changed.v1` per change keyed
by setting id, so analytics rebuilds it from the log like every other projection. Each
change goes out through analytics' outbox, as intake's and routing's events do: a change
accepted while Kafka is away waits there, and one a broker then loses is sent again
(the outbox keeps a week's; see `signpost.shared.outbox`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, status
from pydantic import BaseModel, ConfigDict, Field
from signpost.analytics.projections.sets import read_pointer
from signpost.analytics.pulse.views import AnalystDep
from signpost.shared.auth.dependencies import AdminDep
from signpost.shared.auth.principal import Principal
from signpost.shared.auth.ratelimit import rate_limited_write
from signpost.shared.events import SettingChangedV1, new_event
from signpost.shared.mongo import Session
from signpost.shared.outbox import stage_event
from signpost.shared.service import Runtime, RuntimeDep
from signpost.shared.text import Identifier, SingleLine
from starlette.convertors import PathConvertor, register_url_convertor

router = APIRouter(prefix="/v1/settings-register", tags=["settings register"])

SOURCE = "/signpost/analytics"  # the `ce_source` form every producer uses: /signpost/<service>[/<part>]

# Every setting id a referral may name, so each can be registered and count towards coverage. The
# routes take the rest of the path: an id such as "LA/0042" keeps its "/" (sent as is or as %2F).
SettingId = Annotated[Identifier, Path(description="The setting's id, e.g. its URN.")]


class _RestOfPath(PathConvertor):
    """Starlette's `path`, line breaks included: its `.*` stops at one, so an id holding a line
    break matched no route and got a bare 404 rather than the 422 saying what is wrong with it."""

    regex = r"[\s\S]*"


register_url_convertor("rest_of_path", _RestOfPath())


class SettingIn(BaseModel):
    # Stripped as intake strips a referral's text, so a blank name is refused (min_length). The locality
    # is a referral's own type: one a referral could never name would count no referral.
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: SingleLine = Field(min_length=1, max_length=200)
    locality: Identifier = Field(description="The locality within the local area, as referrals name it.")
    phase: SingleLine = Field(
        default="", max_length=50, description="e.g. early years, primary, secondary, post-16, special."
    )


class SettingOut(BaseModel):
    setting_id: str
    name: str
    locality: str
    phase: str
    open: bool = Field(description="False once closed (left the register).")


class Published(BaseModel):
    setting_id: str
    change: Literal["registered", "updated", "closed"]
    detail: str = (
        "queued for the settings register (it waits while Kafka is away); the pulse counts it within seconds"
    )


@router.put(
    "/{setting_id:rest_of_path}",
    response_model=Published,
    status_code=status.HTTP_202_ACCEPTED,
    summary="Register a setting, or update it (admin)",
    dependencies=[Depends(rate_limited_write)],
)
async def put_setting(
    runtime: RuntimeDep, principal: AdminDep, setting_id: SettingId, body: SettingIn
) -> Published:
    known = await _find(runtime, principal.tenant, setting_id)
    change: Literal["registered", "updated"] = "updated" if known and known.open else "registered"
    await _publish(runtime, principal, setting_id, change, body.name, body.locality, body.phase)
    return Published(setting_id=setting_id, change=change)


@router.delete(
    "/{setting_id:rest_of_path}",
    response_model=Published,
    status_code=status.HTTP_202_ACCEPTED,
    summary="Close a setting: it leaves the register (admin)",
    responses={404: {"description": "No such setting in the register"}},
    dependencies=[Depends(rate_limited_write)],
)
async def close_setting(runtime: RuntimeDep, principal: AdminDep, setting_id: SettingId) -> Published:
    known = await _find(runtime, principal.tenant, setting_id)
    if known is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no setting {setting_id!r} in the register")
    await _publish(runtime, principal, setting_id, "closed", known.name, known.locality, known.phase)
    return Published(setting_id=setting_id, change="closed")


@router.get("", response_model=list[SettingOut], summary="The register as analytics holds it")
async def list_settings(runtime: RuntimeDep, principal: AnalystDep) -> list[SettingOut]:
    target = (await read_pointer(runtime.db)).active
    found = runtime.db[target.settings_register].find({"tenant": principal.tenant}).sort("setting_id", 1)
    return [SettingOut(**document) async for document in found]


async def _find(runtime: Runtime, tenant: str, setting_id: str) -> SettingOut | None:
    target = (await read_pointer(runtime.db)).active
    document = await runtime.db[target.settings_register].find_one({"_id": f"{tenant}|{setting_id}"})
    return SettingOut(**document) if document else None


async def _publish(
    runtime: Runtime,
    principal: Principal,
    setting_id: str,
    change: Literal["registered", "updated", "closed"],
    name: str,
    locality: str,
    phase: str,
) -> None:
    data = SettingChangedV1(
        setting_id=setting_id,
        change=change,
        name=name,
        locality=locality,
        phase=phase,
        changed_at=datetime.now(UTC),
    )
    envelope = new_event(data, source=SOURCE, tenant=principal.tenant)

    async def stage(session: Session) -> None:
        await stage_event(
            runtime.db, topic=runtime.topics.settings_register, envelope=envelope, session=session
        )

    await runtime.transaction(stage)
