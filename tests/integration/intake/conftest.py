"""Intake with the real routing service beside it, shared by a module's tests (start-up costs seconds)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio
from signpost.intake.app import create_app as create_intake
from signpost.routing.app import create_app as create_routing
from signpost.shared.service import Runtime
from signpost.shared.settings import Settings

from tests.conftest import Tokens, serving


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def intake(module_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """Offers come from the seeded catalogue through the running routing service."""
    async with serving(create_intake(module_settings)) as client, serving(create_routing(module_settings)):
        yield client


@pytest.fixture(scope="module")
def tokens(module_settings: Settings) -> Tokens:
    return Tokens(module_settings)


@pytest_asyncio.fixture
async def runtime(settings: Settings) -> AsyncIterator[Runtime]:
    """Intake's database, for a test to read or arrange what the API does not show."""
    runtime = Runtime.build(settings, "intake")
    try:
        yield runtime
    finally:
        await runtime.client.close()
