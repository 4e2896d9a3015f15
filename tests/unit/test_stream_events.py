"""Stream sources: their definition checks, and Kafka records into typed events or refusals with one reason each
(events.parse on inline records, expected values written out by hand)."""

from __future__ import annotations

import datetime as dt

import pytest
from pydantic import ValidationError

from featurelake.repo.definitions import StreamSource

FIELDS = {"flight_id": "bigint", "origin": "string", "dep_delay": "double", "on_time": "boolean",
          "dep_ts": "timestamp"}  # fmt: skip


def source(**overrides) -> StreamSource:
    spec = {"name": "departures", "topic": "departures", "table": "raw.departure_events", "timestamp_column": "dep_ts",
            "fields": FIELDS, **overrides}  # fmt: skip
    return StreamSource(**spec)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"timestamp_column": "origin"}, "timestamp_column 'origin' must be a field of type timestamp"),
        ({"timestamp_column": "arrival"}, "timestamp_column 'arrival' must be a field of type timestamp"),
        ({"topic": "bad topic"}, "is not a Kafka topic name"),
        ({"table": "departure_events"}, "is not a safe `database.table` name"),
        ({"fields": {**FIELDS, "bad name": "string"}}, "field 'bad name'"),
        ({"date_partition_column": "day"}, "partitioned by 'event_date'"),
    ],
)
def test_stream_source_refuses_a_bad_definition_naming_the_problem(overrides, message):
    with pytest.raises(ValidationError, match=message):
        source(**overrides)


def test_records_become_typed_events_or_refusals_with_their_reason(spark):
    from featurelake.streaming.events import parse

    values = [
        '{"flight_id": 1, "origin": "EWR", "dep_delay": 2.5, "on_time": true, "dep_ts": "2013-01-01T05:17:00Z"}',
        '{"flight_id": "2", "origin": "JFK", "dep_ts": "2013-01-01 23:59:59", "extra": [1, 2]}',
        "not json",
        "[1, 2, 3]",
        '{"flight_id": 3.5, "origin": "LGA", "dep_ts": "2013-01-01T06:00:00Z"}',
        '{"flight_id": 4, "origin": "LGA", "on_time": "maybe", "dep_ts": "2013-01-01T06:00:00Z"}',
        '{"flight_id": 5, "origin": "LGA", "dep_ts": "yesterday"}',
        '{"flight_id": 6, "dep_ts": "2013-01-01T06:00:00Z"}',
        '{"flight_id": 7, "origin": "EWR"}',
    ]
    records = spark.createDataFrame(
        [(v.encode(), "departures", 0, i) for i, v in enumerate(values)],
        "value binary, topic string, partition int, offset long",
    )
    events, refused = parse(records, source(), ["origin"], batch_id=9)
    got = [r.asDict() for r in events.orderBy("_kafka_offset").collect()]
    assert got == [
        {"flight_id": 1, "origin": "EWR", "dep_delay": 2.5, "on_time": True,
         "dep_ts": dt.datetime(2013, 1, 1, 5, 17), "event_date": dt.date(2013, 1, 1),
         "_kafka_topic": "departures", "_kafka_partition": 0, "_kafka_offset": 0, "_batch_id": 9},
        {"flight_id": 2, "origin": "JFK", "dep_delay": None, "on_time": None,
         "dep_ts": dt.datetime(2013, 1, 1, 23, 59, 59), "event_date": dt.date(2013, 1, 1),
         "_kafka_topic": "departures", "_kafka_partition": 0, "_kafka_offset": 1, "_batch_id": 9},
    ]  # fmt: skip
    reasons = {r["_kafka_offset"]: r["reason"] for r in refused.collect()}
    assert reasons == {
        2: "not a JSON object",
        3: "not a JSON object",
        4: "field flight_id: 3.5 is not a bigint",
        5: "field on_time: maybe is not a boolean",
        6: "field dep_ts: yesterday is not a timestamp",
        7: "no origin",
        8: "no dep_ts",
    }


def test_the_example_streaming_repository_reads_the_demo_streams_events_as_sent(spark):
    """`featurelake demo-stream` and `examples/streaming` (what the README runs) agree: the example's views read the
    demo's default topic, and the demo's events parse into their source's fields, none refused, values as sent."""
    import inspect
    import json

    from featurelake.cli.stream import demo_stream
    from featurelake.repo import load_repo
    from featurelake.streaming.demo import departures
    from featurelake.streaming.engine import stream_plans
    from featurelake.streaming.events import parse
    from tests.conftest import REPO_ROOT

    (plan,) = stream_plans(load_repo(REPO_ROOT / "examples" / "streaming"), None)
    assert sorted(v.name for v in plan.views) == ["recent_carrier_delays", "recent_departures"]
    assert plan.source.topic == inspect.signature(demo_stream).parameters["topic"].default
    sent = list(departures(limit=20))
    records = spark.createDataFrame(
        [(json.dumps(e).encode(), plan.source.topic, 0, i) for i, e in enumerate(sent)],
        "value binary, topic string, partition int, offset long",
    )
    events, refused = parse(records, plan.source, plan.all_keys, batch_id=0)
    assert refused.count() == 0
    got = sorted(tuple(r[f] for f in plan.source.fields) for r in events.collect())
    as_sent = [{**e, "dep_ts": dt.datetime.fromisoformat(e["dep_ts"]).replace(tzinfo=None)} for e in sent]
    assert got == sorted(tuple(e[f] for f in plan.source.fields) for e in as_sent)
