"""`./signpost`, the bootstrap at the repository's root, hands over to `uv run` (a stand-in here)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FAKE_UV = '#!/bin/sh\npwd -P\nprintf "%s\\n" "$@"\n'  # where it runs, then its arguments


def bootstrap(folder: Path, *args: str) -> tuple[Path, list[str]]:
    """Where `uv` ran and what it was asked, for `ROOT/signpost ARGS` called in `folder`."""
    tools = folder / "tools"
    tools.mkdir()
    (tools / "uv").write_text(FAKE_UV)
    (tools / "uv").chmod(0o755)
    result = subprocess.run(
        [sys.executable, str(ROOT / "signpost"), *args],
        cwd=folder,
        env={**os.environ, "PATH": f"{tools}{os.pathsep}{os.environ['PATH']}"},
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    ran_in, *argv = result.stdout.splitlines()
    return Path(ran_in), argv


UV_RUN = ["run", "--project", str(ROOT), "--locked", "--extra", "embedded", "--python", "3.11"]


def test_commands_run_in_the_callers_folder_so_relative_paths_are_theirs(tmp_path: Path) -> None:
    ran_in, argv = bootstrap(tmp_path, "catalogue", "import", "feed.json")
    assert ran_in == tmp_path.resolve()  # feed.json, ./.signpost: the caller's
    assert argv == [*UV_RUN, "signpost", "catalogue", "import", "feed.json"]


@pytest.mark.parametrize("args", [[], ["tests/unit", "-k", "bootstrap"]])
def test_the_test_suite_runs_in_the_repository(tmp_path: Path, args: list[str]) -> None:
    ran_in, argv = bootstrap(tmp_path, "test", *args)
    assert ran_in == ROOT
    assert argv == [*UV_RUN, "pytest", *args]
