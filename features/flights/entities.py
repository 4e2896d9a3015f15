"""Entities of the flight-delay domain."""

from featurelake.repo.definitions import Entity

carrier = Entity(
    name="carrier",
    join_keys=["carrier"],
    description="An airline, by its two-letter IATA code (e.g. UA).",
    owner="flight-ml@featurelake.dev",
    tags={"domain": "flights"},
)

origin_airport = Entity(
    name="origin_airport",
    join_keys=["origin"],
    description="A New York departure airport (EWR, JFK, LGA), by FAA code.",
    owner="flight-ml@featurelake.dev",
    tags={"domain": "flights"},
)

route = Entity(
    name="route",
    join_keys=["origin", "dest"],
    description="A route: origin and destination airport (a composite key).",
    owner="flight-ml@featurelake.dev",
    tags={"domain": "flights"},
)

plane = Entity(
    name="plane",
    join_keys=["tailnum"],
    description="An aircraft, by tail number.",
    owner="flight-ml@featurelake.dev",
    tags={"domain": "flights"},
)
