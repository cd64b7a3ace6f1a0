"""`signpost health`: the container's own health check, without curl in the image."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Sequence

from signpost.shared.settings import ServiceName, Settings

PROBE_TIMEOUT_S = 3.0


def probe(settings: Settings, *, services: Sequence[ServiceName], ready: bool) -> tuple[bool, str]:
    """Ask the first of `services` that listens on this host for /healthz (or /readyz)."""
    path = "/readyz" if ready else "/healthz"
    for service in services:
        url = f"http://127.0.0.1:{settings.port_of(service)}{path}"
        try:
            with urllib.request.urlopen(url, timeout=PROBE_TIMEOUT_S) as answer:
                return True, f"{service} {path}: {answer.status}"
        except urllib.error.HTTPError as exc:
            return False, f"{service} {path}: {exc.code} {exc.read().decode('utf-8', 'replace')[:300]}"
        except OSError:
            continue  # not listening here: a container runs one service
    return False, f"no Signpost service answers {path} on this host (ports of {', '.join(services)})"
