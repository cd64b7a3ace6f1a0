"""deploy/k8s cross-checked with the services' settings, topics and each other, offline."""

from __future__ import annotations

from typing import Any

import pytest
from signpost.routing.oruk.views import IMPORT_PATH
from signpost.shared.settings import SERVICE_NAMES, ServiceName, Settings
from signpost.shared.topics import Topics

from tests.deploy.manifests import (
    BASE,
    PRODUCTION,
    RENDERED_FIELDS,
    ROOT,
    Manifest,
    env_file,
    filled_in,
    kustomization,
    load_docs,
    named,
    of_kind,
    pod_spec,
    render,
)

MANIFESTS = render(PRODUCTION)
CONFIG: dict[str, str] = named(MANIFESTS, "ConfigMap", "signpost-config")["data"]
EXAMPLE_SECRET: dict[str, str] = named(load_docs(BASE / "secret.example.yaml"), "Secret", "signpost-secrets")[
    "stringData"
]
KAFKA = of_kind(MANIFESTS, "Kafka")[0]
MONGODB = of_kind(MANIFESTS, "MongoDBCommunity")[0]
IMAGE_USER = 10001  # deploy/Dockerfile: USER 10001
SETTING_NAMES = {f"SIGNPOST_{name.upper()}" for name in Settings.model_fields}


def settings() -> Settings:
    """What a pod's settings resolve to: ConfigMap, Secret, and the operator's connection string."""
    values: dict[str, Any] = {**CONFIG, **filled_in(EXAMPLE_SECRET)}
    values["SIGNPOST_MONGODB_URL"] = (
        f"mongodb://signpost:pw@{MONGODB['metadata']['name']}-0.{MONGODB['metadata']['name']}-svc:27017/"
        f"admin?replicaSet={MONGODB['metadata']['name']}"
    )
    return Settings(_env_file=None, **{k.removeprefix("SIGNPOST_").lower(): v for k, v in values.items()})


def container(doc: Manifest) -> dict[str, Any]:
    spec = pod_spec(doc)
    assert spec is not None
    containers: list[dict[str, Any]] = spec["containers"]
    (only,) = containers
    return only


def env_names(doc: Manifest) -> set[str]:
    return {variable["name"] for variable in container(doc).get("env", [])}


def workloads() -> list[Manifest]:
    return [doc for doc in MANIFESTS if doc["kind"] in {"Deployment", "Job"}]


def plain_listener() -> dict[str, Any]:
    listeners: list[dict[str, Any]] = KAFKA["spec"]["kafka"]["listeners"]
    (listener,) = [item for item in listeners if not item["tls"]]
    return listener


def test_settings_of_a_pod_pass_production_validation() -> None:
    resolved = settings()
    assert resolved.environment == "production" and resolved.kafka_idempotence


def test_every_signpost_variable_is_a_setting() -> None:
    used = set(CONFIG) | set(EXAMPLE_SECRET) | set(env_file(PRODUCTION / "secrets.env.example"))
    for doc in workloads():
        used |= env_names(doc)
    unknown = {name for name in used if name.startswith("SIGNPOST_")} - SETTING_NAMES
    assert not unknown, f"not in Settings: {sorted(unknown)}"
    assert set(env_file(PRODUCTION / "secrets.env.example")) == set(EXAMPLE_SECRET)


