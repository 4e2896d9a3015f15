"""origin_departure_delays: a NYC departure airport and plausible mean departure delays."""

import great_expectations.expectations as gxe

from ..bounds import DELAY_MINUTES, NYC_AIRPORTS, columns_like


def expectations(target):
    lo, hi = DELAY_MINUTES
    return [
        gxe.ExpectColumnValuesToBeInSet(column="origin", value_set=NYC_AIRPORTS),
        *(
            gxe.ExpectColumnValuesToBeBetween(column=c, min_value=lo, max_value=hi)
            for c in columns_like(target, "dep_delay_mean_*")
        ),
    ]
