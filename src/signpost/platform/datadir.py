"""The data directory (SIGNPOST_DATA_DIR): embedded MongoDB's files, the development issuer's key and
`signpost run`'s control socket."""

from __future__ import annotations

import errno
import os
from pathlib import Path

from signpost.shared.settings import Settings


class PathUnusable(Exception):
    """A folder or file a setting names cannot be created or written; the message names the setting."""

    def __init__(self, variable: str, path: Path, error: OSError) -> None:
        # mkdir(exist_ok=True) raises FileExistsError where a file stands in a folder's place.
        reason = os.strerror(errno.ENOTDIR) if isinstance(error, FileExistsError) else error.strerror
        super().__init__(f"cannot use {variable}={path}: {reason or error}")


def usable_data_dir(settings: Settings) -> Path:
    """The data directory, created if missing, as an absolute path."""
    try:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PathUnusable("SIGNPOST_DATA_DIR", settings.data_dir, exc) from None
    return settings.data_dir.resolve()
