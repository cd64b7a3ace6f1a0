"""The ops view over HTTP, for the ops team and admins."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from signpost.analytics.ops.models import OpsView, ServiceHealth
from signpost.analytics.ops.sampler import OpsSampler
from signpost.analytics.ops.service import services_health, streams_view
from signpost.shared.auth.dependencies import require_roles
from signpost.shared.auth.principal import Principal, Role
from signpost.shared.service import RuntimeDep

router = APIRouter(prefix="/v1/ops", tags=["ops"])

OpsDep = Annotated[Principal, Depends(require_roles(Role.OPS, Role.ADMIN))]


def get_sampler(request: Request) -> OpsSampler:
    sampler: OpsSampler = request.app.state.ops_sampler
    return sampler


SamplerDep = Annotated[OpsSampler, Depends(get_sampler)]


@router.get(
    "",
    response_model=OpsView,
    summary="Consumer lag per group and partition, events/s and last event per topic, dead letters, health",
)
async def get_ops_view(_: OpsDep, runtime: RuntimeDep, sampler: SamplerDep) -> OpsView:
    streams = streams_view(sampler)
    return OpsView(**streams.model_dump(), health=await services_health(runtime.settings))


@router.get(
    "/health", response_model=list[ServiceHealth], summary="Each service's readiness, as it answers it"
)
async def get_health(_: OpsDep, runtime: RuntimeDep) -> list[ServiceHealth]:
    return await services_health(runtime.settings)
