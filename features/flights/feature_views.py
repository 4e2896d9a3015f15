"""Feature views of the flight-delay domain. Names follow <measure>_<agg>_<window>."""

from featurelake.repo.definitions import (
    Aggregation,
    DbtComputation,
    Feature,
    FeatureView,
    RequestFeatureView,
    ValueType,
    WindowComputation,
)

from .entities import carrier, origin_airport, plane, route
from .sources import flight_arrivals, flight_departures, origin_weather, plane_profiles

OWNER = "flight-ml@featurelake.dev"

carrier_departure_delays = FeatureView(
    name="carrier_departure_delays",
    entities=[carrier],
    source=flight_departures,
    computation=WindowComputation(
        tile="1h",
        aggregations=[
            Aggregation(column="dep_delay", function="mean", windows=["1h", "1d", "7d", "28d"]),
            Aggregation(column="dep_delay", function="max", windows=["1d", "7d"]),
            Aggregation(column="flight_id", function="count", windows=["1d", "7d"], name="departures"),
            Aggregation(column="dest", function="count_distinct", windows=["7d"], name="destinations"),
        ],
    ),
    ttl="28d",
    description="Departure delays of each airline over sliding windows, as known at each hour.",
    owner=OWNER,
    tags={"domain": "flights", "team": "ops"},
)

origin_departure_delays = FeatureView(
    name="origin_departure_delays",
    entities=[origin_airport],
    source=flight_departures,
    computation=WindowComputation(
        tile="1h",
        aggregations=[
            Aggregation(column="dep_delay", function="mean", windows=["1h", "1d"]),
            Aggregation(column="dep_delay", function="sum", windows=["1d"]),
            Aggregation(column="flight_id", function="count", windows=["1h", "1d"], name="departures"),
        ],
    ),
    ttl="1d",
    description="Congestion at each departure airport: recent departure delays and volume.",
    owner=OWNER,
    tags={"domain": "flights", "team": "ops"},
)

carrier_arrival_delays = FeatureView(
    name="carrier_arrival_delays",
    entities=[carrier],
    source=flight_arrivals,
    computation=WindowComputation(
        tile="1h",
        aggregations=[
            Aggregation(column="arr_delay", function="mean", windows=["1d", "7d"]),
            Aggregation(column="arrived_late", function="sum", windows=["7d"], name="late_arrivals"),
            Aggregation(column="arr_delay", function="min", windows=["7d"]),
        ],
    ),
    ttl="7d",
    description="Arrival delays of each airline, known once the flights have landed.",
    owner=OWNER,
    tags={"domain": "flights", "team": "ops"},
)

route_arrival_delays = FeatureView(
    name="route_arrival_delays",
    entities=[route],
    source=flight_arrivals,
    computation=WindowComputation(
        tile="1d",
        aggregations=[
            Aggregation(column="arr_delay", function="mean", windows=["7d", "28d"]),
            Aggregation(column="arrived_late", function="sum", windows=["28d"], name="late_arrivals"),
            Aggregation(column="flight_id", function="count", windows=["28d"], name="arrivals"),
        ],
    ),
    ttl="28d",
    description="Arrival delays per route (origin, dest), in daily tiles.",
    owner=OWNER,
    tags={"domain": "flights", "team": "network"},
)

origin_weather_hourly = FeatureView(
    name="origin_weather_hourly",
    entities=[origin_airport],
    source=origin_weather,
    computation=DbtComputation(),
    features=[
        Feature(name="temp", dtype=ValueType.DOUBLE, description="temperature, F"),
        Feature(name="wind_speed", dtype=ValueType.DOUBLE, description="wind speed, mph"),
        Feature(name="precip", dtype=ValueType.DOUBLE, description="precipitation, inches"),
        Feature(name="visib", dtype=ValueType.DOUBLE, description="visibility, miles"),
        Feature(name="precip_sum_3h", dtype=ValueType.DOUBLE, description="precipitation over the last 3 hours"),
    ],
    ttl="3h",
    description="The latest hourly weather at the departure airport.",
    owner=OWNER,
    tags={"domain": "flights", "team": "weather"},
)

plane_profile = FeatureView(
    name="plane_profile",
    entities=[plane],
    source=plane_profiles,
    computation=DbtComputation(),
    features=[
        Feature(name="year_built", dtype=ValueType.INT32),
        Feature(name="seats", dtype=ValueType.INT32),
        Feature(name="engines", dtype=ValueType.INT32),
        Feature(name="manufacturer", dtype=ValueType.STRING),
        Feature(name="engine_type", dtype=ValueType.STRING),
    ],
    description="Static attributes of each aircraft.",
    owner=OWNER,
    tags={"domain": "flights", "team": "fleet"},
)


def _delay_against_recent(row: dict) -> dict:
    """How much later than its airline's week and its airport's day the flight is leaving (None without history)."""
    delay = row["dep_delay"]

    def minus(mean: float | None) -> float | None:
        return None if delay is None or mean is None else delay - mean

    return {
        "dep_delay_vs_carrier_7d": minus(row["dep_delay_mean_7d"]),
        "dep_delay_vs_origin_1d": minus(row["dep_delay_mean_1d"]),
        "left_later_than_usual": None
        if delay is None or row["dep_delay_mean_7d"] is None
        else delay > row["dep_delay_mean_7d"],
    }


departure_delay_vs_recent = RequestFeatureView(
    name="departure_delay_vs_recent",
    request={"dep_delay": ValueType.DOUBLE},
    sources=[carrier_departure_delays[["dep_delay_mean_7d"]], origin_departure_delays[["dep_delay_mean_1d"]]],
    features=[
        Feature(name="dep_delay_vs_carrier_7d", dtype=ValueType.DOUBLE, description="minutes over the airline's week"),
        Feature(name="dep_delay_vs_origin_1d", dtype=ValueType.DOUBLE, description="minutes over the airport's day"),
        Feature(name="left_later_than_usual", dtype=ValueType.BOOL, description="later than the airline's week"),
    ],
    function=_delay_against_recent,
    description="The flight's departure delay (request data, known at pushback) against recent departure delays.",
    owner=OWNER,
    tags={"domain": "flights", "team": "ops"},
)
