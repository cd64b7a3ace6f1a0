"""Unit tests see no SIGNPOST_* setting from the shell running them: README's way to run the tests
against explicit servers sets SIGNPOST_KAFKA_BOOTSTRAP and SIGNPOST_MONGODB_URL, which would turn
the defaults these tests check into those servers. A test that needs a setting sets its own. Nor does
a unit test configure logging for its worker."""

from __future__ import annotations

import os

import pytest
from signpost.shared import logging as signpost_logging


@pytest.fixture(autouse=True)
def no_signpost_settings_from_the_shell(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("SIGNPOST_"):
            monkeypatch.delenv(name)


@pytest.fixture(autouse=True)
def logging_left_unconfigured(monkeypatch: pytest.MonkeyPatch) -> None:
    """A command run in-process (`main(["migrate"])`) would configure logging for the whole worker,
    once, to the stderr of that moment: pytest's capture, closed after the test, so every later
    test's log line would fail. Tests of what services log run them in a subprocess."""
    monkeypatch.setattr(signpost_logging, "_configured", True)
