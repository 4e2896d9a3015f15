"""carrier_departure_delays: airline codes and plausible departure delays (counts >= 0 are generated)."""

import great_expectations.expectations as gxe

from ..bounds import CARRIER_CODE, DELAY_MINUTES, columns_like


def expectations(target):
    lo, hi = DELAY_MINUTES
    return [
        gxe.ExpectColumnValuesToMatchRegex(column="carrier", regex=CARRIER_CODE),
        *(
            gxe.ExpectColumnValuesToBeBetween(column=c, min_value=lo, max_value=hi)
            for c in columns_like(target, "dep_delay_mean_*", "dep_delay_max_*")
        ),
    ]