@pytest.mark.parametrize("service", SERVICE_NAMES)
def test_deployment_service_and_probes_use_the_service_port(service: ServiceName) -> None:
    port = settings().port_of(service)
    deployment = named(MANIFESTS, "Deployment", service)
    main = container(deployment)
    assert main["args"] == ["run", "--service", service]
    assert main["ports"] == [{"name": "http", "containerPort": port, "protocol": "TCP"}]
    assert main["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert main["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert main["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert {ref.get("configMapRef", ref.get("secretRef"))["name"] for ref in main["envFrom"]} == {
        "signpost-config",
        "signpost-secrets",
    }
    (http,) = named(MANIFESTS, "Service", service)["spec"]["ports"]
    assert http["port"] == port and http["targetPort"] == "http"
    selector = named(MANIFESTS, "Service", service)["spec"]["selector"]
    assert selector == deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    assert main["image"] == "registry.example.gov.uk/signpost:0.1.0"
    assert main["resources"]["requests"] and main["resources"]["limits"]


@pytest.mark.parametrize("workload", ["intake", "routing", "analytics", "signpost-migrate"])
def test_pods_run_as_the_image_user_on_a_read_only_root(workload: str) -> None:
    doc = next(doc for doc in workloads() if doc["metadata"]["name"] == workload)
    pod = pod_spec(doc)
    assert pod is not None
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == IMAGE_USER
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    security = container(doc)["securityContext"]
    assert security == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert {"name": "tmp", "mountPath": "/tmp"} in container(doc)["volumeMounts"]  # the image's WORKDIR
    mongodb_url = next(v for v in container(doc)["env"] if v["name"] == "SIGNPOST_MONGODB_URL")
    assert mongodb_url["valueFrom"]["secretKeyRef"] == {
        "name": MONGODB["spec"]["users"][0]["connectionStringSecretName"],
        "key": "connectionString.standard",
    }


@pytest.mark.parametrize("service", SERVICE_NAMES)
def test_termination_grace_covers_the_pause_and_the_shutdown_budget(service: str) -> None:
    pod = pod_spec(named(MANIFESTS, "Deployment", service))
    assert pod is not None
    pause = container(named(MANIFESTS, "Deployment", service))["lifecycle"]["preStop"]["sleep"]["seconds"]
    budget = settings().shutdown_budget
    assert pod["terminationGracePeriodSeconds"] > pause + budget.grace_s
    assert budget.http_s + budget.consumers_s + budget.outbox_s < budget.grace_s


@pytest.mark.parametrize("service", SERVICE_NAMES)
def test_disruption_budget_leaves_room_to_drain_a_node(service: str) -> None:
    deployment = named(MANIFESTS, "Deployment", service)
    budget = named(MANIFESTS, "PodDisruptionBudget", service)
    assert budget["spec"]["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
    autoscaled = [
        hpa for hpa in of_kind(MANIFESTS, "HorizontalPodAutoscaler") if hpa["metadata"]["name"] == service
    ]
    if autoscaled:
        assert "replicas" not in deployment["spec"], "the HPA owns the count; apply would reset it"
        fewest = autoscaled[0]["spec"]["minReplicas"]
    else:
        fewest = deployment["spec"]["replicas"]
    assert 1 <= budget["spec"]["minAvailable"] < fewest


@pytest.mark.parametrize("service", ["routing", "analytics"])
def test_autoscaling_stops_at_the_referral_partition_count(service: str) -> None:
    hpa = named(MANIFESTS, "HorizontalPodAutoscaler", service)
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": service}
    referrals = Topics.from_settings(settings()).referrals
    topic = next(doc for doc in of_kind(MANIFESTS, "KafkaTopic") if doc["spec"]["topicName"] == referrals)
    assert hpa["spec"]["maxReplicas"] <= topic["spec"]["partitions"] == settings().topic_partitions
    minimum = named(MANIFESTS, "PodDisruptionBudget", service)["spec"]["minAvailable"]
    assert minimum < hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]


def test_kafka_topics_are_exactly_the_services_topics_with_production_retention() -> None:
    topics = Topics.from_settings(settings())
    declared = {doc["spec"]["topicName"]: doc["spec"] for doc in of_kind(MANIFESTS, "KafkaTopic")}
    assert set(declared) == {spec.name for spec in topics.specs()}
    replication = KAFKA["spec"]["kafka"]["config"]["default.replication.factor"]
    for spec in topics.specs():
        topic = declared[spec.name]
        assert topic["partitions"] == spec.partitions, spec.name
        assert topic["replicas"] == replication
        assert topic["config"] == spec.config, spec.name
    for doc in of_kind(MANIFESTS, "KafkaTopic"):
        assert doc["metadata"]["labels"]["strimzi.io/cluster"] == KAFKA["metadata"]["name"]


def test_kafka_is_kraft_with_node_pools_and_tolerates_one_node_down() -> None:
    assert KAFKA["metadata"]["annotations"] == {
        "strimzi.io/node-pools": "enabled",
        "strimzi.io/kraft": "enabled",
    }
    (pool,) = of_kind(MANIFESTS, "KafkaNodePool")
    assert pool["metadata"]["labels"]["strimzi.io/cluster"] == KAFKA["metadata"]["name"]
    assert set(pool["spec"]["roles"]) == {"controller", "broker"}
    assert all(not volume.get("deleteClaim", False) for volume in pool["spec"]["storage"]["volumes"])
    config = KAFKA["spec"]["kafka"]["config"]
    assert config["default.replication.factor"] <= pool["spec"]["replicas"]
    assert config["min.insync.replicas"] == config["default.replication.factor"] - 1
    assert config["auto.create.topics.enable"] is False
    # Services create missing topics at start-up too, maybe before the topic operator or the
    # migrate Job: with fewer replicas than min.insync.replicas every publish (acks=all) fails.
    assert settings().topic_replication_factor == config["default.replication.factor"]
    assert container(named(MANIFESTS, "Job", "signpost-migrate"))["args"] == ["migrate"]


def test_services_find_kafka_and_mongodb_where_the_operators_put_them() -> None:
    assert (
        settings().kafka_bootstrap
        == f"{KAFKA['metadata']['name']}-kafka-bootstrap:{plain_listener()['port']}"
    )
    (user,) = MONGODB["spec"]["users"]
    password = named(MANIFESTS, "Secret", user["passwordSecretRef"]["name"])
    assert user["passwordSecretRef"]["key"] in password["stringData"]
    assert user["db"] == "admin"
    assert {(role["name"], role["db"]) for role in user["roles"]} == {
        ("readWrite", settings().database_name(service)) for service in SERVICE_NAMES
    }
    assert MONGODB["spec"]["security"]["authentication"]["modes"] == ["SCRAM"]
    assert MONGODB["spec"]["members"] >= 3


def egress_ports(policy: Manifest) -> dict[int, list[dict[str, Any]]]:
    return {port["port"]: rule.get("to", []) for rule in policy["spec"]["egress"] for port in rule["ports"]}


@pytest.mark.parametrize(
    ("workload", "https_out"),
    [("intake", True), ("routing", True), ("analytics", True), ("signpost-migrate", False)],
)
def test_network_policies_allow_only_kafka_mongodb_dns_and_what_each_must(
    workload: str, https_out: bool
) -> None:
    doc = next(doc for doc in workloads() if doc["metadata"]["name"] == workload)
    policy = named(MANIFESTS, "NetworkPolicy", workload)
    assert (
        policy["spec"]["podSelector"]["matchLabels"].items()
        <= doc["spec"]["template"]["metadata"]["labels"].items()
    )
    assert set(policy["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    ports = egress_ports(policy)
    # The ops view reads every service's /readyz through its Service, its own analytics' included.
    readiness = {settings().port_of(s): s for s in SERVICE_NAMES} if workload == "analytics" else {}
    assert set(ports) == (
        {53, plain_listener()["port"], 27017} | ({443} if https_out else set()) | set(readiness)
    )
    for port, service in readiness.items():  # the ops view reads the other services' /readyz
        (peer,) = ports[port]
        assert peer["podSelector"]["matchLabels"]["app.kubernetes.io/name"] == service
    (kafka_peer,) = ports[plain_listener()["port"]]
    assert kafka_peer["podSelector"]["matchLabels"]["strimzi.io/cluster"] == KAFKA["metadata"]["name"]
    (mongo_peer,) = ports[27017]
    assert mongo_peer["podSelector"]["matchLabels"] == {"app": f"{MONGODB['metadata']['name']}-svc"}
    if https_out:
        (internet,) = ports[443]
        assert "169.254.0.0/16" in internet["ipBlock"]["except"]  # never the cloud metadata endpoint
    if workload in SERVICE_NAMES:
        (ingress,) = policy["spec"]["ingress"]
        assert ingress["ports"] == [{"protocol": "TCP", "port": settings().port_of(workload)}]
        pods = [peer["podSelector"]["matchLabels"] for peer in ingress["from"] if "podSelector" in peer]
        assert {"app.kubernetes.io/name": "analytics", "app.kubernetes.io/part-of": "signpost"} in pods
    else:
        assert policy["spec"]["ingress"] == []


def test_only_signpost_reaches_kafka_and_mongodb() -> None:
    (peer,) = plain_listener()["networkPolicyPeers"]
    assert peer == {"podSelector": {"matchLabels": {"app.kubernetes.io/part-of": "signpost"}}}
    mongo_policy = named(MANIFESTS, "NetworkPolicy", "signpost-mongodb")
    (ingress,) = mongo_policy["spec"]["ingress"]
    assert ingress["ports"] == [{"protocol": "TCP", "port": 27017}]
    for doc in workloads():
        assert doc["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/part-of"] == "signpost"


@pytest.mark.parametrize("service", SERVICE_NAMES)
def test_prometheus_annotations_point_at_the_service_port(service: ServiceName) -> None:
    annotations = named(MANIFESTS, "Deployment", service)["spec"]["template"]["metadata"]["annotations"]
    assert annotations == {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(settings().port_of(service)),
        "prometheus.io/path": "/metrics",
    }


def routed_paths(ingress: Manifest) -> list[tuple[str, str, str]]:
    """(service, path, path type) of every rule: what the internet reaches."""
    return [
        (path["backend"]["service"]["name"], path["path"], path["pathType"])
        for rule in ingress["spec"]["rules"]
        for path in rule["http"]["paths"]
    ]


def reaches(path: str, path_type: str, url_path: str) -> bool:
    if path_type == "Exact":
        return url_path == path
    return url_path == path or url_path.startswith(path.rstrip("/") + "/")


def test_ingress_reaches_each_service_by_its_named_port_through_the_allowed_controller() -> None:
    ingress = named(MANIFESTS, "Ingress", "signpost")
    backends = {
        path["backend"]["service"]["name"]: path["backend"]["service"]["port"]
        for rule in ingress["spec"]["rules"]
        for path in rule["http"]["paths"]
    }
    assert backends == {service: {"name": "http"} for service in SERVICE_NAMES}
    assert ingress["spec"]["ingressClassName"] == "nginx"
    for service in SERVICE_NAMES:
        (allowed,) = named(MANIFESTS, "NetworkPolicy", service)["spec"]["ingress"]
        controllers = [
            peer["namespaceSelector"]["matchLabels"]
            for peer in allowed["from"]
            if "namespaceSelector" in peer
        ]
        assert {"kubernetes.io/metadata.name": "ingress-nginx"} in controllers
    body_limit = ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-body-size"]
    assert int(body_limit.removesuffix("k")) * 1024 >= settings().max_request_bytes


def test_the_internet_reaches_the_api_but_not_metrics_or_health() -> None:
    """/metrics counts every kind of event exactly, unsuppressed: Prometheus scrapes the pods."""
    routes = [route for ingress in of_kind(MANIFESTS, "Ingress") for route in routed_paths(ingress)]
    for service in SERVICE_NAMES:
        served = [(path, kind) for name, path, kind in routes if name == service]
        assert any(reaches(path, kind, "/v1/anything") for path, kind in served), service
        for private in ("/metrics", "/readyz", "/healthz"):
            assert not any(reaches(path, kind, private) for path, kind in served), (service, private)


def test_the_catalogue_import_takes_bodies_as_large_as_routing_does() -> None:
    ingress = named(MANIFESTS, "Ingress", "signpost-catalogue-import")
    assert routed_paths(ingress) == [("routing", IMPORT_PATH, "Exact")]
    body_limit = ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-body-size"]
    assert int(body_limit.removesuffix("m")) * 1024 * 1024 >= settings().max_import_bytes


def test_production_overlay_puts_everything_in_its_namespace() -> None:
    namespace = kustomization(PRODUCTION)["namespace"]
    assert named(MANIFESTS, "Namespace", namespace)
    assert all(
        doc["metadata"].get("namespace") == namespace for doc in MANIFESTS if doc["kind"] != "Namespace"
    )


def test_overlay_uses_only_what_the_renderer_understands() -> None:
    assert set(kustomization(PRODUCTION)) <= RENDERED_FIELDS
    assert set(kustomization(BASE)) <= RENDERED_FIELDS


def test_real_secrets_are_never_committed() -> None:
    ignored = (ROOT / ".gitignore").read_text().split()
    for generator in kustomization(PRODUCTION)["secretGenerator"]:
        for name in generator["envs"]:
            assert f"deploy/k8s/overlays/production/{name}" in ignored
            assert (PRODUCTION / f"{name}.example").is_file()
        assert generator["options"]["disableNameSuffixHash"] is True  # referred to by name
