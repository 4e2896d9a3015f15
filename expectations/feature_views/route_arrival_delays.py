"""route_arrival_delays: routes from a NYC airport, plausible arrival delays, late arrivals within arrivals."""

import great_expectations.expectations as gxe

from ..bounds import AIRPORT_CODE, DELAY_MINUTES, NYC_AIRPORTS, columns_like


def expectations(target):
    lo, hi = DELAY_MINUTES
    return [
        gxe.ExpectColumnValuesToBeInSet(column="origin", value_set=NYC_AIRPORTS),
        gxe.ExpectColumnValuesToMatchRegex(column="dest", regex=AIRPORT_CODE),
        *(
            gxe.ExpectColumnValuesToBeBetween(column=c, min_value=lo, max_value=hi)
            for c in columns_like(target, "arr_delay_mean_*")
        ),
        *(gxe.ExpectColumnValuesToBeBetween(column=c, min_value=0) for c in columns_like(target, "late_arrivals_*")),
        gxe.ExpectColumnPairValuesAToBeGreaterThanB(
            column_A="arrivals_28d",
            column_B="late_arrivals_28d",
            or_equal=True,
            ignore_row_if="either_value_is_missing",
        ),
    ]
