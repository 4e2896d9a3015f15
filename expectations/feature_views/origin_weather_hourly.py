"""origin_weather_hourly: a NYC airport and physically plausible weather readings."""

import great_expectations.expectations as gxe

from ..bounds import NYC_AIRPORTS, PRECIP_IN_PER_HOUR, TEMP_F, VISIBILITY_MILES, WIND_SPEED_MPH


def expectations(target):
    ranges = {
        "temp": TEMP_F,
        "wind_speed": WIND_SPEED_MPH,
        "precip": PRECIP_IN_PER_HOUR,
        "visib": VISIBILITY_MILES,
        "precip_sum_3h": (0, 3 * PRECIP_IN_PER_HOUR[1]),
    }
    return [
        gxe.ExpectColumnValuesToBeInSet(column="origin", value_set=NYC_AIRPORTS),
        *(gxe.ExpectColumnValuesToBeBetween(column=c, min_value=lo, max_value=hi) for c, (lo, hi) in ranges.items()),
    ]
