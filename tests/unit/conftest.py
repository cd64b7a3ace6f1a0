"""Unit tests see no SIGNPOST_* setting from the shell running them: README's way to run the tests
against explicit servers sets SIGNPOST_KAFKA_BOOTSTRAP and SIGNPOST_MONGODB_URL, which would turn
the defaults these tests check into those servers. A test that needs a setting sets its own."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True)
def no_signpost_settings_from_the_shell(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("SIGNPOST_"):
            monkeypatch.delenv(name)
