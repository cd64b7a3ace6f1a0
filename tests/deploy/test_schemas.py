"""Every manifest and the compose file against their published schemas, offline.

- Kubernetes built-in kinds: the full OpenAPI-derived JSON Schemas shipped by the
  `kubernetes-validate` package, in strict mode (unknown fields are errors).
- The operators' custom resources: tests/deploy/crd_schemas (see its README).
- docker-compose.yml: the compose-spec JSON Schema vendored in `check-jsonschema`.
"""

from __future__ import annotations

import copy
import json
from importlib import resources as package_files
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from tests.deploy.manifests import BASE, PRODUCTION, ROOT, Manifest, compose, load_docs, render, resources

# The oldest Kubernetes Signpost supports: preStop `sleep` needs 1.30.
KUBERNETES_VERSION = "1.30"
CRD_SCHEMAS = Path(__file__).parent / "crd_schemas"
CUSTOM_KINDS = {
    ("kafka.strimzi.io/v1beta2", "Kafka"): "kafka.strimzi.io_v1beta2_kafka.json",
    ("kafka.strimzi.io/v1beta2", "KafkaNodePool"): "kafka.strimzi.io_v1beta2_kafkanodepool.json",
    ("kafka.strimzi.io/v1beta2", "KafkaTopic"): "kafka.strimzi.io_v1beta2_kafkatopic.json",
    (
        "mongodbcommunity.mongodb.com/v1",
        "MongoDBCommunity",
    ): "mongodbcommunity.mongodb.com_v1_mongodbcommunity.json",
}


def validate_manifest(doc: Manifest) -> None:
    """Raise a jsonschema.ValidationError saying where a manifest breaks its kind's schema."""
    custom = CUSTOM_KINDS.get((doc["apiVersion"], doc["kind"]))
    if custom is None:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        return
    schema = json.loads((CRD_SCHEMAS / custom).read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.Draft202012Validator(schema).validate(doc)


def compose_schema() -> dict[str, Any]:
    vendor = package_files.files("check_jsonschema.builtin_schemas.vendor")
    loaded: dict[str, Any] = json.loads(vendor.joinpath("compose-spec.json").read_text())
    return loaded


def every_manifest() -> list[tuple[str, Manifest]]:
    found = [(f"base:{doc['kind']}/{doc['metadata']['name']}", doc) for doc in resources(BASE)]
    found += [(f"production:{doc['kind']}/{doc['metadata']['name']}", doc) for doc in render(PRODUCTION)]
    found += [
        (f"example:{doc['kind']}/{doc['metadata']['name']}", doc)
        for doc in load_docs(BASE / "secret.example.yaml")
    ]
    return found


@pytest.mark.parametrize(("where", "doc"), every_manifest(), ids=[where for where, _ in every_manifest()])
def test_manifest_matches_its_published_schema(where: str, doc: Manifest) -> None:
    validate_manifest(doc)


def test_the_validators_catch_a_broken_manifest() -> None:
    deployment = copy.deepcopy(next(doc for doc in resources(BASE) if doc["kind"] == "Deployment"))
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["paht"] = "/readyz"
    with pytest.raises(jsonschema.ValidationError):
        validate_manifest(deployment)
    topic = copy.deepcopy(next(doc for doc in resources(BASE) if doc["kind"] == "KafkaTopic"))
    topic["spec"]["partitions"] = "six"
    with pytest.raises(jsonschema.ValidationError):
        validate_manifest(topic)


def test_kustomizations_list_every_manifest_file() -> None:
    listed = {entry for entry in yaml.safe_load((BASE / "kustomization.yaml").read_text())["resources"]}
    on_disk = {path.name for path in BASE.glob("*.yaml")} - {"kustomization.yaml", "secret.example.yaml"}
    assert listed == on_disk


def test_compose_file_matches_the_compose_spec() -> None:
    validator = jsonschema.Draft202012Validator(compose_schema())
    errors = sorted(validator.iter_errors(compose()), key=lambda error: list(error.absolute_path))
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)


def test_the_compose_schema_catches_a_broken_file() -> None:
    broken = copy.deepcopy(compose())
    broken["services"]["intake"]["restart"] = {"policy": "always"}
    broken["services"]["routing"]["depends_on"]["migrate"]["condition"] = "when_it_feels_like_it"
    errors = list(jsonschema.Draft202012Validator(compose_schema()).iter_errors(broken))
    assert len(errors) >= 2


def test_prometheus_config_parses_and_names_a_job_per_service() -> None:
    config = yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text())
    assert {job["job_name"] for job in config["scrape_configs"]} == {"intake", "routing", "analytics"}
