"""raw.weather: a NYC airport, calendar fields and physically plausible readings."""

import great_expectations.expectations as gxe

from ..bounds import (
    DEWPOINT_F,
    HUMIDITY_PCT,
    NYC_AIRPORTS,
    PRECIP_IN_PER_HOUR,
    PRESSURE_MB,
    TEMP_F,
    VISIBILITY_MILES,
    WIND_DIR_DEG,
    WIND_SPEED_MPH,
)

RAW_READINGS_MOSTLY = 0.95


def expectations(target):
    calendar = {"month": (1, 12), "day": (1, 31), "hour": (0, 23)}
    readings = {
        "temp": TEMP_F,
        "dewp": DEWPOINT_F,
        "humid": HUMIDITY_PCT,
        "wind_dir": WIND_DIR_DEG,
        "wind_speed": WIND_SPEED_MPH,
        "wind_gust": (0, 1.5 * WIND_SPEED_MPH[1]),
        "precip": PRECIP_IN_PER_HOUR,
        "pressure": PRESSURE_MB,
        "visib": VISIBILITY_MILES,
    }
    return [
        gxe.ExpectColumnValuesToBeInSet(column="origin", value_set=NYC_AIRPORTS),
        *(gxe.ExpectColumnValuesToBeBetween(column=c, min_value=lo, max_value=hi) for c, (lo, hi) in calendar.items()),
        # An isolated sensor error in the raw readings passes (staging nulls it); a batch with many does not.
        *(
            gxe.ExpectColumnValuesToBeBetween(column=c, min_value=lo, max_value=hi, mostly=RAW_READINGS_MOSTLY)
            for c, (lo, hi) in readings.items()
        ),
    ]
