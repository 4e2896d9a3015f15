"""carrier_arrival_delays: airline codes, plausible arrival delays, late-arrival counts >= 0."""

import great_expectations.expectations as gxe

from ..bounds import CARRIER_CODE, DELAY_MINUTES, columns_like


def expectations(target):
    lo, hi = DELAY_MINUTES
    return [
        gxe.ExpectColumnValuesToMatchRegex(column="carrier", regex=CARRIER_CODE),
        *(
            gxe.ExpectColumnValuesToBeBetween(column=c, min_value=lo, max_value=hi)
            for c in columns_like(target, "arr_delay_mean_*", "arr_delay_min_*")
        ),
        *(gxe.ExpectColumnValuesToBeBetween(column=c, min_value=0) for c in columns_like(target, "late_arrivals_*")),
    ]
