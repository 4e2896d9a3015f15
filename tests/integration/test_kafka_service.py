"""The local Kafka broker of ``featurelake services start --kafka`` (one KRaft node of Maven Central's Kafka JARs):
formatted on first start, reused while running, its events kept across a stop and a start, stopped by its pid."""

from __future__ import annotations

import json
import time

import pytest

from tests.conftest import isolated_env
from tests.support.servers import free_port

pytestmark = pytest.mark.integration


def _consume(bootstrap: str, topic: str, expected: int, group: str) -> list[dict]:
    from confluent_kafka import Consumer

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    events, deadline = [], time.monotonic() + 60
    try:
        while len(events) < expected and time.monotonic() < deadline:
            message = consumer.poll(1.0)
            if message is not None and message.error() is None:
                events.append(json.loads(message.value()))
    finally:
        consumer.close()
    return events


def test_kafka_service_keeps_every_event_across_a_restart(tmp_path):
    from confluent_kafka import Producer

    from featurelake.config import load_settings
    from featurelake.services.kafka import kafka_server

    settings = load_settings(
        environ=isolated_env(
            tmp_path,
            FEATURELAKE__SERVICES__KAFKA__PORT=str(free_port()),
            FEATURELAKE__SERVICES__KAFKA__CONTROLLER_PORT=str(free_port()),
            FEATURELAKE__SERVICES__KAFKA__DATA_DIR=str(tmp_path / "kafka-data"),
        )
    )
    server = kafka_server(settings)
    pid, started = server.start(settings)
    try:
        assert started and server.start(settings) == (pid, False)
        sent = [{"flight": i, "origin": ["EWR", "JFK", "LGA"][i % 3]} for i in range(300)]
        producer = Producer({"bootstrap.servers": server.bootstrap_servers, "enable.idempotence": True})
        for event in sent:
            producer.produce("departures", json.dumps(event).encode(), key=event["origin"])
        assert producer.flush(30) == 0
        assert sorted(_consume(server.bootstrap_servers, "departures", 300, "first"), key=str) == sorted(sent, key=str)
        assert server.stop(settings) == pid and server.running_pid(settings) is None
        pid, started = server.start(settings)  # the formatted log folder is reused, not formatted again
        assert started
        assert sorted(_consume(server.bootstrap_servers, "departures", 300, "second"), key=str) == sorted(sent, key=str)
    finally:
        server.stop(settings)
    assert server.running_pid(settings) is None
