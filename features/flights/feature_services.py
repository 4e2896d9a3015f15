"""Feature services of the flight-delay domain."""

from featurelake.repo.definitions import FeatureService

from .feature_views import (
    carrier_arrival_delays,
    carrier_departure_delays,
    departure_delay_vs_recent,
    origin_departure_delays,
    origin_weather_hourly,
    plane_profile,
    route_arrival_delays,
)

flight_delay_model = FeatureService(
    name="flight_delay_model",
    features=[
        carrier_departure_delays,
        origin_departure_delays,
        carrier_arrival_delays[["arr_delay_mean_7d", "late_arrivals_7d"]],
        route_arrival_delays,
        origin_weather_hourly,
        plane_profile[["year_built", "seats", "engines"]],
        departure_delay_vs_recent,
    ],
    description=(
        "Predicts, as a flight leaves the gate, whether it arrives more than 15 minutes late: features as of its "
        "scheduled departure, and its departure delay (request data) against recent ones."
    ),
    owner="flight-ml@featurelake.dev",
    tags={"model": "late_arrival_classifier"},
)
