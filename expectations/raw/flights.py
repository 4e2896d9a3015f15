"""raw.flights: codes, calendar fields, plausible delays and distances, arrival scheduled after departure."""

import great_expectations.expectations as gxe

from ..bounds import AIR_TIME_MINUTES, AIRPORT_CODE, CARRIER_CODE, DELAY_MINUTES, DISTANCE_MILES, NYC_AIRPORTS


def expectations(target):
    ranges = {
        "month": (1, 12),
        "day": (1, 31),
        "hour": (0, 23),
        "minute": (0, 59),
        "dep_delay": DELAY_MINUTES,
        "arr_delay": DELAY_MINUTES,
        "air_time": AIR_TIME_MINUTES,
        "distance": DISTANCE_MILES,
    }
    return [
        gxe.ExpectColumnValuesToBeInSet(column="origin", value_set=NYC_AIRPORTS),
        gxe.ExpectColumnValuesToMatchRegex(column="dest", regex=AIRPORT_CODE),
        gxe.ExpectColumnValuesToMatchRegex(column="carrier", regex=CARRIER_CODE),
        *(gxe.ExpectColumnValuesToBeBetween(column=c, min_value=lo, max_value=hi) for c, (lo, hi) in ranges.items()),
        gxe.ExpectColumnPairValuesAToBeGreaterThanB(column_A="sched_arr_ts", column_B="sched_dep_ts", or_equal=True),
    ]
