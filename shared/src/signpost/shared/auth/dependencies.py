"""FastAPI dependencies that say who is calling and whether they may.

AgencyDep = Annotated[Principal, Depends(require_roles(Role.AGENCY))]

@router.post("/v1/offers/{id}/accept")
async def accept(principal: AgencyDep) -> ...: ...
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Annotated

import structlog
from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from signpost.shared.auth.principal import Principal, Role
from signpost.shared.auth.tokens import InvalidToken, SigningKeysUnavailable, TokenVerifier
from signpost.shared.logging import get_logger

log = get_logger(__name__)

_bearer = HTTPBearer(
    auto_error=False,
    description="An RS256 JWT from the area's identity provider with `role`, `org` and `tenant` claims.",
)


def _unauthorised(reason: str, *, challenge: str = 'Bearer error="invalid_token"') -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail=reason, headers={"WWW-Authenticate": challenge})


async def get_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if credentials is None:
        # RFC 6750: a request with no credentials gets a challenge without an error code.
        raise _unauthorised("send an `Authorization: Bearer <token>` header", challenge="Bearer")
    verifier: TokenVerifier = request.app.state.token_verifier
    try:
        if verifier.fetches_keys:
            principal = await asyncio.to_thread(verifier.verify, credentials.credentials)
        else:
            principal = verifier.verify(credentials.credentials)
    except InvalidToken as exc:
        raise _unauthorised(exc.reason) from None
    except SigningKeysUnavailable as exc:
        log.warning("identity provider keys unavailable", error=str(exc))
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            "the identity provider's keys cannot be fetched just now; try again shortly",
            headers={"Retry-After": "30"},
        ) from None
    tenant: str = request.app.state.runtime.settings.tenant
    if principal.tenant != tenant:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, f"this service serves local area {tenant!r}, not yours"
        )
    structlog.contextvars.bind_contextvars(role=principal.role.value, organisation=principal.organisation)
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def require_roles(*roles: Role) -> Callable[..., Awaitable[Principal]]:
    allowed = ", ".join(role.value for role in roles)

    async def check(principal: PrincipalDep) -> Principal:
        if principal.role not in roles:
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"only these roles may do this: {allowed}")
        return principal

    return check


AdminDep = Annotated[Principal, Depends(require_roles(Role.ADMIN))]
