"""The local Kafka broker (``featurelake services start --kafka``): one KRaft node, broker and controller in one
process, of Apache Kafka's JARs from Maven Central (``make setup`` copies them to ``services.kafka.install_dir``);
clients on 127.0.0.1:``services.kafka.port``, its log in ``services.kafka.data_dir`` (formatted on first start with a
cluster id of its own), topics created on first use with one replica.
"""

from __future__ import annotations

import base64
import subprocess
import uuid
from pathlib import Path

from featurelake.config import Settings
from featurelake.errors import ConfigError, ServiceDown
from featurelake.services.postgres import HOST
from featurelake.services.process import Daemon

MAIN_CLASS = "kafka.Kafka"
STORAGE_TOOL = "kafka.tools.StorageTool"


class KafkaServer(Daemon):
    port: int
    name = "kafka"
    title = "the Kafka broker"
    start_command = "`featurelake services start --kafka`"
    start_timeout_s = 120

    def __init__(self, settings: Settings):
        kafka = settings.services.kafka
        self.port, self.controller_port, self.heap = kafka.port, kafka.controller_port, kafka.heap
        self.home = Path(settings.path(kafka.install_dir))
        self.data_dir = Path(settings.path(kafka.data_dir))
        self.properties = settings.state_path / "kafka.properties"

    @property
    def marker(self) -> str:
        return str(self.properties)

    @property
    def bootstrap_servers(self) -> str:
        return self.address

    def command(self, settings: Settings) -> list[str]:
        if not any(self.home.glob("kafka_2.13-*.jar")):
            raise ConfigError(f"Kafka not found in {self.home}: run `make setup`")
        self.properties.parent.mkdir(parents=True, exist_ok=True)
        self.properties.write_text(
            "\n".join(
                [
                    "process.roles=broker,controller",
                    "node.id=1",
                    f"controller.quorum.voters=1@{HOST}:{self.controller_port}",
                    f"listeners=PLAINTEXT://{HOST}:{self.port},CONTROLLER://{HOST}:{self.controller_port}",
                    f"advertised.listeners=PLAINTEXT://{HOST}:{self.port}",
                    "controller.listener.names=CONTROLLER",
                    "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
                    f"log.dirs={self.data_dir}",
                    "num.partitions=2",
                    "auto.create.topics.enable=true",
                    "offsets.topic.replication.factor=1",
                    "transaction.state.log.replication.factor=1",
                    "transaction.state.log.min.isr=1",
                    "share.coordinator.state.topic.replication.factor=1",
                    "share.coordinator.state.topic.min.isr=1",
                    "group.initial.rebalance.delay.ms=0",
                ]
            )
            + "\n"
        )
        log4j = settings.root / "conf" / "kafka-log4j2.properties"
        java = ["java", f"-Xmx{self.heap}", f"-Dlog4j2.configurationFile={log4j}", "-cp", f"{self.home}/*"]
        if not (self.data_dir / "meta.properties").is_file():
            self._format(java)
        return [*java, MAIN_CLASS, str(self.properties)]

    def _format(self, java: list[str]) -> None:
        """Format the log folder for a new single-node cluster (KRaft needs it before the first start)."""
        cluster_id = "-"
        while cluster_id.startswith("-"):  # as Kafka's Uuid.randomUuid: an id read as an option is no use
            cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        done = subprocess.run(
            [*java, STORAGE_TOOL, "format", "-t", cluster_id, "-c", str(self.properties)],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            tail = " / ".join((done.stdout + done.stderr).strip().splitlines()[-3:])
            raise ServiceDown(f"{self.title} could not format its log folder {self.data_dir}: {tail}")


def kafka_server(settings: Settings) -> KafkaServer:
    return KafkaServer(settings)
