"""The data directory (SIGNPOST_DATA_DIR): embedded MongoDB's files, the development issuer's key and
`signpost run`'s control socket, used by one `signpost run` at a time."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from signpost.shared.settings import Settings


class PathUnusable(Exception):
    """A folder or file a setting names cannot be created or written; the message names the setting."""

    def __init__(self, variable: str, path: Path, error: OSError) -> None:
        # mkdir(exist_ok=True) raises FileExistsError where a file stands in a folder's place.
        reason = os.strerror(errno.ENOTDIR) if isinstance(error, FileExistsError) else error.strerror
        super().__init__(f"cannot use {variable}={path}: {reason or error}")


class AnotherRun(Exception):
    """Another `signpost run` uses the data directory."""


def usable_data_dir(settings: Settings) -> Path:
    """The data directory, created if missing, as an absolute path."""
    try:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PathUnusable("SIGNPOST_DATA_DIR", settings.data_dir, exc) from None
    return settings.data_dir.resolve()


@contextlib.contextmanager
def run_lock(settings: Settings) -> Iterator[None]:
    """Held while one `signpost run` uses the data directory: two would share embedded MongoDB's files and
    the control socket. The kernel lets go of the lock when its process ends, however it ends (kill -9
    too), so the file left behind never blocks the next run; it names the holder's pid."""
    folder = usable_data_dir(settings)
    try:
        descriptor = os.open(folder / "run.lock", os.O_RDWR | os.O_CREAT, 0o644)  # not inherited by children
    except OSError as exc:
        raise PathUnusable("SIGNPOST_DATA_DIR", settings.data_dir, exc) from None
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(descriptor, 20, 0).decode("ascii", "replace").strip()
            pid = f" (pid {holder})" if holder.isdigit() else ""  # empty while the holder starts
            raise AnotherRun(f"another `signpost run`{pid} uses {folder}") from None
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(descriptor)
