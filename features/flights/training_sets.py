"""Training sets of the flight-delay domain."""

from featurelake.repo.definitions import TrainingSet

from .feature_services import flight_delay_model

flight_delay_demo = TrainingSet(
    name="flight_delay_demo",
    service=flight_delay_model,
    entities=(
        "SELECT flight_id, carrier, origin, dest, tailnum, sched_dep_ts AS event_timestamp, dep_delay, "
        "CAST(arr_delay > 15 AS INT) AS arrived_late FROM raw.flights WHERE arr_delay IS NOT NULL"
    ),
    full_feature_names=True,
    description=(
        "Every flight that arrived, as of its scheduled departure, with its departure delay (the request data of "
        "departure_delay_vs_recent), labelled late (more than 15 minutes)."
    ),
    owner="flight-ml@featurelake.dev",
    tags={"model": "late_arrival_classifier"},
)
