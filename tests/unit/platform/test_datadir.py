"""One `signpost run` at a time per data directory: who holds it, and a killed run holding nothing."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from signpost.shared.settings import Settings

from signpost.platform.datadir import AnotherRun, run_lock

HOLD = """
import sys, time
from pathlib import Path
from signpost.shared.settings import Settings
from signpost.platform.datadir import run_lock
with run_lock(Settings(data_dir=Path(sys.argv[1]))):
    print("held", flush=True)
    time.sleep(60)
"""


def test_the_run_holding_the_data_folder_is_named_and_killing_it_frees_the_folder(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(settings.data_dir)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout and holder.stdout.readline() == "held\n"
        named = f"another `signpost run` (pid {holder.pid}) uses {settings.data_dir.resolve()}"
        with pytest.raises(AnotherRun, match=re.escape(named)), run_lock(settings):
            pass
    finally:
        holder.kill()  # kill -9: nothing of its own lets go
        holder.wait()
    with run_lock(settings):
        assert (settings.data_dir / "run.lock").read_text() == f"{os.getpid()}\n"
