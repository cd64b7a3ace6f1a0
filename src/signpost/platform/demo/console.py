"""The demo as a command: a one-line progress bar, the closing summary, and exit codes."""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from typing import TextIO

from signpost.shared.settings import Settings

from signpost.platform.demo.runner import DemoFailed, DemoOptions, Endpoints, PlatformUnreachable, run_demo
from signpost.platform.devtokens import DevTokensRefused

BAR_WIDTH = 24
LINE_EVERY_S = 5.0  # off a terminal (or beside service logs): one progress line this often


class ProgressLine:
    """Redrawn in place on a terminal; otherwise a plain line every few seconds, prefixed like `signpost run`'s."""

    def __init__(self, stream: TextIO, *, prefix: str = "", in_place: bool | None = None) -> None:
        self.stream, self.prefix = stream, prefix
        self.in_place = stream.isatty() if in_place is None else in_place
        self._last = 0.0

    def __call__(self, status: str, done: int, total: int) -> None:
        filled = BAR_WIDTH * done // total if total else BAR_WIDTH
        line = f"{self.prefix}[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {done}/{total}  {status}"
        if self.in_place:
            self.stream.write(f"\r{line[:200]}\x1b[K")
            self.stream.flush()
        elif time.monotonic() - self._last >= LINE_EVERY_S or done == total:
            self._last = time.monotonic()
            print(line, file=self.stream, flush=True)

    def close(self) -> None:
        if self.in_place:
            self.stream.write("\n")


def demo_command(
    settings: Settings,
    endpoints: Endpoints,
    options: DemoOptions,
    *,
    prefix: str = "",
    in_place: bool | None = None,
    platform_stopping: threading.Event | None = None,
) -> int:
    """Run the demo against `endpoints`; `platform_stopping`, set by `signpost run --demo` when it
    stops the platform (Ctrl-C), turns the platform going away into a quiet end, not an error."""
    progress = ProgressLine(sys.stdout, prefix=prefix, in_place=in_place)
    try:
        summary = asyncio.run(run_demo(settings, endpoints, options, progress=progress))
    except PlatformUnreachable as exc:
        progress.close()
        if platform_stopping is not None and platform_stopping.is_set():
            print(f"{prefix}stopped with the platform", flush=True)
            return 0
        print(f"signpost demo: {exc}", file=sys.stderr)
        return 2
    except (DemoFailed, DevTokensRefused) as exc:
        progress.close()
        print(f"signpost demo: {exc}", file=sys.stderr)
        return 2
    progress.close()
    print("\n".join(f"{prefix}{line}" for line in summary.render().splitlines()), flush=True)
    return 0
