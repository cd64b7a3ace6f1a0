"""Loading deploy/: the compose file, the Kustomize base and a rendered overlay, without kustomize.

The overlay renderer covers exactly the Kustomize features the production overlay uses
(namespace, images, replicas, ConfigMap patches, secretGenerator from env files);
`test_overlay_uses_only_what_the_renderer_understands` keeps it that way.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
BASE = K8S / "base"
PRODUCTION = K8S / "overlays" / "production"
COMPOSE_FILE = ROOT / "docker-compose.yml"
# What an operator writes over the committed examples' placeholders, which production refuses
# (test_examples.py): the values of a deployment that has been filled in.
FILLED_IN = {
    "SIGNPOST_PSEUDONYM_KEY": "an-areas-own-secret-too-long-to-guess",
    "SIGNPOST_FRONT_DOOR_PHONE": "0117 496 0000",  # Ofcom's drama range: no real line
    "SIGNPOST_AUTH_ISSUER": "https://login.area.test/realms/signpost",
    "SIGNPOST_AUTH_JWKS_URL": "https://login.area.test/realms/signpost/protocol/openid-connect/certs",
    "SIGNPOST_MONGODB_PASSWORD": "an-areas-own-mongodb-password",
}

Manifest = dict[str, Any]
CLUSTER_SCOPED = {"Namespace"}
RENDERED_FIELDS = {
    "apiVersion",
    "kind",
    "namespace",
    "resources",
    "images",
    "replicas",
    "patches",
    "secretGenerator",
}


def load_docs(path: Path) -> list[Manifest]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def kustomization(directory: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((directory / "kustomization.yaml").read_text())
    return loaded


def resources(directory: Path) -> list[Manifest]:
    """Every manifest a kustomization lists, following nested kustomizations, unchanged."""
    found: list[Manifest] = []
    for entry in kustomization(directory).get("resources", []):
        path = (directory / entry).resolve()
        found.extend(resources(path) if path.is_dir() else load_docs(path))
    return found


def env_file(path: Path) -> dict[str, str]:
    return dict(
        line.split("=", 1)
        for line in path.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    )


def filled_in(example: dict[str, str]) -> dict[str, str]:
    """An example file's values as an operator leaves them: the placeholders replaced."""
    return {name: FILLED_IN.get(name, value) for name, value in example.items()}


def render(directory: Path) -> list[Manifest]:
    """The overlay as `kubectl apply -k` would apply it; secrets come from the committed *.example files."""
    spec = kustomization(directory)
    rendered = [copy.deepcopy(doc) for doc in resources(directory)]
    images = {image["name"]: image for image in spec.get("images", [])}
    replicas = {entry["name"]: entry["count"] for entry in spec.get("replicas", [])}
    for doc in rendered:
        if "namespace" in spec and doc["kind"] not in CLUSTER_SCOPED:
            doc["metadata"]["namespace"] = spec["namespace"]
        if doc["kind"] == "Deployment" and doc["metadata"]["name"] in replicas:
            doc["spec"]["replicas"] = replicas[doc["metadata"]["name"]]
        for container in pod.get("containers", []) if (pod := pod_spec(doc)) else []:
            name, _, _ = container["image"].partition(":")
            if name in images:
                container["image"] = f"{images[name]['newName']}:{images[name]['newTag']}"
    for patch in spec.get("patches", []):
        (change,) = load_docs(directory / patch["path"])
        assert change["kind"] == "ConfigMap", "the renderer merges ConfigMap patches only"
        named(rendered, "ConfigMap", change["metadata"]["name"])["data"].update(change["data"])
    for generator in spec.get("secretGenerator", []):
        data: dict[str, str] = {}
        for name in generator.get("envs", []):
            data.update(env_file(directory / f"{name}.example"))
        rendered.append(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": generator["name"], "namespace": spec.get("namespace", "default")},
                "type": "Opaque",
                "stringData": data,
            }
        )
    return rendered


def named(manifests: list[Manifest], kind: str, name: str) -> Manifest:
    matches = [doc for doc in manifests if doc["kind"] == kind and doc["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind} {name}, found {len(matches)}"
    return matches[0]


def of_kind(manifests: list[Manifest], kind: str) -> list[Manifest]:
    return [doc for doc in manifests if doc["kind"] == kind]


def pod_spec(doc: Manifest) -> dict[str, Any] | None:
    if doc["kind"] in {"Deployment", "Job", "StatefulSet"}:
        spec: dict[str, Any] = doc["spec"]["template"]["spec"]
        return spec
    return None


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    return loaded


def compose_variables() -> set[str]:
    """Every `${NAME…}` the compose file takes from the environment (.env)."""
    return set(re.findall(r"\$\{(\w+)", COMPOSE_FILE.read_text()))
