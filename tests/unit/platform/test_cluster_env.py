"""LocalCluster's services reach the broker they are given: the embedded Tansu, or an Apache Kafka."""

from __future__ import annotations

from pathlib import Path

from signpost.platform.cluster import LocalCluster
from signpost.platform.embedded import EmbeddedServer
from signpost.platform.processes import ManagedProcess


def server(url: str) -> EmbeddedServer:
    return EmbeddedServer(process=ManagedProcess("x", ["true"]), url=url, port=1)


def test_an_apache_kafka_broker_is_used_with_idempotent_producers(tmp_path: Path) -> None:
    cluster = LocalCluster(tmp_path, settings={"topic_partitions": "3"}, kafka_bootstrap="localhost:40001")
    cluster.mongodb = server("mongodb://127.0.0.1:1/")
    assert cluster.kafka is None
    env = cluster.env
    assert env["SIGNPOST_KAFKA_BOOTSTRAP"] == "localhost:40001"
    assert env["SIGNPOST_KAFKA_IDEMPOTENCE"] == "true"
    assert env["SIGNPOST_TOPIC_PARTITIONS"] == "3"


def test_the_embedded_broker_without_idempotence(tmp_path: Path) -> None:
    cluster = LocalCluster(tmp_path)
    cluster.kafka, cluster.mongodb = server("127.0.0.1:2"), server("mongodb://127.0.0.1:1/")
    env = cluster.env
    assert env["SIGNPOST_KAFKA_BOOTSTRAP"] == "127.0.0.1:2"
    assert env["SIGNPOST_KAFKA_IDEMPOTENCE"] == "false"
